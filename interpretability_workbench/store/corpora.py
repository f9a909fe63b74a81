"""The ``corpora`` table: uploaded corpus files, corpora registered by path and hub datasets from the
local cache (the built-in corpus has no row)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .db import Database

CORPUS_KINDS = ("upload", "path", "hub")
CORPUS_STATUSES = ("counting", "ready", "failed")


@dataclass
class CorpusRecord:
    id: str
    """``corpus_<hex>``."""
    name: str
    """File name as uploaded, the registered path's base name, or the hub dataset id."""
    path: str
    """Where it is read from: the stored upload, the registered path, or the hub id."""
    n_docs: int | None
    """Non-empty documents (None until counted)."""
    n_tokens: int | None
    """Tokens under the tokenizer named by ``tokenizer`` (None until counted)."""
    size_bytes: int | None
    """Bytes on disk (compressed size for compressed files)."""
    created_at: float | None
    kind: str = "upload"
    """upload | path | hub."""
    format: str | None = None
    """txt, jsonl, jsonl.gz, jsonl.zst, parquet, shards, datasets or hub."""
    text_field: str = "text"
    """The JSON field / column read as text."""
    spec: dict[str, Any] = field(default_factory=dict)
    """The ``SourceSpec`` that opens it (``activations.sources.SourceSpec.to_dict``)."""
    status: str = "ready"
    """counting (tokens being counted in the background) | ready | failed (unreadable; see ``error``)."""
    error: str | None = None
    """Why counting failed."""
    tokenizer: str | None = None
    """The model whose tokenizer produced ``n_tokens``."""

    def __post_init__(self) -> None:
        if self.kind not in CORPUS_KINDS:
            raise ValueError(f"CorpusRecord.kind must be one of {CORPUS_KINDS}, got {self.kind!r}")
        if self.status not in CORPUS_STATUSES:
            raise ValueError(f"CorpusRecord.status must be one of {CORPUS_STATUSES}, got {self.status!r}")


def _record(row: dict[str, Any]) -> CorpusRecord:
    row = dict(row)
    row["spec"] = row.pop("spec_json", None) or {}
    return CorpusRecord(**row)


_COLUMNS = {"n_docs", "n_tokens", "status", "error", "tokenizer", "size_bytes"}


class CorpusRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, rec: CorpusRecord) -> None:
        row = asdict(rec)
        row["spec_json"] = row.pop("spec")
        self.db.insert("corpora", row)

    def get(self, corpus_id: str) -> CorpusRecord | None:
        row = self.db.get("corpora", id=corpus_id)
        return None if row is None else _record(row)

    def list(self) -> list[CorpusRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM corpora ORDER BY created_at")]

    def update(self, corpus_id: str, **values: Any) -> None:
        """Set any of n_docs, n_tokens, status, error, tokenizer, size_bytes."""
        bad = set(values) - _COLUMNS
        if bad:
            raise ValueError(f"unknown corpus fields {sorted(bad)}")
        self.db.update("corpora", {"id": corpus_id}, values)

    def delete(self, corpus_id: str) -> bool:
        return self.db.delete("corpora", id=corpus_id) > 0
