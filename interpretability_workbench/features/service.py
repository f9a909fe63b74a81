"""FeatureService: runs feature analyses (synchronously or in a worker thread), persists their results
through the feature repository (``store/features.py``), and answers feature queries.

Analyses publish ``analysis_progress`` {sae_id, phase, done, total} and ``analysis_done``
{sae_id, status: done|failed|cancelled, n_features, n_tokens, seconds, error}.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..activations.corpora import CorpusLookup
from ..activations.corpus import CorpusError, load_texts, make_contexts
from ..errors import Conflict, Invalid
from ..events import AnalysisDone, AnalysisProgress, Publish
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..model.token_text import token_texts
from ..model.tokenize import bos_id
from ..sae.model import SparseAutoencoder
from ..sae.registry import SAERegistry
from ..store.features import AnalysedFeature, FeatureRepo
from .analysis import AnalysisConfig, run_analysis
from .queries import FeatureQueries
from .text import TextActivations, text_activations
from .weight_views import WEIGHT_VIEWS_NAME

log = logging.getLogger(__name__)


def excluded_token_ids(tokenizer: object) -> list[int]:
    """Token ids an analysis never counts: every special token (BOS, EOS, padding, ...)."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", None) or []}
    bos = bos_id(tokenizer)
    if bos is not None:
        ids.add(bos)
    for name in ("eos_token_id", "pad_token_id", "unk_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            ids.add(v)
    return sorted(ids)


class FeatureService:
    def __init__(self, repo: FeatureRepo, saes: SAERegistry, model: ModelHandle, corpora: CorpusLookup,
                 publish: Publish, scope: AbstractContextManager[Any], *, context_size: int,
                 max_prompt_tokens: int, analysis_tokens: int | None = None) -> None:
        """``scope``: held around every forward (the model lock, with every patch switched off).
        ``analysis_tokens``: tokens an analysis reads when the request names none (None or 0: the whole corpus)."""
        self.repo, self.saes, self.model, self.corpora = repo, saes, model, corpora
        self.publish, self.scope = publish, scope
        self.context_size, self.max_prompt_tokens = context_size, max_prompt_tokens
        self.analysis_tokens = analysis_tokens or None
        self.queries = FeatureQueries(repo, saes)
        self.config = AnalysisConfig()
        self._lock = threading.Lock()
        self._jobs: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._vocab: tuple[object, list[str]] | None = None
        self._contexts: tuple[tuple, Any] | None = None  # last tokenized analysis corpus
        # a 'running' row left by a process that stopped mid-analysis can never finish
        repo.fail_running("interrupted: the workbench stopped during the analysis")

    # helpers ------------------------------------------------------------------------------
    def vocab(self, lm: LoadedModel) -> list[str]:
        """Every token id decoded on its own by ``model/token_text`` (byte pieces as ``<0xNN>``; cached per
        tokenizer)."""
        cached = self._vocab
        if cached is not None and cached[0] is lm.tokenizer:
            return cached[1]
        n = max(lm.vocab_size, len(lm.tokenizer))
        strings = token_texts(lm.tokenizer, list(range(n)))
        self._vocab = (lm.tokenizer, strings)
        return strings

    def weights_cache_path(self, sae_id: str) -> Path:
        """Where the SAE's corpus-independent logit effects and neighbours are kept (``weight_views.py``)."""
        return Path(self.saes.row(sae_id).path) / WEIGHT_VIEWS_NAME

    def _sae_for_model(self, sae_id: str) -> tuple[LoadedModel, SparseAutoencoder]:
        fit = self.saes.fitted(sae_id)  # 404 unknown, 400 without a model or when it does not fit
        return fit.lm, fit.sae

    def analysis_contexts(self, lm: LoadedModel, sae: SparseAutoencoder, corpus: str | None = None,
                          n_tokens: int | None = None, corpus_file: str | Path | None = None):
        """The corpus (default: the built-in one) cut into contexts, the first ``n_tokens`` of it (default:
        ``analysis_tokens``; None: all of it)."""
        ctx_size = sae.cfg.context_size or self.context_size
        if n_tokens is None:
            n_tokens = self.analysis_tokens
        if n_tokens is not None and n_tokens < ctx_size - 1:
            raise Invalid(f"n_tokens must be at least one context ({ctx_size - 1} tokens)")
        path = Path(corpus_file) if corpus_file else self.corpora.path(corpus)
        limit = None if n_tokens is None else math.ceil(n_tokens / (ctx_size - 1))
        key = (lm.tokenizer, str(path), ctx_size, limit)
        cached = self._contexts
        if cached is not None and cached[0][0] is key[0] and cached[0][1:] == key[1:]:
            contexts = cached[1]
        else:
            try:
                texts = load_texts(path)
                contexts = make_contexts(lm.tokenizer, texts, ctx_size, max_contexts=limit)
            except CorpusError as e:
                raise Invalid(str(e)) from None
            self._contexts = (key, contexts)
        if n_tokens is not None:
            contexts = contexts[: max(1, n_tokens // (ctx_size - 1))]
        return contexts

    # analysis jobs ----------------------------------------------------------------------
    def status(self, sae_id: str) -> dict[str, Any]:
        self.saes.row(sae_id)  # 404 for unknown ids
        rec = self.repo.get_analysis(sae_id)
        if rec is None:
            return {"sae_id": sae_id, "status": "none", "progress": None, "n_tokens": None,
                    "created_at": None, "updated_at": None, "summary": None, "error": None}
        with self._lock:
            progress = self._progress.get(sae_id)
        return {"sae_id": sae_id, "status": rec.status, "progress": progress, "n_tokens": rec.n_tokens,
                "created_at": rec.created_at, "updated_at": rec.updated_at,
                "summary": rec.data if rec.status == "done" else None, "error": rec.data.get("error")}

    def is_running(self, sae_id: str) -> bool:
        with self._lock:
            t = self._jobs.get(sae_id)
            return t is not None and t.is_alive()

    def _claim(self, sae_id: str, corpus: str | None, n_tokens: int | None) -> threading.Event:
        with self._lock:
            if sae_id in self._jobs:
                raise Conflict(f"an analysis of SAE {sae_id} is already running; "
                               f"follow it with GET /api/saes/{sae_id}/analysis")
            self._jobs[sae_id] = threading.current_thread()  # replaced by the worker for async runs
            ev = self._cancel[sae_id] = threading.Event()
            self._progress[sae_id] = {"phase": "starting", "done": 0, "total": 0}
        self.repo.start_analysis(sae_id, {"corpus": corpus or "default", "n_tokens_requested": n_tokens})
        return ev

    def _release(self, sae_id: str) -> None:
        with self._lock:
            self._jobs.pop(sae_id, None)
            self._cancel.pop(sae_id, None)
            self._progress.pop(sae_id, None)

    def analyze(self, sae_id: str, corpus: str | None = None, n_tokens: int | None = None, *,
                corpus_file: str | Path | None = None) -> dict[str, Any]:
        """Analyse now, in this thread; returns the summary (also stored in the ``analyses`` row)."""
        lm, sae = self._sae_for_model(sae_id)
        contexts = self.analysis_contexts(lm, sae, corpus, n_tokens, corpus_file)
        cancel = self._claim(sae_id, corpus or (str(corpus_file) if corpus_file else None), n_tokens)
        try:
            return self._run(sae_id, lm, sae, contexts, cancel, corpus or str(corpus_file or "default"))
        finally:
            self._release(sae_id)

    def start_analysis(self, sae_id: str, corpus: str | None = None, n_tokens: int | None = None) -> dict[str, Any]:
        """Validate, then analyse in a worker thread; returns the 'running' status at once (409 if one runs)."""
        lm, sae = self._sae_for_model(sae_id)
        contexts = self.analysis_contexts(lm, sae, corpus, n_tokens)
        cancel = self._claim(sae_id, corpus, n_tokens)

        def work() -> None:
            try:
                self._run(sae_id, lm, sae, contexts, cancel, corpus or "default")
            except Exception as e:  # noqa: BLE001 - recorded in the row and the event
                log.warning("analysis of %s failed: %s", sae_id, e)
            finally:
                self._release(sae_id)

        th = threading.Thread(target=work, name=f"analysis-{sae_id}", daemon=True)
        with self._lock:
            self._jobs[sae_id] = th
        th.start()
        return self.status(sae_id)

    def wait(self, sae_id: str, timeout: float | None = None) -> None:
        with self._lock:
            th = self._jobs.get(sae_id)
        if th is not None and th is not threading.current_thread():
            th.join(timeout)

    def _run(self, sae_id: str, lm: LoadedModel, sae: SparseAutoencoder, contexts, cancel: threading.Event,
             corpus: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        last = [0.0]

        def progress(phase: str, done: int, total: int) -> None:
            with self._lock:
                self._progress[sae_id] = {"phase": phase, "done": done, "total": total}
            if self.model.lm is not lm:
                cancel.set()  # the model was swapped mid-analysis: stop rather than mix models
            tnow = time.perf_counter()
            if phase != "activations" or done >= total or tnow - last[0] > 0.25:
                last[0] = tnow
                self.publish(AnalysisProgress(sae_id=sae_id, phase=phase, done=done, total=total))

        try:
            result = run_analysis(lm, sae, contexts, self.vocab(lm), self.config, progress=progress,
                                  lock=self.scope, cancel=cancel, exclude_ids=excluded_token_ids(lm.tokenizer),
                                  weights_cache=self.weights_cache_path(sae_id))
            progress("saving", 0, len(result.rows))
            self.repo.upsert_analysed(sae_id, (
                AnalysedFeature(r["idx"], r["auto_label"], r["density"], r["max_act"], r["mean_act"],
                                r["top_tokens_json"], r["data_json"], r["consistency"], r["degenerate"])
                for r in result.rows))
        except Exception as e:
            cancelled = cancel.is_set()
            status = "cancelled" if cancelled else "failed"
            err = (("the model changed during the analysis" if self.model.lm is not lm else "cancelled")
                   if cancelled else f"{type(e).__name__}: {e}")
            self.repo.finish_analysis(sae_id, status, {"corpus": corpus, "error": err})
            self.publish(AnalysisDone(sae_id=sae_id, status=status, error=err, n_features=0, n_tokens=0,
                                      seconds=round(time.perf_counter() - t0, 3)))
            raise
        summary = {**result.summary, "corpus": corpus, "seconds": round(time.perf_counter() - t0, 3)}
        self.repo.finish_analysis(sae_id, "done", summary, n_tokens=summary["n_tokens"])
        self.publish(AnalysisDone(sae_id=sae_id, status="done", error=None, n_features=len(result.rows),
                                  n_tokens=summary["n_tokens"], seconds=summary["seconds"]))
        return summary

    def forget(self, sae_id: str) -> None:
        """Drop an SAE's analysis and feature rows (for when the SAE is deleted); 409 while one runs."""
        with self._lock:
            if sae_id in self._jobs:
                raise Conflict(f"an analysis of SAE {sae_id} is running; wait for it to finish")
        self.repo.delete_sae(sae_id)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel running analyses and wait for their threads (called at server exit)."""
        with self._lock:
            jobs = dict(self._jobs)
            for ev in self._cancel.values():
                ev.set()
        for th in jobs.values():
            if th is not threading.current_thread() and th.is_alive():
                th.join(timeout)

    # per text ---------------------------------------------------------------------------
    def activations(self, sae_id: str, text: str, top_k: int = 5,
                    features: list[int] | None = None) -> TextActivations:
        lm, sae = self._sae_for_model(sae_id)
        return text_activations(lm, sae, text, top_k=top_k, features=features, vocab=self.vocab(lm),
                                max_tokens=self.max_prompt_tokens, lock=self.scope,
                                labels={i: lab or "" for i, lab in self.queries.label_texts(sae_id).items()})

    # queries (delegated) ------------------------------------------------------------------
    def list_features(self, sae_id: str, **kw: Any) -> dict[str, Any]:
        return self.queries.list(sae_id, **kw)

    def get_feature(self, sae_id: str, index: int) -> dict[str, Any]:
        return self.queries.get(sae_id, index)

    def update_feature(self, sae_id: str, index: int, **kw: Any) -> dict[str, Any]:
        return self.queries.update(sae_id, index, **kw)

    def export(self, sae_id: str):
        return self.queries.export(sae_id)

