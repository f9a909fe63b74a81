"""Text corpora -> fixed-length token contexts.

Sources: the built-in default corpus (docstrings of Python's standard library, shipped with the
package, ~155k tokens of the default tokenizer), and user files: ``.txt`` (documents separated by blank
lines), ``.jsonl`` (a ``text`` field per line) and ``.parquet`` (a ``text`` column).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from ..model.tokenize import bos_id

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".parquet")
DEFAULT_CORPUS_NAME = "default"


class CorpusError(ValueError):
    """The corpus is unusable; the message says why."""


def default_corpus_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "default_corpus.jsonl"


def load_texts(path: str | Path | None = None, text_field: str = "text") -> list[str]:
    """Read the documents of a corpus file (None or 'default' for the built-in corpus)."""
    if path is None or str(path) == DEFAULT_CORPUS_NAME:
        path = default_corpus_path()
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"corpus file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        raw = p.read_text(encoding="utf-8", errors="replace")
        texts = [t.strip() for t in raw.split("\n\n")]
    elif suffix == ".jsonl":
        texts = []
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{p.name} line {i} is not valid JSON: {e.msg}") from None
            if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
                raise CorpusError(f"{p.name} line {i} has no string field {text_field!r}")
            texts.append(row[text_field])
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p, columns=[text_field])
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types
            raise CorpusError(f"{p.name}: cannot read column {text_field!r}: {e}") from None
        texts = [t for t in table.column(text_field).to_pylist() if isinstance(t, str)]
    else:
        raise CorpusError(f"unsupported corpus type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise CorpusError(f"corpus {p.name} contains no text")
    return texts


def make_contexts(
    tokenizer: object,
    texts: list[str],
    context_size: int = 128,
    max_contexts: int | None = None,
) -> Tensor:
    """Concatenate documents (separated by the EOS token) and cut them into ``[n_ctx ctx]`` contexts.

    Every context starts with the BOS token when the tokenizer has one (the rule of ``model/tokenize.py``).
    Position 0 of each context is an attention sink with outlier norms; training and metrics exclude it.
    """
    if context_size < 2:
        raise CorpusError("context_size must be at least 2")
    if not texts:
        raise CorpusError("corpus contains no text")
    bos = bos_id(tokenizer)
    eos = getattr(tokenizer, "eos_token_id", None)
    body = context_size - (1 if bos is not None else 0)
    stream: list[int] = []
    need = None if max_contexts is None else max_contexts * body
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
        if need is not None and len(stream) >= need:
            break
    n = len(stream) // body
    if max_contexts is not None:
        n = min(n, max_contexts)
    if n == 0:
        raise CorpusError(f"corpus has {len(stream)} tokens, fewer than one context of {context_size}")
    ctx = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
    if bos is not None:
        ctx = torch.cat([torch.full((n, 1), bos, dtype=torch.long), ctx], dim=1)
    return ctx


class Split(NamedTuple):
    train: Tensor
    held_out: Tensor


def split_contexts(contexts: Tensor, held_out_fraction: float = 0.1) -> Split:
    """Deterministic split: the last ``held_out_fraction`` of contexts is held out (at least one)."""
    n = contexts.shape[0]
    if n < 2:
        raise CorpusError("need at least 2 contexts to hold some out; give a larger corpus or shorter contexts")
    k = max(1, int(round(n * held_out_fraction)))
    return Split(contexts[: n - k], contexts[n - k:])


def count_tokens(tokenizer: object, texts: list[str]) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
