"""Back up and restore a workspace as one ``.tar.gz``.

The SQLite database is copied with the sqlite3 online-backup API (a consistent snapshot even while the
server writes), then the artifact, corpus and run folders are added; the model cache (large, and rebuilt on
demand) only with ``include_models``. A manifest ``iwb-backup.json`` records the version, the time and the
source workspace path.

Restore refuses to overwrite a non-empty workspace unless ``force``; it accepts only regular files and
folders whose names stay inside the workspace (no absolute names, no ``..``, no links or devices), unpacks
into a staging folder inside the workspace and then moves each part into place. Absolute paths stored in
the database under the old workspace are rewritten to the new one. Stop the server before restoring.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from . import __version__
from .errors import BadRequest, Conflict, Invalid
from .settings import Settings
from .store.db import database_has_rows, rewrite_path_prefix, snapshot_database

MANIFEST = "iwb-backup.json"
DB_NAME = "workbench.sqlite3"
DATA_DIRS = ("artifacts", "corpora", "runs")
MODELS_DIR = "models"
FORMAT = 1


class BackupResult(NamedTuple):
    path: Path
    n_files: int
    n_bytes: int  # uncompressed bytes archived


class RestoreResult(NamedTuple):
    home: Path
    n_files: int
    source_home: str | None
    rewritten_paths: int  # database cells whose workspace path was rewritten


def create_backup(settings: Settings, out: str | Path, *, include_models: bool = False) -> BackupResult:
    """Write the workspace at ``settings.home`` to ``out`` (a .tar.gz), atomically."""
    home, out = settings.home, Path(out).expanduser().resolve()
    if not home.is_dir():
        raise BadRequest(f"workspace {home} does not exist; set IWB_HOME to the workspace to back up")
    dirs = [*DATA_DIRS, *((MODELS_DIR,) if include_models else ())]
    n_files = n_bytes = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory() as td, tarfile.open(tmp, "w:gz") as tar:
            manifest = {"format": FORMAT, "version": __version__, "created_at": time.time(),
                        "source_home": str(home), "includes": [DB_NAME, *dirs]}
            mpath = Path(td) / MANIFEST
            mpath.write_text(json.dumps(manifest, indent=2))
            tar.add(mpath, arcname=MANIFEST)
            if settings.db_path.is_file():
                snap = Path(td) / DB_NAME
                snapshot_database(settings.db_path, snap)
                tar.add(snap, arcname=DB_NAME)
                n_files, n_bytes = n_files + 1, n_bytes + snap.stat().st_size
            for d in dirs:
                root = home / d
                if not root.is_dir():
                    continue
                for f in sorted(root.rglob("*")):
                    if f.is_symlink() or not (f.is_file() or f.is_dir()):
                        continue  # links and devices never enter an archive
                    rel = f.relative_to(home).as_posix()
                    if f.is_dir():
                        tar.add(f, arcname=rel, recursive=False)
                    else:
                        tar.add(f, arcname=rel)
                        n_files, n_bytes = n_files + 1, n_bytes + f.stat().st_size
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupResult(out, n_files, n_bytes)


def workspace_is_empty(home: Path) -> bool:
    """True when ``home`` holds no database rows of ours and no files in the data folders."""
    if (home / DB_NAME).is_file() and database_has_rows(home / DB_NAME):
        return False
    return not any(f.is_file() for d in DATA_DIRS if (home / d).is_dir() for f in (home / d).rglob("*"))


def _check_member(m: tarfile.TarInfo, allowed_top: set[str]) -> PurePosixPath:
    name = PurePosixPath(m.name)
    if name.is_absolute() or ".." in name.parts or not name.parts or "\\" in m.name:
        raise Invalid(f"archive member {m.name!r} escapes the workspace; refusing to restore this archive")
    if not (m.isfile() or m.isdir()):
        raise Invalid(f"archive member {m.name!r} is a link or device; only files and folders are restored")
    if name.parts[0] not in allowed_top:
        raise Invalid(f"archive member {m.name!r} is not part of a workspace backup "
                      f"(expected {', '.join(sorted(allowed_top))})")
    return name


def restore_backup(settings: Settings, archive: str | Path, *, force: bool = False) -> RestoreResult:
    """Unpack ``archive`` into ``settings.home``. Refuses a non-empty workspace unless ``force``."""
    home, archive = settings.home, Path(archive).expanduser()
    if not archive.is_file():
        raise BadRequest(f"no backup archive at {archive}")
    home.mkdir(parents=True, exist_ok=True)
    if not force and not workspace_is_empty(home):
        raise Conflict(f"workspace {home} is not empty; restore with --force to replace its database, "
                       f"artifacts, corpora and runs (or point IWB_HOME at an empty folder)")
    allowed_top = {MANIFEST, DB_NAME, *DATA_DIRS, MODELS_DIR}
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise Invalid(f"{archive} is not a readable .tar.gz backup: {e}") from None
    staging = Path(tempfile.mkdtemp(prefix=".restore.", dir=home))
    try:
        with tar:
            members = tar.getmembers()
            for m in members:
                _check_member(m, allowed_top)
            if MANIFEST not in {m.name for m in members}:
                raise Invalid(f"{archive} has no {MANIFEST}; it is not a workbench backup")
            for m in members:
                target = staging.joinpath(*PurePosixPath(m.name).parts)
                if staging.resolve() not in target.resolve().parents:
                    raise Invalid(f"archive member {m.name!r} escapes the workspace")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with src, open(target, "wb") as fh:
                    shutil.copyfileobj(src, fh)
        manifest = json.loads((staging / MANIFEST).read_text())
        parts = [p for p in (DB_NAME, *DATA_DIRS, MODELS_DIR) if (staging / p).exists()]
        n_files = sum(1 for m in members if m.isfile() and m.name != MANIFEST)
        # swap in: remove what the archive replaces, then move each part into place
        for p in parts:
            dest = home / p
            if p == DB_NAME:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{dest}{suffix}").unlink(missing_ok=True)
            elif dest.exists():
                shutil.rmtree(dest)
            os.replace(staging / p, dest)
        for d in DATA_DIRS:
            (home / d).mkdir(exist_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    source_home = manifest.get("source_home")
    rewritten = rewrite_path_prefix(home / DB_NAME, source_home, str(home)) if (home / DB_NAME).is_file() else 0
    return RestoreResult(home, n_files, source_home, rewritten)


__all__ = ["create_backup", "restore_backup", "workspace_is_empty", "BackupResult", "RestoreResult"]
