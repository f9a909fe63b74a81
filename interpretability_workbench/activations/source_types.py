"""The vocabulary of streamed corpus sources: where a reader stands (``Position``), what to open
(``SourceSpec``), what a source holds (``SourceInfo``), its errors, and the ``CorpusSource`` interface
every format implements. The formats live in ``readers`` (files and shard folders) and ``hf_sources``
(``datasets`` folders and the local Hugging Face hub cache); ``sources.open_source`` picks one."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, NamedTuple

from ..errors import Invalid
from .corpus import CorpusError

SOURCE_KINDS = ("auto", "path", "hub")


class SourceError(Invalid, CorpusError):
    """A corpus source is unusable. It is a ``CorpusError`` (existing callers catch it) and an ``Invalid``
    (the REST layer answers 422 with the message, which says what to change)."""


class CorpusExhausted(SourceError):
    """The corpus ended (after the allowed passes) before the contexts asked for were produced."""


@dataclass(frozen=True)
class Position:
    """Where reading a source resumes. Positions are only compared and stored, never computed by callers:
    take them from ``iter_documents`` and hand them back to it."""

    shard: int = 0
    """Index of the shard (file, or ``datasets`` shard) in the source's fixed order."""
    row: int = 0
    """Records of that shard already consumed (lines, rows or blank-line blocks; empty ones included)."""
    byte: int = 0
    """Offset in the shard's (decompressed) byte stream where the next record starts; 0 for row-addressed
    formats (Parquet, ``datasets``)."""

    def __post_init__(self) -> None:
        for name in ("shard", "row", "byte"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Position.{name} must be a non-negative int, got {v!r}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Position:
        return cls(**{k: int(d.get(k, 0)) for k in ("shard", "row", "byte")})


START = Position()


@dataclass(frozen=True)
class SourceSpec:
    """What to open as a corpus."""

    location: str
    """A path (a file or a folder) or, for ``kind`` 'hub' or 'auto', a hub dataset id ``owner/name``."""
    text_field: str = "text"
    """The JSON field / column that holds each document's text (unused for .txt)."""
    kind: str = "auto"
    """'path' (a local file or folder), 'hub' (a dataset id in the local Hugging Face cache) or 'auto'
    (a path when it exists, else a hub id when it looks like one)."""
    split: str = "train"
    """The split to read from a ``datasets`` folder holding several splits or from a hub dataset."""
    config: str | None = None
    """The hub dataset configuration (subset) name, when it has several."""
    revision: str | None = None
    """The hub dataset revision (branch or commit) in the local cache; None = the cached 'main'."""
    cache_dir: str | None = None
    """The Hugging Face hub cache folder; None = the library default (HF_HUB_CACHE / HF_HOME)."""

    def __post_init__(self) -> None:
        if not isinstance(self.location, str) or not self.location.strip():
            raise SourceError("give the corpus location: a file, a folder or a hub dataset id 'owner/name'")
        if self.kind not in SOURCE_KINDS:
            raise SourceError(f"unknown source kind {self.kind!r}; use one of {', '.join(SOURCE_KINDS)}")
        if not isinstance(self.text_field, str) or not self.text_field:
            raise SourceError("text_field must name the field or column that holds the text, e.g. 'text'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceSpec:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SourceInfo:
    """A cheap description of a source (no full read)."""

    format: str
    """'txt', 'jsonl', 'jsonl.gz', 'jsonl.zst', 'parquet', 'shards' (a folder of files), 'datasets'
    (a ``save_to_disk`` folder) or 'hub' (a dataset in the local hub cache)."""
    location: str
    """The resolved path (or the hub id) that was opened."""
    shards: list[str] = field(default_factory=list)
    """The shard files in reading order, relative to ``location`` (one entry for a single file); for
    'datasets' its Arrow files, for 'hub' every file of the cached snapshot (all splits)."""
    size_bytes: int = 0
    """Bytes on disk of those files (compressed size for compressed files)."""
    n_docs: int | None = None
    """Rows when known without reading the text (Parquet metadata, ``datasets`` length); None for text
    streams. Rows with empty text count here but are skipped when reading."""
    text_field: str = "text"
    """The field / column read as text."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScanItem(NamedTuple):
    """One document with the position after it and how far through the source's bytes reading is."""

    position: Position
    text: str
    bytes_done: int


class CorpusSource(ABC):
    """A corpus read lazily in a fixed order. ``iter_documents(start)`` yields ``(position, text)`` where
    ``position`` is the position *after* that document: pass it back to continue with the next one."""

    spec: SourceSpec

    @abstractmethod
    def describe(self) -> SourceInfo:
        """Format, shards and sizes, without reading the documents."""

    @abstractmethod
    def scan(self, start: Position = START) -> Iterator[ScanItem]:
        """Documents from ``start`` with byte progress (for counting jobs)."""

    def iter_documents(self, start: Position = START) -> Iterator[tuple[Position, str]]:
        for item in self.scan(start):
            yield item.position, item.text

    def size_bytes(self) -> int:
        return self.describe().size_bytes
