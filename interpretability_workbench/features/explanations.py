"""ExplanationService: explain (and score) an SAE's features in a resumable background job.

The job reads each feature's stored analysis row, draws non-activating examples and hard negatives from a
context pool of the analysis corpus (``explain.build_context_pool``), asks the explainer (the loaded model,
another local model, or an OpenAI-compatible endpoint) and scores the explanation with detection and
fuzzing (``explain.explain_features``). Each feature's result — explanation or error — is stored on its
row as it comes (``store/features.py``), so a restarted or resumed job skips what is done; ``force``
explains and scores the chosen features again, replacing their stored explanation (the user's label is kept).
Progress is published as ``job`` events with kind ``explain``.
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from ..errors import Conflict, Invalid, NotFound
from ..events import JobProgress, Publish
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel, load_model
from ..sae.registry import SAERegistry
from ..store.db import new_id
from ..store.features import Explanation, FeatureRepo
from ..store.jobs import JobRecord, JobRepo
from .explain import (PROMPT_VERSION, ChatClient, Explainer, ExplanationResult, FeatureExamples, LocalChat,
                      OpenAIChat, Scorer, build_context_pool, explain_features, gather_feature_examples)

log = logging.getLogger(__name__)
KIND = "explain"
EXPLAINERS = ("loaded", "local", "endpoint")


@dataclass
class ExplainRequest:
    """What to explain and with which explainer."""

    features: list[int] | None = None
    """Feature indices; None: every analysed feature."""
    explainer: str = "loaded"
    """loaded (the loaded model), local (``explainer_model`` loaded beside it) or endpoint (IWB_EXPLAINER_URL)."""
    explainer_model: str | None = None
    """For ``local``: a model name as ``POST /api/model`` takes; for ``endpoint``: overrides IWB_EXPLAINER_MODEL."""
    score: bool = True
    """Score each explanation by detection and fuzzing (the same client judges)."""
    n_contexts: int = 256
    """Analysis contexts sampled for non-activating examples and hard negatives."""
    seed: int = 0
    force: bool = False
    """Explain and score the chosen features again even when this explainer and prompt version already did;
    the new result replaces the stored explanation (the user's own label is kept)."""

    def __post_init__(self) -> None:
        if self.explainer not in EXPLAINERS:
            raise ValueError(f"explainer must be one of {', '.join(EXPLAINERS)}")
        if self.explainer == "local" and not self.explainer_model:
            raise ValueError("explainer 'local' needs explainer_model (a model name, folder or hub id)")
        if self.features is not None:
            if not self.features:
                raise ValueError("give at least one feature, or leave features out for all")
            self.features = list(dict.fromkeys(int(f) for f in self.features))
        if not 8 <= self.n_contexts <= 100_000:
            raise ValueError("n_contexts must be in 8..100000")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FORCED_SINCE = "forced_since"
"""Job config key beside the request: Unix seconds from which a forced job's own results count as done (its
resumes skip what it, or an earlier resume of it, explained)."""


@dataclass(frozen=True)
class EndpointSettings:
    url: str | None
    model: str | None
    api_key: str | None
    timeout_s: float = 60.0


ContextsFor = Callable[[LoadedModel, Any], Any]
"""(model, sae) -> the analysis contexts ``[n_ctx ctx]`` (``FeatureService.analysis_contexts``)."""


class ExplanationService:
    def __init__(self, features: FeatureRepo, jobs: JobRepo, saes: SAERegistry, model: ModelHandle,
                 contexts: ContextsFor, vocab: Callable[[LoadedModel], list[str]], publish: Publish,
                 scope: AbstractContextManager[Any], endpoint: EndpointSettings, *, cache_dir: Any = None) -> None:
        """``scope``: held around every forward and local generation (the model lock, every patch off)."""
        self.features, self.jobs, self.saes, self.model = features, jobs, saes, model
        self.contexts, self.vocab, self.publish, self.scope = contexts, vocab, publish, scope
        self.endpoint, self.cache_dir = endpoint, cache_dir
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._local: dict[str, LoadedModel] = {}
        n = jobs.interrupt_live()
        if n:
            log.warning("marked %d background job(s) interrupted; resume them from their page", n)

    # queries --------------------------------------------------------------------------------
    def status(self, sae_id: str) -> JobRecord | None:
        self.saes.row(sae_id)
        return self.jobs.latest(KIND, sae_id)

    def get_job(self, job_id: str) -> JobRecord:
        rec = self.jobs.get(job_id)
        if rec is None or rec.kind != KIND:
            raise NotFound(f"explanation job {job_id!r} not found")
        return rec

    # commands ---------------------------------------------------------------------------------
    def start(self, sae_id: str, req: ExplainRequest, *, forced_since: float | None = None) -> JobRecord:
        """Validate, then explain in a worker thread; 409 while a job of this SAE runs. Features this explainer
        and prompt version already explained are skipped, unless ``req.force``: then only those explained at or
        after ``forced_since`` (a resumed forced job; None: the new job's start) are."""
        fit = self.saes.fitted(sae_id)
        analysed = self.features.indices(sae_id)
        if not analysed:
            raise Invalid(f"SAE {sae_id} has no analysed features; POST /api/saes/{sae_id}/analysis first")
        wanted = analysed if req.features is None else req.features
        missing = sorted(set(wanted) - set(analysed))
        if missing:
            raise Invalid(f"features {missing[:8]} of SAE {sae_id} have not been analysed; analyse the SAE first")
        client = self._client(req, fit.lm)  # 422 for an unusable explainer, before anything starts
        with self._lock:
            if any(t.is_alive() for sid, t in self._threads.items() if sid == sae_id):
                raise Conflict(f"an explanation job of SAE {sae_id} is already running; cancel it first")
            config = req.to_dict()
            if req.force:
                config[FORCED_SINCE] = time.time() if forced_since is None else forced_since
            job = self.jobs.create(new_id("job"), KIND, sae_id, config)
            cancel = self._cancel[sae_id] = threading.Event()
            since = config.get(FORCED_SINCE)
            th = threading.Thread(target=self._run, args=(job.id, sae_id, req, wanted, client, fit.lm, fit.sae, cancel,
                                                          since),
                                  name=f"explain-{sae_id}", daemon=True)
            self._threads[sae_id] = th
        th.start()
        return self.jobs.get(job.id)  # type: ignore[return-value]

    def resume(self, job_id: str) -> JobRecord:
        """Start a new job with the stored config of ``job_id``; features already explained are skipped (for a
        forced job: those it explained itself)."""
        old = self.get_job(job_id)
        if old.status in ("queued", "running"):
            raise Conflict(f"job {job_id} is {old.status}")
        config = dict(old.config)
        since = config.pop(FORCED_SINCE, None)
        try:
            req = ExplainRequest(**config)
        except (TypeError, ValueError) as e:
            raise Invalid(f"job {job_id} has an unusable config: {e}") from None
        if req.force and since is None:
            since = old.created_at
        return self.start(old.subject or "", req, forced_since=since)

    def cancel(self, sae_id: str) -> None:
        with self._lock:
            th, ev = self._threads.get(sae_id), self._cancel.get(sae_id)
        if th is None or not th.is_alive() or ev is None:
            raise Conflict(f"no explanation job of SAE {sae_id} is running")
        ev.set()

    def wait(self, sae_id: str, timeout: float | None = None) -> None:
        with self._lock:
            th = self._threads.get(sae_id)
        if th is not None:
            th.join(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            threads = list(self._threads.values())
            for ev in self._cancel.values():
                ev.set()
        for th in threads:
            th.join(timeout)

    # internals --------------------------------------------------------------------------------
    def _client(self, req: ExplainRequest, lm: LoadedModel) -> ChatClient:
        if req.explainer == "endpoint":
            e = self.endpoint
            model = req.explainer_model or e.model
            if not e.url or not model:
                raise Invalid("the endpoint explainer needs IWB_EXPLAINER_URL and IWB_EXPLAINER_MODEL (or "
                              "explainer_model in the request): an OpenAI-compatible server such as vLLM, "
                              "llama.cpp's server or ollama")
            return OpenAIChat(e.url, model, e.api_key, timeout_s=e.timeout_s, seed=req.seed)
        if req.explainer == "local":
            name = str(req.explainer_model)
            other = self._local.get(name)
            if other is None:
                try:
                    other = load_model(name, device=str(lm.device), dtype="auto", cache_dir=self.cache_dir)
                except ValueError as ex:
                    raise Invalid(f"explainer model {name!r}: {ex}") from None
                self._local[name] = other
            return LocalChat(other, seed=req.seed)
        return LocalChat(lm, lock=self.scope, seed=req.seed)

    def _items(self, sae_id: str, indices: list[int], pool: Any, seed: int) -> Iterator[FeatureExamples]:
        for idx in indices:
            row = self.features.get(sae_id, idx)
            if row is None or not row.data:
                continue
            yield gather_feature_examples(idx, row.data, float(row.max_act or 0.0), pool, seed=seed)

    def _run(self, job_id: str, sae_id: str, req: ExplainRequest, wanted: list[int], client: ChatClient,
             lm: LoadedModel, sae: Any, cancel: threading.Event, forced_since: float | None = None) -> None:
        total = len(wanted)
        progress = {"done": 0, "errors": 0}

        def publish(status: str, detail: str | None = None) -> None:
            self.publish(JobProgress(job_id=job_id, kind=KIND, status=status, done=progress["done"], total=total,
                                     detail=detail))

        try:
            self.jobs.update(job_id, status="running", total=total)
            publish("running", f"sampling {req.n_contexts} contexts for negatives")
            contexts = self.contexts(lm, sae)
            pool = build_context_pool(lm, sae, contexts, self.vocab(lm), n_contexts=req.n_contexts, seed=req.seed,
                                      lock=self.scope)
            explainer = Explainer(client)
            scorer = Scorer(client) if req.score else None
            skip = self.features.explained(sae_id, explainer.name, PROMPT_VERSION,
                                           since=forced_since if req.force else None)
            progress["done"] = sum(1 for i in wanted if i in skip)

            def on_result(r: ExplanationResult) -> None:
                self.features.set_explanation(sae_id, r.index, Explanation(
                    r.explanation, r.explainer_name, r.prompt_version, r.detection, r.fuzzing, r.scorer_name,
                    r.error, r.error_kind, created_at=time.time()))
                progress["done"] += 1
                progress["errors"] += r.error is not None
                self.jobs.update(job_id, done=progress["done"], errors=progress["errors"])
                publish("running", f"feature {r.index}: {r.error_kind or 'explained'}")

            summary = explain_features(self._items(sae_id, wanted, pool, req.seed), explainer, scorer,
                                       on_result=on_result, cancel=cancel, seed=req.seed, skip=skip)
            status = "cancelled" if summary.cancelled else "done"
            self.jobs.update(job_id, status=status, done=progress["done"], errors=progress["errors"])
            publish(status, f"{progress['errors']} of {progress['done']} features with an error")
        except Exception as e:  # noqa: BLE001 - the job fails, the server goes on
            msg = f"{type(e).__name__}: {getattr(e, 'detail', e)}"
            log.warning("explanation job %s failed: %s", job_id, msg)
            self.jobs.update(job_id, status="failed", error=msg)
            publish("failed", msg)
        finally:
            close = getattr(client, "close", None)
            if callable(close) and not isinstance(client, LocalChat):
                close()
