"""Fixtures for corpus sources and packing: the tiny tokenizer, a handful of documents, and writers
that put the same documents into every supported format with the real libraries."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from interpretability_workbench.activations.corpus import load_texts


@pytest.fixture(scope="session")
def tok(tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def docs() -> list[str]:
    """Real documents (some with inner newlines), unicode, and one long document."""
    base = load_texts(None)[:60]
    extra = ["Ünïcödé — «quotes» and emoji 🙂 in a line", "short", " ".join(load_texts(None)[100:110])]
    return base[:30] + extra + base[30:]


def write_jsonl(path: Path, texts: list[str], field: str = "text", blank_every: int = 0) -> Path:
    lines = []
    for i, t in enumerate(texts):
        lines.append(json.dumps({"id": i, field: t}, ensure_ascii=False))
        if blank_every and i % blank_every == 0:
            lines.append("")
    data = ("\n".join(lines) + "\n").encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):
        import zstandard

        c = zstandard.ZstdCompressor()
        half = len(data) // 2  # two frames: readers must continue across frames
        path.write_bytes(c.compress(data[:half]) + c.compress(data[half:]))
    else:
        path.write_bytes(data)
    return path


def write_parquet(path: Path, texts: list[str], field: str = "text", row_group_size: int = 7) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": list(range(len(texts))), field: texts}), path, row_group_size=row_group_size)
    return path


def write_txt(path: Path, texts: list[str], newline: str = "\n") -> Path:
    """Documents separated by blank lines (documents' own blank lines collapsed to single newlines)."""
    blocks = ["\n".join(line for line in t.splitlines() if line.strip()) for t in texts]
    path.write_bytes((newline * 2).join(b.replace("\n", newline) for b in blocks).encode())
    return path


def txt_docs(texts: list[str]) -> list[str]:
    """What a .txt corpus written by ``write_txt`` holds (blocks, stripped)."""
    return [b.strip() for b in ("\n".join(line for line in t.splitlines() if line.strip()) for t in texts) if b.strip()]
