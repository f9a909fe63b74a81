"""Local corpus files read as streams: ``.txt`` (documents separated by blank lines), ``.jsonl`` (plain,
gzip or zstandard compressed, one JSON object a line) and ``.parquet`` (by record batches), alone or as a
folder of shards read in sorted order. Nothing holds more than one record (or one Parquet batch) at a
time, and every document comes with the exact position to resume after it.

Text rules match ``corpus.load_texts``: .txt blocks are stripped (newlines normalised as text mode reads
them), JSONL/Parquet texts are kept as they are, and empty or blank documents are skipped.
"""
from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path
from typing import BinaryIO, Iterator

from .source_types import START, CorpusSource, Position, ScanItem, SourceError, SourceInfo, SourceSpec

#: file formats by suffix (longest first, so ``.jsonl.gz`` wins over ``.gz``)
FILE_FORMATS = {".jsonl.gz": "jsonl.gz", ".jsonl.zst": "jsonl.zst", ".jsonl": "jsonl", ".parquet": "parquet",
                ".txt": "txt"}
#: formats accepted as shards inside a folder
SHARD_FORMATS = ("parquet", "jsonl", "jsonl.gz", "jsonl.zst")
READ_CHUNK = 1 << 20  # bytes read at a time from text streams
PARQUET_BATCH_ROWS = 1024
MAX_TXT_DOC_BYTES = 64 << 20  # a .txt block larger than this has no blank-line separators
_TXT_SEP = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")  # a blank line, in any newline convention


def format_of(path: str | Path) -> str | None:
    """The file format named by the suffix ('jsonl.gz', 'parquet', ...), or None when unsupported."""
    name = Path(path).name.lower()
    for suffix, fmt in FILE_FORMATS.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return fmt
    return None


def corpus_suffix(name: str) -> str | None:
    """The full corpus suffix of a file name (``.jsonl.zst`` rather than ``.zst``), or None."""
    fmt = format_of(name)
    return None if fmt is None else "." + fmt


def _supported() -> str:
    return ", ".join(FILE_FORMATS)


