"""Streamed corpus sources over local files: every format through the real library, exact resume from
any position, the .txt/.jsonl/.parquet rules of ``load_texts``, errors that say what to change, and the
streaming token count."""
from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest

from interpretability_workbench.activations import readers
from interpretability_workbench.activations.corpus import CorpusError, load_texts, make_contexts
from interpretability_workbench.activations.corpus import count_tokens as count_all
from interpretability_workbench.activations.source_types import START
from interpretability_workbench.activations.sources import (Position, SourceError, SourceSpec, contexts_available,
                                                            corpus_suffix, count_tokens, format_of, open_source)

from .conftest import txt_docs, write_jsonl, write_parquet, write_txt

FORMATS = ["txt", "jsonl", "jsonl.gz", "jsonl.zst", "parquet", "shards"]


def make_source(kind: str, root: Path, docs: list[str]) -> tuple[Path, list[str]]:
    """Write ``docs`` in ``kind`` format under ``root``; returns (location, documents expected back)."""
    if kind == "txt":
        return write_txt(root / "c.txt", docs), txt_docs(docs)
    if kind == "parquet":
        return write_parquet(root / "c.parquet", docs), docs
    if kind == "shards":
        d = root / "shards"
        (d / "b").mkdir(parents=True)
        write_parquet(d / "a-000.parquet", docs[:10], row_group_size=3)
        write_jsonl(d / "a-001.jsonl.gz", docs[10:25])
        write_jsonl(d / "b" / "x.jsonl.zst", docs[25:50])
        write_jsonl(d / "c.jsonl", docs[50:], blank_every=4)
        (d / "README.md").write_text("not a shard")
        write_jsonl(d / ".partial.jsonl", ["hidden files are skipped"])
        return d, docs
    return write_jsonl(root / f"c.{kind}", docs, blank_every=5), docs


def read_all(src, start: Position = START) -> list[tuple[Position, str]]:
    return list(src.iter_documents(start))


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_reads_the_documents_in_order(kind: str, tmp_path: Path, docs: list[str]) -> None:
    loc, expected = make_source(kind, tmp_path, docs)
    src = open_source(loc)
    assert [t for _, t in read_all(src)] == expected
    info = src.describe()
    assert info.format == ("shards" if kind == "shards" else kind)
    assert info.size_bytes == sum(p.stat().st_size for p in ([loc] if loc.is_file() else src.shards))
    if kind == "shards":
        assert info.shards == ["a-000.parquet", "a-001.jsonl.gz", "b/x.jsonl.zst", "c.jsonl"]
    if kind == "parquet":
        assert info.n_docs == len(docs)


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet"])
def test_same_documents_as_load_texts(kind: str, tmp_path: Path, docs: list[str]) -> None:
    loc, _ = make_source(kind, tmp_path, docs)
    assert [t for _, t in read_all(open_source(loc))] == load_texts(loc)


@pytest.mark.parametrize("kind", FORMATS)
def test_resume_from_any_position_gives_the_remaining_documents(kind: str, tmp_path: Path, docs: list[str]) -> None:
    loc, expected = make_source(kind, tmp_path, docs)
    src = open_source(loc)
    full = read_all(src)
    for k in (1, 2, 9, 10, 11, 24, 25, 26, len(full) - 1, len(full)):
        pos = full[k - 1][0]
        stored = Position.from_dict(json.loads(json.dumps(pos.to_dict())))  # as a checkpoint keeps it
        fresh = open_source(loc)
        assert [t for _, t in read_all(fresh, stored)] == expected[k:], k
        assert read_all(fresh, stored) == full[k:]  # positions after a resume are the same too


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_txt_blank_lines_any_newline_and_small_reads(newline: str, tmp_path: Path, monkeypatch) -> None:
    body = newline.join(["", "", "first doc", "line two", "", "", "", "second", " ", "still second", "",
                         "third  ", "", ""])
    p = tmp_path / "n.txt"
    p.write_bytes(body.encode())
    expected = load_texts(p)  # text mode: universal newlines, split on blank lines, stripped
    assert expected[0] == "first doc\nline two" and len(expected) == 3
    for chunk in (3, 5, 1 << 20):  # separators straddling read boundaries
        monkeypatch.setattr(readers, "READ_CHUNK", chunk)
        full = read_all(open_source(p))
        assert [t for _, t in full] == expected
        for k in range(1, len(full) + 1):
            assert read_all(open_source(p), full[k - 1][0]) == full[k:]


def test_txt_without_separators_is_refused_past_the_document_cap(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "MAX_TXT_DOC_BYTES", 100)
    monkeypatch.setattr(readers, "READ_CHUNK", 64)
    p = tmp_path / "one.txt"
    p.write_text("word " * 200)
    with pytest.raises(SourceError, match="separate documents by blank lines"):
        read_all(open_source(p))


