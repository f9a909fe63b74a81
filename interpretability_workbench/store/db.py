"""SQLite metadata store (WAL): the connection, numbered schema migrations (``PRAGMA user_version``)
and whole-file operations (backup snapshot, path rewrite).

Each table has one owner, a repository module beside this one that returns dataclass records:
``corpora.py`` (corpora), ``runs.py`` (runs, metrics), ``saes.py`` (saes), ``features.py`` (analyses,
features, explanations), ``patches.py`` (patches), ``jobs.py`` (jobs), ``behaviours.py`` (behaviour_jobs,
behaviour_candidates), ``transcoders.py`` (transcoder_sets), ``circuits.py`` (circuits). Nothing outside
``store/`` writes SQL.

Columns whose names end in ``_json`` hold JSON; ``insert``/``update`` encode dicts and lists for them and
reads decode them, so repositories deal in plain Python values.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE corpora (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL, n_docs INTEGER, n_tokens INTEGER,
        size_bytes INTEGER, created_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, model_id TEXT NOT NULL, status TEXT NOT NULL, config_json TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, step INTEGER DEFAULT 0,
        tokens_seen INTEGER DEFAULT 0, metrics_json TEXT, error TEXT, sae_id TEXT, checkpoint_path TEXT
    );
    CREATE TABLE metrics (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, tokens INTEGER NOT NULL, data_json TEXT NOT NULL,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE saes (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, model_id TEXT NOT NULL, hook_name TEXT NOT NULL,
        layer INTEGER NOT NULL, d_in INTEGER NOT NULL, d_sae INTEGER NOT NULL, architecture TEXT NOT NULL,
        path TEXT NOT NULL, source TEXT NOT NULL, run_id TEXT, metrics_json TEXT, created_at REAL NOT NULL
    );
    CREATE TABLE analyses (
        sae_id TEXT PRIMARY KEY, status TEXT NOT NULL, n_tokens INTEGER, path TEXT, data_json TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE features (
        sae_id TEXT NOT NULL, idx INTEGER NOT NULL, label TEXT, auto_label TEXT, notes TEXT DEFAULT '',
        starred INTEGER DEFAULT 0, density REAL, max_act REAL, mean_act REAL, top_tokens_json TEXT,
        data_json TEXT, PRIMARY KEY (sae_id, idx)
    );
    CREATE INDEX features_density ON features (sae_id, density);
    CREATE INDEX features_max_act ON features (sae_id, max_act);
    CREATE TABLE patches (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, sae_id TEXT, mode TEXT NOT NULL, features_json TEXT NOT NULL,
        strength REAL NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, config_json TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    """,
    # 2: feature explanations (text + scores on the feature row) and background jobs
    """
    ALTER TABLE features ADD COLUMN explanation TEXT;
    ALTER TABLE features ADD COLUMN explanation_json TEXT;
    ALTER TABLE features ADD COLUMN detection REAL;
    ALTER TABLE features ADD COLUMN fuzzing REAL;
    CREATE INDEX features_detection ON features (sae_id, detection);
    CREATE INDEX features_fuzzing ON features (sae_id, fuzzing);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT, status TEXT NOT NULL, config_json TEXT NOT NULL,
        done INTEGER DEFAULT 0, total INTEGER DEFAULT 0, errors INTEGER DEFAULT 0, error TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE INDEX jobs_subject ON jobs (kind, subject, created_at);
    """,
    # 3: streamed corpora: how to open each one (a SourceSpec), and its background token count
    """
    ALTER TABLE corpora ADD COLUMN kind TEXT NOT NULL DEFAULT 'upload';
    ALTER TABLE corpora ADD COLUMN format TEXT;
    ALTER TABLE corpora ADD COLUMN text_field TEXT NOT NULL DEFAULT 'text';
    ALTER TABLE corpora ADD COLUMN spec_json TEXT;
    ALTER TABLE corpora ADD COLUMN status TEXT NOT NULL DEFAULT 'ready';
    ALTER TABLE corpora ADD COLUMN error TEXT;
    ALTER TABLE corpora ADD COLUMN tokenizer TEXT
    """,
    # 4: behaviour-removal search jobs and every candidate they evaluated (store/behaviours.py)
    """
    CREATE TABLE behaviour_jobs (
        id TEXT PRIMARY KEY, model_id TEXT NOT NULL, status TEXT NOT NULL, phase TEXT NOT NULL,
        request_json TEXT NOT NULL, state_json TEXT, result_json TEXT, error TEXT,
        n_evaluated INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    );
    CREATE TABLE behaviour_candidates (
        job_id TEXT NOT NULL REFERENCES behaviour_jobs (id) ON DELETE CASCADE, idx INTEGER NOT NULL,
        key TEXT NOT NULL, stage TEXT NOT NULL, attempt INTEGER NOT NULL, data_json TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (job_id, idx), UNIQUE (job_id, key)
    );
    """,
    # 5: feature sort score and degenerate flag (features/labels.py), indexed for the feature list
    """
    ALTER TABLE features ADD COLUMN consistency REAL;
    ALTER TABLE features ADD COLUMN degenerate INTEGER;
    CREATE INDEX features_consistency ON features (sae_id, consistency, density);
    """,
    # 6: transcoders (SAE-registry entries of kind 'transcoder', grouped into sets) and attribution graphs
    """
    ALTER TABLE saes ADD COLUMN kind TEXT NOT NULL DEFAULT 'sae';
    ALTER TABLE saes ADD COLUMN set_id TEXT;
    CREATE TABLE transcoder_sets (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, model_id TEXT NOT NULL, scan TEXT NOT NULL,
        layers_json TEXT NOT NULL, architecture TEXT NOT NULL, d_tc INTEGER NOT NULL, skip INTEGER NOT NULL,
        source TEXT NOT NULL, run_id TEXT, metrics_json TEXT, created_at REAL NOT NULL
    );
    CREATE TABLE circuits (
        id TEXT PRIMARY KEY, model_id TEXT NOT NULL, set_id TEXT NOT NULL, prompt TEXT NOT NULL,
        status TEXT NOT NULL, settings_json TEXT NOT NULL, summary_json TEXT, path TEXT, error TEXT,
        created_at REAL NOT NULL, updated_at REAL NOT NULL
    )
    """,
]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class Database:
    """A thread-safe SQLite connection (one lock; SQLite serialises writers anyway)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
                self._conn.execute("BEGIN")
                try:
                    for stmt in script.split(";"):
                        if stmt.strip():
                            self._conn.execute(stmt)
                    self._conn.execute(f"PRAGMA user_version = {i}")
                    self._conn.execute("COMMIT")
                except Exception:
                    self._conn.execute("ROLLBACK")
                    raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # generic helpers -------------------------------------------------------------------
    @staticmethod
    def _encode(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (json.dumps(v) if k.endswith("_json") and v is not None and not isinstance(v, str) else v)
                for k, v in row.items()}

    @staticmethod
    def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for k, v in out.items():
            if k.endswith("_json") and isinstance(v, str):
                out[k] = json.loads(v)
        return out

    def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except Exception:
                self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(sql, tuple(params)).fetchall()
        return [self._decode(r) for r in rows]  # type: ignore[misc]

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, tuple(params)).fetchone()
        return self._decode(row)

    def insert(self, table: str, row: dict[str, Any], *, replace: bool = False) -> None:
        row = self._encode(row)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", row.values())

    def update(self, table: str, where: dict[str, Any], values: dict[str, Any]) -> int:
        values = self._encode(values)
        sets = ", ".join(f"{k} = ?" for k in values)
        conds = " AND ".join(f"{k} = ?" for k in where)
        cur = self.execute(f"UPDATE {table} SET {sets} WHERE {conds}", [*values.values(), *where.values()])
        return cur.rowcount

    def get(self, table: str, **where: Any) -> dict[str, Any] | None:
        conds = " AND ".join(f"{k} = ?" for k in where)
        return self.query_one(f"SELECT * FROM {table} WHERE {conds}", where.values())

    def delete(self, table: str, **where: Any) -> int:
        conds = " AND ".join(f"{k} = ?" for k in where)
        return self.execute(f"DELETE FROM {table} WHERE {conds}", where.values()).rowcount


def now() -> float:
    return time.time()


# whole-file operations (backup / restore) ------------------------------------------------------
def snapshot_database(db_path: Path, dest: Path) -> None:
    """A consistent copy of the database at ``db_path`` (online-backup API, safe while the server writes),
    written as one self-contained file."""
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(str(dest))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def database_has_rows(db_path: Path) -> bool:
    """True when any table of the database holds a row (or the file is not a readable database)."""
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return any(con.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables)
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return True


def rewrite_path_prefix(db_path: Path, old: str | None, new: str) -> int:
    """Point absolute paths recorded under ``old`` at ``new`` in every TEXT column; returns cells changed."""
    if not old or old == new:
        return 0
    con = sqlite3.connect(str(db_path), isolation_level=None)
    n = 0
    try:
        con.execute("BEGIN")
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
        for t in tables:
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")') if (r[2] or "").upper() == "TEXT"]
            for c in cols:
                cur = con.execute(f'UPDATE "{t}" SET "{c}" = ? || substr("{c}", ?) '
                                  f'WHERE "{c}" = ? OR substr("{c}", 1, ?) = ?',
                                  (new, len(old) + 1, old, len(old) + 1, old + "/"))
                n += cur.rowcount
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return n
