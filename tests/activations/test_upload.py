"""Streamed uploads (cap enforced as bytes arrive, nothing left behind on any failure, atomic rename) and
registration of corpora by path (only inside the allowed data folders)."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest

from interpretability_workbench.activations.upload import (PARTIAL_SUFFIX, remove_partials, resolve_registered_path,
                                                           astream_to_file, stream_to_file)
from interpretability_workbench.errors import Conflict, Invalid, PayloadTooLarge


def chunks(n: int, size: int = 1000) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 251]) * size


def test_stream_writes_the_file_atomically(tmp_path: Path) -> None:
    data = b"".join(chunks(50))
    got = stream_to_file(chunks(50), tmp_path / "corpora", "c.jsonl", max_bytes=len(data))
    assert got.path == tmp_path / "corpora" / "c.jsonl" and got.path.read_bytes() == data
    assert got.size == len(data) and got.sha256 == hashlib.sha256(data).hexdigest()
    assert os.listdir(tmp_path / "corpora") == ["c.jsonl"]


def test_over_the_cap_raises_and_leaves_nothing(tmp_path: Path) -> None:
    seen = []

    def body() -> Iterator[bytes]:
        for c in chunks(100):
            seen.append(len(c))
            yield c

    with pytest.raises(PayloadTooLarge, match="over the corpus size limit of 9.8 KiB; raise IWB_MAX_CORPUS_BYTES") as e:
        stream_to_file(body(), tmp_path, "c.jsonl", max_bytes=10_000)
    assert e.value.status_code == 413
    assert len(seen) == 11  # stopped at the first chunk past the cap, not at the end of the body
    assert os.listdir(tmp_path) == []


def test_an_interrupted_stream_leaves_nothing(tmp_path: Path) -> None:
    def body() -> Iterator[bytes]:
        yield from chunks(5)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        stream_to_file(body(), tmp_path, "c.jsonl", max_bytes=1 << 30)
    assert os.listdir(tmp_path) == []


def test_async_stream_and_cancellation(tmp_path: Path) -> None:
    async def body(n: int, stall: bool = False) -> AsyncIterator[bytes]:
        for c in chunks(n):
            yield c
        if stall:
            await asyncio.sleep(3600)

    async def run() -> None:
        got = await astream_to_file(body(20), tmp_path, "a.jsonl", max_bytes=1 << 20)
        assert got.path.read_bytes() == b"".join(chunks(20))
        task = asyncio.create_task(astream_to_file(body(20, stall=True), tmp_path, "b.jsonl", max_bytes=1 << 20))
        while not any(p.name.endswith(PARTIAL_SUFFIX) for p in tmp_path.iterdir()):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(PayloadTooLarge):
            await astream_to_file(body(20), tmp_path, "c.jsonl", max_bytes=5000)

    asyncio.run(run())
    assert sorted(os.listdir(tmp_path)) == ["a.jsonl"]


def test_names_existing_files_and_empty_bodies(tmp_path: Path) -> None:
    for bad in ("../x.jsonl", "a/b.jsonl", ".hidden.jsonl", "", "..", "a\\b.txt"):
        with pytest.raises(Invalid, match="invalid file name"):
            stream_to_file(chunks(1), tmp_path, bad, max_bytes=1 << 20)
    stream_to_file(chunks(1), tmp_path, "c.txt", max_bytes=1 << 20)
    with pytest.raises(Conflict, match="c.txt already exists"):
        stream_to_file(chunks(1), tmp_path, "c.txt", max_bytes=1 << 20)
    assert stream_to_file(chunks(2), tmp_path, "c.txt", max_bytes=1 << 20, overwrite=True).size == 2000
    with pytest.raises(Invalid, match="empty"):
        stream_to_file(iter([b"", b""]), tmp_path, "e.txt", max_bytes=1 << 20)
    assert sorted(os.listdir(tmp_path)) == ["c.txt"]


def test_remove_partials_after_a_crash(tmp_path: Path) -> None:
    (tmp_path / f".c.jsonl.abc123{PARTIAL_SUFFIX}").write_bytes(b"half")
    (tmp_path / "kept.jsonl").write_bytes(b"{}")
    assert remove_partials(tmp_path) == 1
    assert os.listdir(tmp_path) == ["kept.jsonl"]
    assert remove_partials(tmp_path / "absent") == 0


@pytest.fixture
def data_dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    allowed, other, outside = tmp_path / "data", tmp_path / "more", tmp_path / "secret"
    for d in (allowed, other, outside):
        d.mkdir()
    (allowed / "c.jsonl").write_text('{"text": "x"}\n')
    (outside / "s.jsonl").write_text('{"text": "secret"}\n')
    return allowed, other, outside


def test_registered_paths_inside_allowed_dirs(data_dirs) -> None:
    allowed, other, _ = data_dirs
    assert resolve_registered_path(str(allowed / "c.jsonl"), [allowed, other]) == (allowed / "c.jsonl").resolve()
    assert resolve_registered_path(allowed / "sub" / ".." / "c.jsonl", [other, str(allowed)]) == allowed / "c.jsonl"
    (other / "shards").mkdir()
    (other / "shards" / "link.jsonl").symlink_to(allowed / "c.jsonl")  # a link that stays inside is fine
    assert resolve_registered_path(other / "shards", [allowed, other]) == other / "shards"


def test_registered_paths_refused_with_useful_messages(data_dirs) -> None:
    allowed, other, outside = data_dirs
    roots = [allowed, other]
    listed = f"{allowed}, {other}"
    with pytest.raises(Invalid, match=f"is outside the folders allowed for corpora; move or link the data under "
                                      f"one of: {listed}, or add its folder to IWB_DATA_DIRS"):
        resolve_registered_path(outside / "s.jsonl", roots)
    with pytest.raises(Invalid, match=f"outside the folders allowed .*resolves to {outside / 's.jsonl'}"):
        resolve_registered_path(f"{allowed}/../secret/s.jsonl", roots)
    (allowed / "escape.jsonl").symlink_to(outside / "s.jsonl")
    with pytest.raises(Invalid, match=f"resolves to {outside / 's.jsonl'}"):
        resolve_registered_path(allowed / "escape.jsonl", roots)
    (other / "shards").mkdir()
    (other / "shards" / "bad.jsonl").symlink_to(outside / "s.jsonl")
    with pytest.raises(Invalid, match="bad.jsonl links to .*outside the folders allowed for corpora"):
        resolve_registered_path(other / "shards", roots)
    with pytest.raises(Invalid, match=f"missing.jsonl does not exist; check the path .*under: {listed}"):
        resolve_registered_path(allowed / "missing.jsonl", roots)
    with pytest.raises(Invalid, match="not an absolute path"):
        resolve_registered_path("data/c.jsonl", roots)
    with pytest.raises(Invalid, match="registering a corpus by path is off: set IWB_DATA_DIRS"):
        resolve_registered_path(allowed / "c.jsonl", [])
    with pytest.raises(Invalid) as e:
        resolve_registered_path("", roots)
    assert e.value.status_code == 422


def test_registered_folder_without_shards_is_refused_by_the_source(data_dirs) -> None:
    from interpretability_workbench.activations.sources import SourceError, open_source

    allowed, _, _ = data_dirs
    (allowed / "empty").mkdir()
    (allowed / "empty" / "notes.txt").write_text("a text file is not a shard")
    folder = resolve_registered_path(allowed / "empty", [allowed])
    with pytest.raises(SourceError, match="has no readable shards") as e:
        open_source(folder)
    assert e.value.status_code == 422
