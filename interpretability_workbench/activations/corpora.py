"""CorpusService: the built-in corpus, uploaded corpus files, corpora registered by path and hub datasets
from the local cache (rows in ``store/corpora.py``).

Uploads are streamed to disk under ``max_bytes`` (``upload.astream_to_file``: nothing half-written is ever
left), then opened with ``sources.open_source`` and their first document read, so a wrong format or text
field is refused at once (422, file removed, no row). Registered paths must lie under ``data_dirs``. Every
corpus keeps the ``SourceSpec`` that opens it; its tokens are counted in the background (``CountJobs``),
the row saying 'counting' until then. Counts need a tokenizer: without a model they wait for the next load.
"""
from __future__ import annotations

import threading
from os import PathLike
from pathlib import Path
from typing import AsyncIterable, Iterable, NamedTuple, Protocol, Sequence

from ..errors import Invalid, NotFound
from ..events import Publish
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..store.corpora import CorpusRecord, CorpusRepo
from ..store.db import new_id, now
from .corpus import default_corpus_path
from .counting import CountJobs, CountResult
from .source_types import START, SourceError, SourceSpec
from .sources import CountProgress, TokenCount, corpus_suffix, count_tokens, open_source
from .upload import StoredFile, astream_to_file, remove_partials, resolve_registered_path, stream_to_file

DEFAULT_ID = "default"
DEFAULT_NAME = "default (Python standard library docstrings)"


class CorpusLookup(Protocol):
    """What consumers of corpora need."""

    def path(self, corpus: str | None) -> Path | None:
        """The file or folder of a corpus id (None for the built-in corpus; 404 unknown)."""

    def source(self, corpus: str | None) -> SourceSpec:
        """The ``SourceSpec`` that opens a corpus id ('default'/None: the built-in corpus; 404 unknown)."""

    def known_count(self, corpus: str | None, lm: LoadedModel) -> TokenCount | None:
        """Documents and tokens under ``lm``'s tokenizer when already counted (None while unknown)."""


class CorpusView(NamedTuple):
    """A corpus as listed: its row and, while its tokens are being counted, the live progress."""

    record: CorpusRecord
    progress: CountProgress | None