def list_shards(folder: Path) -> list[Path]:
    """Shard files under ``folder`` (recursively, hidden names skipped) sorted by relative path."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith((".", "_")) for part in rel.parts) or not p.is_file():
            continue
        if format_of(p) in SHARD_FORMATS:
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


class FileShardsSource(CorpusSource):
    """One file, or a folder of Parquet/JSONL shards, read shard after shard."""

    def __init__(self, spec: SourceSpec, root: Path, shards: list[Path]) -> None:
        self.spec, self.root, self.shards = spec, root, shards
        self.formats = [format_of(p) or "" for p in shards]
        self.sizes = [p.stat().st_size for p in shards]
        for p, fmt in zip(shards, self.formats):
            if fmt == "parquet":
                self._parquet_file(p)  # fail now on a corrupt file or a missing column

    @classmethod
    def open(cls, spec: SourceSpec, path: Path) -> FileShardsSource:
        if path.is_dir():
            shards = list_shards(path)
            if not shards:
                raise SourceError(f"folder {path} has no readable shards: put .parquet, .jsonl, .jsonl.gz or "
                                  f".jsonl.zst files in it (names starting with '.' or '_' are skipped)")
            return cls(spec, path, shards)
        if format_of(path) is None:
            raise SourceError(f"unsupported corpus file {path.name!r}; use one of {_supported()}, "
                              f"a folder of shards, or a datasets save_to_disk folder")
        return cls(spec, path, [path])

    def describe(self) -> SourceInfo:
        n_docs: int | None = None
        if all(f == "parquet" for f in self.formats):
            n_docs = sum(self._parquet_file(p).metadata.num_rows for p in self.shards)
        single = len(self.shards) == 1 and self.shards[0] == self.root
        return SourceInfo(format=self.formats[0] if single else "shards", location=str(self.root),
                          shards=[p.name if single else p.relative_to(self.root).as_posix() for p in self.shards],
                          size_bytes=sum(self.sizes), n_docs=n_docs, text_field=self.spec.text_field)

    def scan(self, start: Position = START) -> Iterator[ScanItem]:
        if start.shard > len(self.shards):
            raise SourceError(f"position {start} is past the last shard of {self.root}; the corpus changed "
                              "since the position was stored: restart the run")
        done_before = sum(self.sizes[: start.shard])
        for i in range(start.shard, len(self.shards)):
            pos = start if i == start.shard else Position(shard=i)
            for item in self._scan_shard(i, pos):
                yield ScanItem(item.position, item.text, done_before + item.bytes_done)
            done_before += self.sizes[i]

    # one shard ---------------------------------------------------------------------
    def _label(self, i: int) -> str:
        p = self.shards[i]
        return p.name if p == self.root else p.relative_to(self.root).as_posix()

    def _scan_shard(self, i: int, pos: Position) -> Iterator[ScanItem]:
        fmt = self.formats[i]
        if fmt == "parquet":
            return self._scan_parquet(i, pos)
        if fmt == "txt":
            return self._scan_txt(i, pos)
        return self._scan_jsonl(i, pos)

    def _open_stream(self, i: int, fmt: str) -> tuple[BinaryIO, BinaryIO]:
        """(decompressed stream, raw file) for a text shard."""
        raw = open(self.shards[i], "rb")
        try:
            if fmt == "jsonl.gz":
                return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
            if fmt == "jsonl.zst":
                import zstandard

                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
                return io.BufferedReader(reader, READ_CHUNK), raw  # type: ignore[arg-type]
            return raw, raw
        except Exception:
            raw.close()
            raise

    @staticmethod
    def _seek(stream: BinaryIO, raw: BinaryIO, offset: int) -> None:
        if offset <= 0:
            return
        if stream is raw:
            stream.seek(offset)
            return
        left = offset  # compressed: decode and drop (streams only seek forward by reading)
        while left:
            got = stream.read(min(left, READ_CHUNK))
            if not got:
                raise SourceError("the stored read position is past the end of a compressed shard; the corpus "
                                  "changed since the position was stored: restart the run")
            left -= len(got)

    def _scan_jsonl(self, i: int, pos: Position) -> Iterator[ScanItem]:
        fmt, field, label = self.formats[i], self.spec.text_field, self._label(i)
        stream, raw = self._open_stream(i, fmt)
        try:
            line_no, offset = pos.row, pos.byte
            try:
                self._seek(stream, raw, pos.byte)  # compressed: decodes up to the offset again
                for line in stream:
                    line_no += 1
                    offset += len(line)
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                        raise SourceError(f"{label} line {line_no} is not valid JSON ({msg}); fix or drop that "
                                          "line (one JSON object per line)") from None
                    text = row.get(field) if isinstance(row, dict) else None
                    if not isinstance(text, str):
                        keys = ", ".join(map(repr, list(row)[:12])) if isinstance(row, dict) else "not an object"
                        raise SourceError(f"{label} line {line_no} has no string field {field!r} (fields: {keys}); "
                                          "set text_field to the field that holds the text")
                    if text and text.strip():
                        yield ScanItem(Position(i, line_no, offset), text, raw.tell())
            except SourceError:
                raise
            except Exception as e:  # noqa: BLE001 - gzip/zlib/zstandard raise several types
                raise SourceError(f"{label}: cannot decompress after line {line_no} ({e}); the file is "
                                  "truncated or corrupt: re-create it") from None
        finally:
            stream.close()
            raw.close()

    def _scan_txt(self, i: int, pos: Position) -> Iterator[ScanItem]:
        label = self._label(i)
        with open(self.shards[i], "rb") as f:
            f.seek(pos.byte)
            buf, at, base, block = b"", 0, pos.byte, pos.row  # base: file offset of buf[0]; at: scan start
            eof = False
            while True:
                m = _TXT_SEP.search(buf, at)
                # a separator ending in '\r' at the end of the buffer may still grow into '\r\n'
                if m is None or (not eof and m.end() == len(buf) and buf.endswith(b"\r")):
                    if not eof:
                        if len(buf) - at > MAX_TXT_DOC_BYTES:
                            raise SourceError(f"{label}: the document at byte {base + at} is over "
                                              f"{MAX_TXT_DOC_BYTES >> 20} MiB; separate documents by blank lines")
                        more = f.read(READ_CHUNK)
                        buf, base, at = buf[at:] + more, base + at, 0
                        eof = not more
                        continue
                    piece, end = buf[at:], len(buf)
                else:
                    piece, end = buf[at: m.start()], m.end()
                block += 1
                at = end
                text = piece.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n").strip()
                if text:
                    yield ScanItem(Position(i, block, base + end), text, base + end)
                if eof and at >= len(buf):
                    return

    def _parquet_file(self, p: Path):  # -> pyarrow.parquet.ParquetFile
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(p)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for unreadable files
            raise SourceError(f"{p.name} is not a readable Parquet file ({e}); re-export it") from None
        names = pf.schema_arrow.names
        field = self.spec.text_field
        if field not in names:
            raise SourceError(f"{p.name} has no column {field!r} (columns: {', '.join(names[:20])}); "
                              "set text_field to the column that holds the text")
        t = pf.schema_arrow.field(field).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t)
                or getattr(pa.types, "is_string_view", lambda _t: False)(t)):
            raise SourceError(f"{p.name} column {field!r} holds {t}, not text; set text_field to a string column")
        return pf

    def _scan_parquet(self, i: int, pos: Position) -> Iterator[ScanItem]:
        pf = self._parquet_file(self.shards[i])
        meta = pf.metadata
        total, size = meta.num_rows, self.sizes[i]
        if pos.row > total:
            raise SourceError(f"position {pos} is past the end of {self._label(i)}; the corpus changed since "
                              "the position was stored: restart the run")
        rg, before = 0, 0  # the row group holding row pos.row, and the rows before it
        while rg < meta.num_row_groups and before + meta.row_group(rg).num_rows <= pos.row:
            before += meta.row_group(rg).num_rows
            rg += 1
        if rg >= meta.num_row_groups:
            return
        skip, row = pos.row - before, before
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=list(range(rg, meta.num_row_groups)),
                                         columns=[self.spec.text_field], use_threads=False):
                col = batch.column(0)
                if skip >= len(col):
                    skip -= len(col)
                    row += len(col)
                    continue
                if skip:
                    col, row, skip = col.slice(skip), row + skip, 0
                for text in col.to_pylist():
                    row += 1
                    if isinstance(text, str) and text and text.strip():
                        yield ScanItem(Position(i, row, 0), text, size * row // max(1, total))
        finally:
            pf.close()
