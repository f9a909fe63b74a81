"""Hugging Face ``datasets`` as corpus sources, without network:

* a ``save_to_disk`` folder, opened with ``datasets.load_from_disk`` (memory-mapped Arrow, read by slices);
* a hub dataset id read from the local hub cache. The id is resolved to its cached snapshot
  (``<cache>/datasets--owner--name/snapshots/<commit>/``, the commit named by ``refs/<revision>``) with
  ``huggingface_hub.snapshot_download(local_files_only=True)``, and that folder is opened with
  ``datasets.load_dataset(folder, name=config, split=split, streaming=True)``, which applies the card's
  configs and split patterns to its Parquet/JSONL data files. Nothing is downloaded: an uncached id is an
  error that says how to get it there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .source_types import START, CorpusSource, Position, ScanItem, SourceError, SourceInfo, SourceSpec

DATASET_SLICE_ROWS = 1024


def is_saved_dataset(path: Path) -> bool:
    """A ``save_to_disk`` folder: a Dataset (state.json + dataset_info.json) or a DatasetDict."""
    return path.is_dir() and ((path / "state.json").is_file() and (path / "dataset_info.json").is_file()
                              or (path / "dataset_dict.json").is_file())


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _text_check(fields: list[str], spec: SourceSpec, where: str) -> None:
    if spec.text_field not in fields:
        raise SourceError(f"{where} has no column {spec.text_field!r} (columns: {', '.join(fields[:20])}); "
                          "set text_field to the column that holds the text")


class SavedDatasetSource(CorpusSource):
    """A ``datasets`` ``save_to_disk`` folder; positions are row indices (one shard)."""

    def __init__(self, spec: SourceSpec, path: Path) -> None:
        import datasets

        self.spec, self.path = spec, path
        try:
            ds: Any = datasets.load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001 - datasets raises several types for broken folders
            raise SourceError(f"{path} is not a readable datasets folder ({e}); "
                              "re-create it with save_to_disk") from None
        if isinstance(ds, datasets.DatasetDict):
            if spec.split not in ds:
                raise SourceError(f"{path} has no split {spec.split!r} (splits: {', '.join(ds)}); set split")
            ds = ds[spec.split]
        _text_check(list(ds.column_names), spec, str(path))
        self.ds = ds.select_columns([spec.text_field]).with_format("arrow")

    def describe(self) -> SourceInfo:
        shards = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*.arrow"))
        return SourceInfo(format="datasets", location=str(self.path), shards=shards,
                          size_bytes=_folder_size(self.path), n_docs=len(self.ds), text_field=self.spec.text_field)

    def scan(self, start: Position = START) -> Iterator[ScanItem]:
        n, size = len(self.ds), _folder_size(self.path)
        if start.shard > 0 or start.row > n:
            raise SourceError(f"position {start} is past the end of {self.path}; the dataset changed since the "
                              "position was stored: restart the run")
        for lo in range(start.row, n, DATASET_SLICE_ROWS):
            table = self.ds[lo: lo + DATASET_SLICE_ROWS]  # pyarrow.Table, one column
            for j, text in enumerate(table.column(0).to_pylist()):
                if isinstance(text, str) and text and text.strip():
                    row = lo + j + 1
                    yield ScanItem(Position(0, row, 0), text, size * row // max(1, n))


def resolve_hub_snapshot(spec: SourceSpec) -> Path:
    """The local snapshot folder of ``spec.location`` (a dataset id) in the hub cache; never downloads."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = spec.cache_dir or constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(spec.location, repo_type="dataset", revision=spec.revision,
                                      cache_dir=spec.cache_dir, local_files_only=True))
    except HFValidationError as e:
        raise SourceError(f"{spec.location!r} is neither an existing path nor a hub dataset id "
                          f"'owner/name' ({e})") from None
    except LocalEntryNotFoundError:
        rev = f" at revision {spec.revision!r}" if spec.revision else ""
        raise SourceError(f"dataset {spec.location!r}{rev} is not in the local Hugging Face cache ({cache}) and "
                          f"nothing is downloaded here: fetch it into that cache where there is network "
                          f"(huggingface-cli download --repo-type dataset {spec.location}), or copy its files "
                          "under a data folder and register them by path") from None


class HubCacheSource(CorpusSource):
    """A hub dataset from the local cache, streamed by ``datasets`` one shard (data file) at a time;
    positions are (shard, rows consumed in it)."""

    def __init__(self, spec: SourceSpec) -> None:
        import datasets

        self.spec = spec
        self.snapshot = resolve_hub_snapshot(spec)
        try:
            ds: Any = datasets.load_dataset(str(self.snapshot), name=spec.config, split=spec.split, streaming=True)
        except ValueError as e:  # unknown split / config
            raise SourceError(f"dataset {spec.location!r}: {e}; set split (and config) to ones it has") from None
        except Exception as e:  # noqa: BLE001 - no data files, unreadable card...
            raise SourceError(f"dataset {spec.location!r} in the local cache cannot be read ({e})") from None
        if ds.features is not None:
            _text_check(list(ds.features), spec, f"dataset {spec.location!r}")
        self.ds = ds
        self.n_shards = int(ds.num_shards)
        self._size = sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        return sorted(p for p in self.snapshot.rglob("*") if p.is_file() and not p.name.startswith("."))

    def describe(self) -> SourceInfo:
        files = self._files()
        n_docs = None
        splits = getattr(self.ds.info, "splits", None) or {}
        if self.spec.split in splits and splits[self.spec.split].num_examples:
            n_docs = int(splits[self.spec.split].num_examples)
        return SourceInfo(format="hub", location=self.spec.location,
                          shards=[p.relative_to(self.snapshot).as_posix() for p in files],
                          size_bytes=self._size, n_docs=n_docs,
                          text_field=self.spec.text_field)

    def scan(self, start: Position = START) -> Iterator[ScanItem]:
        if start.shard > self.n_shards:
            raise SourceError(f"position {start} is past the last shard of {self.spec.location!r}; the cached "
                              "dataset changed since the position was stored: restart the run")
        field, where = self.spec.text_field, f"dataset {self.spec.location!r}"
        for i in range(start.shard, self.n_shards):
            part = self.ds.shard(num_shards=self.n_shards, index=i, contiguous=True)
            row = start.row if i == start.shard else 0
            if row:
                part = part.skip(row)
            for example in part:
                row += 1
                if field not in example:
                    raise SourceError(f"{where} shard {i} row {row} has no field {field!r} (fields: "
                                      f"{', '.join(list(example)[:20])}); set text_field to the one with the text")
                text = example[field]
                if isinstance(text, str) and text and text.strip():
                    yield ScanItem(Position(i, row, 0), text, self._size * i // self.n_shards)  # shards done
