"""CorpusService: the built-in corpus and uploaded corpus files (rows in ``store/corpora.py``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..errors import Invalid, NotFound
from ..model.handle import ModelHandle
from ..store.artifacts import atomic_write_bytes, safe_join
from ..store.corpora import CorpusRecord, CorpusRepo
from ..store.db import new_id, now
from .corpus import SUPPORTED_SUFFIXES, CorpusError, count_tokens, default_corpus_path, load_texts

DEFAULT_ID = "default"


class CorpusLookup(Protocol):
    """What consumers of corpora need: the file of a corpus id (None for the built-in corpus)."""

    def path(self, corpus: str | None) -> Path | None: ...


class CorpusService:
    def __init__(self, repo: CorpusRepo, root: Path, model: ModelHandle) -> None:
        self.repo, self.root, self.model = repo, Path(root), model
        self._default_counts: tuple[Any, dict[str, Any]] | None = None

    def add(self, filename: str, data: bytes) -> CorpusRecord:
        name = Path(filename or "").name
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise Invalid(f"unsupported corpus file {name!r}; upload {', '.join(SUPPORTED_SUFFIXES)}")
        if not data:
            raise Invalid("the uploaded corpus is empty")
        cid = new_id("corpus")
        path = safe_join(self.root, f"{cid}{suffix}")
        atomic_write_bytes(path, data)
        try:
            texts = load_texts(path)
        except CorpusError as e:
            path.unlink(missing_ok=True)
            raise Invalid(str(e)) from None
        lm = self.model.lm
        rec = CorpusRecord(id=cid, name=name, path=str(path), n_docs=len(texts),
                           n_tokens=count_tokens(lm.tokenizer, texts) if lm is not None else None,
                           size_bytes=len(data), created_at=now())
        self.repo.insert(rec)
        return rec

    def list(self) -> list[CorpusRecord]:
        p = default_corpus_path()
        counts = self._counts_of_default()
        default = CorpusRecord(id=DEFAULT_ID, name="default (Python standard library docstrings)", path=str(p),
                               n_docs=counts["n_docs"], n_tokens=counts["n_tokens"], size_bytes=p.stat().st_size,
                               created_at=None)
        return [default, *self.repo.list()]

    def _counts_of_default(self) -> dict[str, Any]:
        """Documents and tokens of the built-in corpus under the loaded tokenizer (computed once per model)."""
        lm = self.model.lm
        key = lm.model_id if lm is not None else None
        if self._default_counts is None or self._default_counts[0] != key:
            texts = load_texts(None)
            n_tokens = count_tokens(lm.tokenizer, texts) if lm is not None else None
            self._default_counts = (key, {"n_docs": len(texts), "n_tokens": n_tokens})
        return self._default_counts[1]

    def path(self, corpus: str | None) -> Path | None:
        """'default'/None -> None (built-in corpus); a corpus id -> its stored file (404 unknown)."""
        if corpus in (None, "", DEFAULT_ID):
            return None
        rec = self.repo.get(corpus)
        if rec is None:
            raise NotFound(f"corpus {corpus!r} not found; GET /api/corpora lists them")
        return Path(rec.path)