class CorpusService:
    def __init__(self, repo: CorpusRepo, root: Path, model: ModelHandle, publish: Publish, *,
                 max_bytes: int = 20 << 30, data_dirs: Sequence[str | PathLike[str]] = ()) -> None:
        self.repo, self.root, self.model = repo, Path(root), model
        self.max_bytes, self.data_dirs = max_bytes, list(data_dirs)
        self.jobs = CountJobs(publish, self._store_count)
        self._default_counts: dict[str, TokenCount] = {}
        self._default_lock = threading.Lock()
        remove_partials(self.root)  # what a killed upload left behind
        model.on_change(lambda _old, new: self.count_pending(new))

    # adding corpora ----------------------------------------------------------------------
    async def add_stream(self, filename: str, chunks: AsyncIterable[bytes], *, text_field: str = "text") -> CorpusRecord:
        """Stream an upload to disk (cap ``max_bytes``, 413 beyond; an interrupted upload leaves nothing),
        check it opens, record it and queue its token count."""
        import asyncio

        cid, name, suffix = self._new_upload(filename, text_field)
        stored = await astream_to_file(chunks, self.root, f"{cid}{suffix}", self.max_bytes)
        return await asyncio.to_thread(self._record_upload, cid, name, stored, text_field)

    def add_file(self, src: str | PathLike[str], *, text_field: str = "text", name: str | None = None) -> CorpusRecord:
        """Copy a local file into the workspace in chunks (the CLI's upload), then as ``add_stream``."""
        src = Path(src).expanduser()
        if not src.is_file():
            raise Invalid(f"{src} is not a file; give a corpus file, or --register a folder under IWB_DATA_DIRS")
        cid, label, suffix = self._new_upload(name or src.name, text_field)

        def read() -> Iterable[bytes]:
            with open(src, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
        stored = stream_to_file(read(), self.root, f"{cid}{suffix}", self.max_bytes)
        return self._record_upload(cid, label, stored, text_field)

    def register_path(self, path: str | PathLike[str], *, text_field: str = "text") -> CorpusRecord:
        """Record a file or folder already on this machine (under ``data_dirs``; 422 elsewhere) without
        copying it."""
        resolved = resolve_registered_path(path, self.data_dirs)
        spec = SourceSpec(location=str(resolved), kind="path", text_field=text_field)
        return self._record_source(spec, kind="path", name=resolved.name or str(resolved))

    def register_hub(self, dataset_id: str, *, text_field: str = "text", split: str = "train",
                     config: str | None = None, revision: str | None = None) -> CorpusRecord:
        """Record a hub dataset found in the local Hugging Face cache (never downloads; 422 when absent)."""
        spec = SourceSpec(location=dataset_id, kind="hub", text_field=text_field, split=split, config=config,
                          revision=revision)
        return self._record_source(spec, kind="hub", name=dataset_id)

    def _new_upload(self, filename: str, text_field: str) -> tuple[str, str, str]:
        name = Path((filename or "").replace("\\", "/")).name
        suffix = corpus_suffix(name)
        if suffix is None:
            raise Invalid(f"unsupported corpus file {name!r}; upload .txt, .jsonl, .jsonl.gz, .jsonl.zst or "
                          ".parquet (a folder of shards, a datasets folder or a hub dataset is registered instead)")
        SourceSpec(location=name, text_field=text_field)  # 422 on an empty text_field before any byte is read
        return new_id("corpus"), name, suffix

    def _record_upload(self, cid: str, name: str, stored: StoredFile, text_field: str) -> CorpusRecord:
        spec = SourceSpec(location=str(stored.path), kind="path", text_field=text_field)
        try:
            return self._record_source(spec, kind="upload", name=name, cid=cid)
        except BaseException:
            stored.path.unlink(missing_ok=True)
            raise

    def _record_source(self, spec: SourceSpec, *, kind: str, name: str, cid: str | None = None) -> CorpusRecord:
        try:
            src = open_source(spec)
            info = src.describe()
            first = next(iter(src.scan(START)), None)
        except SourceError as e:
            raise Invalid(str(e)) from None
        if first is None:
            raise Invalid(f"{name} holds no text (every document is empty); check the file or text_field")
        lm = self.model.lm
        rec = CorpusRecord(id=cid or new_id("corpus"), name=name, path=info.location, n_docs=info.n_docs,
                           n_tokens=None, size_bytes=info.size_bytes, created_at=now(), kind=kind,
                           format=info.format, text_field=spec.text_field, spec=spec.to_dict(),
                           status="counting" if lm is not None else "ready")
        self.repo.insert(rec)
        if lm is not None:
            self.jobs.submit(rec.id, spec, lm.tokenizer, lm.model_id)
        return rec

    # counting ----------------------------------------------------------------------------
    def count_pending(self, lm: LoadedModel) -> int:
        """Queue counts of corpora not yet counted (or interrupted while counting); returns how many."""
        n = 0
        for rec in self.repo.list():
            if rec.status == "counting" or (rec.status == "ready" and rec.n_tokens is None):
                self.repo.update(rec.id, status="counting")
                self.jobs.submit(rec.id, SourceSpec.from_dict(rec.spec), lm.tokenizer, lm.model_id)
                n += 1
        return n

    def _store_count(self, r: CountResult) -> None:
        if r.error is not None:
            self.repo.update(r.corpus_id, status="failed", error=r.error)
        elif r.count is not None:
            self.repo.update(r.corpus_id, status="ready", error=None, n_docs=r.count.documents,
                             n_tokens=r.count.tokens, tokenizer=r.tokenizer_id)

    def wait_counts(self, timeout: float | None = None) -> bool:
        return self.jobs.wait(timeout)

    def shutdown(self) -> None:
        self.jobs.shutdown()

    # queries -----------------------------------------------------------------------------
    def list(self) -> list[CorpusView]:
        return [CorpusView(self._default_record(), None),
                *(CorpusView(r, self.jobs.progress(r.id)) for r in self.repo.list())]

    def get(self, corpus: str) -> CorpusView:
        if corpus in ("", DEFAULT_ID):
            return CorpusView(self._default_record(), None)
        return CorpusView(self._row(corpus), self.jobs.progress(corpus))

    def _row(self, corpus: str) -> CorpusRecord:
        rec = self.repo.get(corpus)
        if rec is None:
            raise NotFound(f"corpus {corpus!r} not found; GET /api/corpora lists them")
        return rec

    def _default_record(self) -> CorpusRecord:
        p = default_corpus_path()
        lm = self.model.lm
        count = self._default_count(lm) if lm is not None else None
        return CorpusRecord(id=DEFAULT_ID, name=DEFAULT_NAME, path=str(p), n_docs=count.documents if count else None,
                            n_tokens=count.tokens if count else None, size_bytes=p.stat().st_size, created_at=None,
                            kind="path", format="jsonl", spec=self.source(None).to_dict(),
                            tokenizer=lm.model_id if lm is not None else None)

    def _default_count(self, lm: LoadedModel) -> TokenCount:
        """The built-in corpus counted under ``lm``'s tokenizer (≈155k tokens: counted once per model)."""
        with self._default_lock:
            if lm.model_id not in self._default_counts:
                self._default_counts[lm.model_id] = count_tokens(open_source(self.source(None)), lm.tokenizer)
            return self._default_counts[lm.model_id]

    # CorpusLookup ------------------------------------------------------------------------
    def path(self, corpus: str | None) -> Path | None:
        if corpus in (None, "", DEFAULT_ID):
            return None
        rec = self._row(corpus)
        if rec.kind == "hub":
            raise Invalid(f"corpus {corpus!r} is the hub dataset {rec.path!r}, not a file; this feature reads "
                          "corpus files: upload or register one")
        return Path(rec.path)

    def source(self, corpus: str | None) -> SourceSpec:
        if corpus in (None, "", DEFAULT_ID):
            return SourceSpec(location=str(default_corpus_path()), kind="path")
        rec = self._row(corpus)
        return SourceSpec.from_dict(rec.spec) if rec.spec else SourceSpec(location=rec.path, kind="path",
                                                                          text_field=rec.text_field)

    def known_count(self, corpus: str | None, lm: LoadedModel) -> TokenCount | None:
        if corpus in (None, "", DEFAULT_ID):
            return self._default_count(lm)
        rec = self._row(corpus)
        if rec.status != "ready" or rec.n_tokens is None or rec.n_docs is None or rec.tokenizer != lm.model_id:
            return None
        return TokenCount(rec.n_docs, rec.n_tokens, True)
