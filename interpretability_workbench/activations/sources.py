"""Open any corpus as a stream (``open_source``) and count its tokens without loading it (``count_tokens``).

Supported: a ``.txt`` file (documents separated by blank lines), ``.jsonl`` / ``.jsonl.gz`` /
``.jsonl.zst`` (one JSON object a line), ``.parquet``, a folder of Parquet/JSONL shards (read in sorted
order), a ``datasets`` ``save_to_disk`` folder, and a hub dataset id read from the local Hugging Face
cache. The text field is ``SourceSpec.text_field``. Reading never holds the whole corpus in memory and
can resume exactly from any ``Position`` it handed out.
"""
from __future__ import annotations

import re
import time
from os import PathLike
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

from .hf_sources import HubCacheSource, SavedDatasetSource, is_saved_dataset
from .readers import FILE_FORMATS, FileShardsSource, corpus_suffix, format_of, list_shards
from .source_types import (START, CorpusExhausted, CorpusSource, Position, ScanItem, SourceError, SourceInfo,
                           SourceSpec)

__all__ = ["FILE_FORMATS", "START", "CorpusExhausted", "CorpusSource", "CountProgress", "Position", "ScanItem",
           "SourceError", "SourceInfo", "SourceSpec", "TokenCount", "contexts_available", "corpus_suffix",
           "count_tokens", "format_of", "list_shards", "open_source"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def open_source(spec: SourceSpec | str | PathLike[str], *, text_field: str | None = None) -> CorpusSource:
    """Open a corpus for streaming. ``spec`` is a ``SourceSpec`` or a bare location (path or hub id);
    ``text_field`` overrides the spec's. Raises ``SourceError`` saying what to change."""
    if not isinstance(spec, SourceSpec):
        spec = SourceSpec(location=str(spec))
    if text_field is not None:
        spec = SourceSpec.from_dict({**spec.to_dict(), "text_field": text_field})
    if spec.kind == "hub":
        return HubCacheSource(spec)
    path = Path(spec.location).expanduser()
    if path.exists():
        path = path.resolve()
        if is_saved_dataset(path):
            return SavedDatasetSource(spec, path)
        return FileShardsSource.open(spec, path)
    if spec.kind == "auto" and _HUB_ID.fullmatch(spec.location) and format_of(spec.location) is None:
        return HubCacheSource(spec)
    raise SourceError(f"no file or folder at {path}; check the path (a hub dataset is named 'owner/name')")


class CountProgress(NamedTuple):
    """Progress of a token count."""

    documents: int
    tokens: int
    bytes_done: int
    bytes_total: int


class TokenCount(NamedTuple):
    """Result of ``count_tokens``: tokens of the non-empty documents (no special tokens), and whether the
    whole source was read (False when cancelled)."""

    documents: int
    tokens: int
    complete: bool


class _Cancel(Protocol):
    def is_set(self) -> bool: ...


def count_tokens(source: CorpusSource, tokenizer: object, *, progress: Callable[[CountProgress], None] | None = None,
                 cancel: _Cancel | None = None, batch_docs: int = 256, min_interval_s: float = 0.5) -> TokenCount:
    """Stream the source once, tokenising ``batch_docs`` documents at a time (``add_special_tokens=False``,
    the rule of ``corpus.count_tokens``). ``progress`` is called at most every ``min_interval_s`` and once
    at the end; setting ``cancel`` (a ``threading.Event``) stops early with ``complete=False``."""
    if batch_docs < 1:
        raise ValueError("batch_docs must be at least 1")
    total = source.size_bytes()
    docs = tokens = done = 0
    last = time.monotonic()
    batch: list[str] = []

    def flush() -> None:
        nonlocal docs, tokens
        if batch:
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
            tokens += sum(len(x) for x in ids)
            docs += len(batch)
            batch.clear()

    for item in source.scan(START):
        batch.append(item.text)
        done = item.bytes_done
        if len(batch) >= batch_docs:
            flush()
            if cancel is not None and cancel.is_set():
                return TokenCount(docs, tokens, False)
            if progress is not None and time.monotonic() - last >= min_interval_s:
                last = time.monotonic()
                progress(CountProgress(docs, tokens, min(done, total), total))
    flush()
    if progress is not None:
        progress(CountProgress(docs, tokens, total, total))
    return TokenCount(docs, tokens, True)


def contexts_available(count: TokenCount, context_size: int, tokenizer: object) -> int:
    """How many contexts the packer makes from a counted corpus in one pass: documents are joined with
    EOS (when the tokenizer has one) and cut into ``context_size`` minus one BOS slot (when it has one)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    body = context_size - (1 if bos is not None else 0)
    return (count.tokens + (count.documents if eos is not None else 0)) // body