def test_jsonl_positions_count_lines_and_bytes(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "a"}\n\n{"text": "  "}\n{"text": "bé"}\n')
    items = read_all(open_source(p))
    assert [t for _, t in items] == ["a", "bé"]
    raw = p.read_bytes()
    assert items[0][0] == Position(0, 1, len(b'{"text": "a"}\n'))
    assert items[1][0] == Position(0, 4, len(raw))


def test_text_field_is_configurable(tmp_path: Path, docs: list[str]) -> None:
    j = write_jsonl(tmp_path / "c.jsonl", docs[:5], field="content")
    q = write_parquet(tmp_path / "c.parquet", docs[:5], field="body")
    assert [t for _, t in read_all(open_source(SourceSpec(str(j), text_field="content")))] == docs[:5]
    assert [t for _, t in read_all(open_source(q, text_field="body"))] == docs[:5]
    with pytest.raises(SourceError, match=r"line 1 has no string field 'text' \(fields: 'id', 'content'\); "
                                          "set text_field"):
        read_all(open_source(j))
    with pytest.raises(SourceError, match=r"no column 'text' \(columns: id, body\); set text_field"):
        open_source(q)


def test_bad_rows_name_the_line(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "ok"}\n{"text": \n')
    with pytest.raises(SourceError, match="c.jsonl line 3 is not valid JSON"):
        read_all(open_source(p))
    p.write_text('{"text": "ok"}\n["a list"]\n')
    with pytest.raises(SourceError, match="line 2 has no string field 'text' \\(fields: not an object\\)"):
        read_all(open_source(p))
    p.write_text('{"text": "ok"}\n{"text": null}\n')
    with pytest.raises(SourceError, match="line 2 has no string field"):
        read_all(open_source(p))


def test_unreadable_files(tmp_path: Path, docs: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match="bad.parquet is not a readable Parquet file"):
        open_source(bad)
    nums = tmp_path / "nums.parquet"
    pq.write_table(pa.table({"text": [1, 2, 3]}), nums)
    with pytest.raises(SourceError, match="holds int64, not text"):
        open_source(nums)
    gz = write_jsonl(tmp_path / "t.jsonl.gz", docs)
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])  # truncated download
    with pytest.raises(SourceError, match="truncated or corrupt"):
        read_all(open_source(gz))


def test_location_errors_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no file or folder at .*missing.jsonl; check the path") as e:
        open_source(tmp_path / "missing.jsonl")
    assert isinstance(e.value, CorpusError) and e.value.status_code == 422
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("x")
    with pytest.raises(SourceError, match="has no readable shards: put .parquet, .jsonl"):
        open_source(empty)
    (tmp_path / "data.csv").write_text("text\nx\n")
    with pytest.raises(SourceError, match="unsupported corpus file 'data.csv'; use one of .jsonl.gz"):
        open_source(tmp_path / "data.csv")
    with pytest.raises(SourceError, match="kind"):
        SourceSpec(str(tmp_path), kind="s3")


def test_suffixes() -> None:
    assert corpus_suffix("My Corpus.JSONL.zst") == ".jsonl.zst"
    assert corpus_suffix("x.jsonl.gz") == ".jsonl.gz" and corpus_suffix("x.gz") is None
    assert format_of("a.parquet") == "parquet" and format_of(".parquet") is None


def test_count_tokens_streams_with_progress_and_cancel(tmp_path: Path, docs: list[str], tok) -> None:
    loc, expected = make_source("shards", tmp_path, docs)
    src = open_source(loc)
    seen = []
    got = count_tokens(src, tok, progress=seen.append, batch_docs=4, min_interval_s=0.0)
    assert got.complete and got.documents == len(expected)
    assert got.tokens == count_all(tok, expected)  # the existing whole-list count
    total = src.describe().size_bytes
    assert seen[-1].bytes_done == seen[-1].bytes_total == total and seen[-1].tokens == got.tokens
    done = [p.bytes_done for p in seen]
    assert done == sorted(done) and len(seen) > 3
    stop = threading.Event()
    stop.set()
    part = count_tokens(src, tok, cancel=stop, batch_docs=4)
    assert not part.complete and part.documents == 4


def test_contexts_available_matches_make_contexts(tmp_path: Path, docs: list[str], tok) -> None:
    src = open_source(write_jsonl(tmp_path / "c.jsonl", docs))
    count = count_tokens(src, tok)
    for size in (16, 33, 128):
        assert contexts_available(count, size, tok) == make_contexts(tok, docs, size).shape[0]


def test_gzip_concatenated_members(tmp_path: Path, docs: list[str]) -> None:
    p = tmp_path / "multi.jsonl.gz"
    a = "".join(json.dumps({"text": t}) + "\n" for t in docs[:5]).encode()
    b = "".join(json.dumps({"text": t}) + "\n" for t in docs[5:9]).encode()
    p.write_bytes(gzip.compress(a) + gzip.compress(b))  # what `cat a.gz b.gz` makes
    full = read_all(open_source(p))
    assert [t for _, t in full] == docs[:9]
    assert read_all(open_source(p), full[6][0]) == full[7:]
