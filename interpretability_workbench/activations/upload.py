"""Corpus files onto disk without holding them in memory, and corpora already on disk by path.

``stream_to_file`` / ``astream_to_file`` write an upload chunk by chunk into a hidden ``.part`` file beside
the target, enforce the size cap as bytes arrive, and on success fsync and rename it into place in one
step. Any failure (the cap, a client that goes away, a full disk) deletes the partial file, so an
interrupted upload leaves nothing; ``remove_partials`` sweeps what a killed process left behind.

``resolve_registered_path`` admits a path only when it resolves (symlinks and ``..`` followed) inside one
of the allowed data folders, and so does every file in it when it is a folder.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from os import PathLike
from pathlib import Path
from typing import AsyncIterable, Iterable, NamedTuple, Sequence

from ..errors import Conflict, Invalid, PayloadTooLarge
from ..store.artifacts import fsync_dir

PARTIAL_SUFFIX = ".part"


class StoredFile(NamedTuple):
    path: Path  # the final file
    size: int  # bytes written
    sha256: str  # hex digest of the content


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _check_name(name: str) -> str:
    if not name or name != Path(name).name or name in (".", "..") or name.startswith(".") or "\x00" in name \
            or "/" in name or "\\" in name:
        raise Invalid(f"invalid file name {name!r}: give a plain name like 'corpus.jsonl' (no folders, not hidden)")
    return name


class _PartialFile:
    """A hidden temp file beside ``dest_dir / name`` that becomes it on ``commit`` or vanishes on ``abort``."""

    def __init__(self, dest_dir: str | PathLike[str], name: str, max_bytes: int, overwrite: bool) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.dest_dir = Path(dest_dir)
        self.target = self.dest_dir / _check_name(name)
        self.max_bytes, self.overwrite = max_bytes, overwrite
        if not overwrite and self.target.exists():
            raise Conflict(f"{name} already exists; pick another name")
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=PARTIAL_SUFFIX, dir=self.dest_dir)
        self.tmp = Path(tmp)
        self.f = os.fdopen(fd, "wb")
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(f"the upload is over the corpus size limit of {_human(self.max_bytes)}; raise "
                                  "IWB_MAX_CORPUS_BYTES, or put the file under a data folder and register it by path")
        self.f.write(chunk)
        self.hash.update(chunk)

    def commit(self, allow_empty: bool) -> StoredFile:
        if self.size == 0 and not allow_empty:
            raise Invalid("the uploaded file is empty; send the corpus content")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        if not self.overwrite and self.target.exists():
            raise Conflict(f"{self.target.name} already exists; pick another name")
        os.replace(self.tmp, self.target)
        fsync_dir(self.dest_dir)
        return StoredFile(self.target, self.size, self.hash.hexdigest())

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def stream_to_file(chunks: Iterable[bytes], dest_dir: str | PathLike[str], name: str, max_bytes: int, *,
                   overwrite: bool = False, allow_empty: bool = False) -> StoredFile:
    """Write ``chunks`` to ``dest_dir/name`` atomically; ``PayloadTooLarge`` as soon as more than
    ``max_bytes`` arrive. On any exception nothing is left on disk and the exception propagates."""
    part = _PartialFile(dest_dir, name, max_bytes, overwrite)
    try:
        for chunk in chunks:
            part.write(chunk)
        return part.commit(allow_empty)
    except BaseException:
        part.abort()
        raise


async def astream_to_file(chunks: AsyncIterable[bytes], dest_dir: str | PathLike[str], name: str, max_bytes: int,
                          *, overwrite: bool = False, allow_empty: bool = False) -> StoredFile:
    """``stream_to_file`` for an async body (e.g. a request stream); disk work runs in a worker thread so
    the event loop never waits on it. Cancellation (a client that went away) also leaves nothing."""
    part = await asyncio.to_thread(_PartialFile, dest_dir, name, max_bytes, overwrite)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(part.write, chunk)
        return await asyncio.to_thread(part.commit, allow_empty)
    except BaseException:
        part.abort()
        raise


def remove_partials(dest_dir: str | PathLike[str]) -> int:
    """Delete partial uploads a killed process left in ``dest_dir`` (call at startup); returns how many."""
    d = Path(dest_dir)
    if not d.is_dir():
        return 0
    n = 0
    for p in d.glob(f".*{PARTIAL_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _inside(p: Path, roots: Sequence[Path]) -> bool:
    return any(p == r or r in p.parents for r in roots)


def resolve_registered_path(path: str | PathLike[str], allowed_dirs: Sequence[str | PathLike[str]]) -> Path:
    """The resolved ``path`` when it exists inside one of ``allowed_dirs`` (after following ``..`` and
    symlinks; for a folder, every file in it too). Raises ``Invalid`` naming the allowed folders."""
    roots = [Path(d).expanduser().resolve() for d in allowed_dirs if str(d).strip()]
    where = ", ".join(str(r) for r in roots)
    if not roots:
        raise Invalid("registering a corpus by path is off: set IWB_DATA_DIRS to the folders that hold your "
                      "data, or upload the file instead")
    raw = os.fspath(path) if isinstance(path, (str, PathLike)) else ""
    if not raw.strip() or "\x00" in raw:
        raise Invalid(f"give the absolute path of a corpus file or folder under one of: {where}")
    p = Path(raw).expanduser()
    if not p.is_absolute():
        raise Invalid(f"{raw!r} is not an absolute path; give the full path under one of: {where}")
    resolved = p.resolve()
    if not _inside(resolved, roots):
        via = f" (it resolves to {resolved})" if resolved != p else ""
        raise Invalid(f"{raw} is outside the folders allowed for corpora{via}; move or link the data under one "
                      f"of: {where}, or add its folder to IWB_DATA_DIRS")
    if not resolved.exists():
        raise Invalid(f"{raw} does not exist; check the path (corpora can be registered under: {where})")
    if resolved.is_dir():
        for f in resolved.rglob("*"):
            if f.is_symlink() and not _inside(f.resolve(), roots):
                raise Invalid(f"{f} links to {f.resolve()}, outside the folders allowed for corpora ({where}); "
                              "copy the file in instead of linking it")
    return resolved
