"""EvalService: run an SAE's evaluations (``evals.suite.evaluate_sae``: absorption, k-sparse probing, density)
in a background job, keep the result in the SAE's folder (``evals.json``) and serve it, alone or side by side
with other SAEs' results (``evals.suite.compare_summaries``). Progress is published as ``job`` events with
kind ``evals``.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from torch import Tensor

from ..background import BackgroundJobs, Report
from ..errors import Conflict, Invalid, NotFound
from ..events import Publish
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder
from ..sae.registry import SAERegistry
from ..store.artifacts import atomic_write_bytes
from ..store.jobs import JobRecord, JobRepo
from .absorption import AbsorptionConfig
from .sparse_probing import DEFAULT_KS, SparseProbingConfig
from .suite import EVALS, compare_summaries, evaluate_sae

KIND = "evals"
RESULT_NAME = "evals.json"
"""The latest evaluation of an SAE, inside its folder: {"created_at", "request", "result": SAEEvaluation.to_dict()}."""


@dataclass
class EvalRequest:
    """Which evaluations to run and how large each is."""

    which: list[str] = field(default_factory=lambda: list(EVALS))
    """Any of absorption, sparse_probing, density."""
    corpus: str | None = None
    """Corpus id for the probing tasks and the density tokens (None: the built-in corpus)."""
    density_tokens: int = 65_536
    """Tokens the density histogram is measured on."""
    probe_docs: int = 400
    """Documents read to build the probing tasks (the corpus' last ones)."""
    probe_per_class: int = 500
    """Labelled tokens sampled per class and probing task."""
    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    """Sizes of the k-sparse probes."""
    absorption_per_letter: int = 64
    """Words sampled per first letter."""
    absorption_min_probe_f1: float = 0.6
    """Letters whose ground-truth probe scores below this F1 are not evaluated."""
    seed: int = 0
    """Seed of every sample, split and probe fit."""

    def __post_init__(self) -> None:
        if not self.which:
            raise Invalid(f"choose at least one evaluation of {', '.join(EVALS)}")
        unknown = [w for w in self.which if w not in EVALS]
        if unknown:
            raise Invalid(f"unknown evaluation(s) {unknown}; choose from {', '.join(EVALS)}")
        self.which = [w for w in EVALS if w in self.which]
        if self.density_tokens < 1:
            raise Invalid("density_tokens must be positive")
        if not self.ks or min(self.ks) < 1:
            raise Invalid("ks must list positive probe sizes")
        self.ks = sorted(set(int(k) for k in self.ks))
        if not 0.0 <= self.absorption_min_probe_f1 <= 1.0:
            raise Invalid("absorption_min_probe_f1 must be in [0, 1]")
        # the evaluations' own checks, now rather than in the worker
        self.absorption_config()
        self.probing_config()

    def absorption_config(self) -> AbsorptionConfig:
        try:
            return AbsorptionConfig(max_per_letter=self.absorption_per_letter,
                                    min_probe_f1=self.absorption_min_probe_f1, seed=self.seed)
        except Exception as e:  # BadRequest -> 422 with the same message
            raise Invalid(getattr(e, "detail", str(e))) from None

    def probing_config(self) -> SparseProbingConfig:
        try:
            return SparseProbingConfig(ks=tuple(self.ks), max_per_class=self.probe_per_class,
                                       max_docs=self.probe_docs, seed=self.seed)
        except Exception as e:
            raise Invalid(getattr(e, "detail", str(e))) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StoredEvaluation(NamedTuple):
    sae_id: str
    created_at: float
    request: dict[str, Any]
    result: dict[str, Any]
    """``SAEEvaluation.to_dict()``: hook_name, d_sae, summary and one section per evaluation (null if not run)."""


Contexts = Callable[[LoadedModel, SparseAutoencoder, "str | None", "int | None"], Tensor]
"""(model, sae, corpus, n_tokens) -> token contexts ``[n ctx]`` (``FeatureService.analysis_contexts``)."""
Texts = Callable[["str | None"], list[str]]
"""corpus id (None: built-in) -> its documents."""


class EvalService:
    def __init__(self, saes: SAERegistry, jobs: JobRepo, contexts: Contexts, texts: Texts, publish: Publish,
                 scope: AbstractContextManager[Any]) -> None:
        """``scope``: held around every forward (the model lock, every patch off)."""
        self.saes, self.contexts, self.texts, self.scope = saes, contexts, texts, scope
        self.jobs = BackgroundJobs(jobs, KIND, publish, noun="evaluation")

    def _path(self, sae_id: str) -> Path:
        return Path(self.saes.row(sae_id).path) / RESULT_NAME

    # queries --------------------------------------------------------------------------------
    def job(self, sae_id: str) -> JobRecord | None:
        self.saes.row(sae_id)
        return self.jobs.latest(sae_id)

    def result(self, sae_id: str) -> StoredEvaluation:
        """The SAE's latest evaluation; 409 while one runs, 404 before the first."""
        if self.jobs.running(sae_id):
            raise Conflict(f"SAE {sae_id} is being evaluated; wait for the job to finish")
        path = self._path(sae_id)
        if not path.is_file():
            raise NotFound(f"SAE {sae_id} has not been evaluated yet; POST /api/saes/{sae_id}/evals "
                           "(microscope evals SAE_ID)")
        try:
            d = json.loads(path.read_text())
            return StoredEvaluation(sae_id, float(d["created_at"]), dict(d["request"]), dict(d["result"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise Invalid(f"{path} is not a valid evaluation record ({e}); evaluate the SAE again") from None

    def compare(self, sae_ids: list[str]) -> list[dict[str, Any]]:
        """Headline numbers of several evaluated SAEs side by side (404 names the first not evaluated)."""
        if not sae_ids:
            raise Invalid("give at least one SAE id")
        stored = [self.result(s) for s in dict.fromkeys(sae_ids)]
        return compare_summaries({s.sae_id: (int(s.result["d_sae"]), dict(s.result["summary"])) for s in stored})

    # commands ---------------------------------------------------------------------------------
    def start(self, sae_id: str, req: EvalRequest) -> JobRecord:
        """Validate (the SAE must fit the loaded model), then evaluate in a worker thread; 409 while one runs."""
        fit = self.saes.fitted(sae_id)
        lm, sae = fit.lm, fit.sae
        path = self._path(sae_id)
        texts = self.texts(req.corpus) if "sparse_probing" in req.which else []
        contexts = self._density_contexts(lm, sae, req) if "density" in req.which else None

        def work(report: Report) -> str:
            total = len(req.which)
            stage = {"n": -1}

            def progress(msg: str) -> None:
                if msg.replace(" ", "_") in EVALS:
                    stage["n"] += 1
                report(max(stage["n"], 0), total, msg)

            ev = evaluate_sae(lm, sae, texts=texts, contexts=contexts if contexts is not None else Tensor(),
                              which=tuple(req.which), absorption_cfg=req.absorption_config(),
                              probing_cfg=req.probing_config(), density_tokens=req.density_tokens,
                              lock=self.scope, progress=progress)  # type: ignore[arg-type]
            report(total, total, "saving the result")  # the last point where a cancel stops the job
            record = {"created_at": time.time(), "request": req.to_dict(), "result": ev.to_dict()}
            atomic_write_bytes(path, json.dumps(_finite(record), indent=1, allow_nan=False).encode())
            return ", ".join(f"{k} {v:.3f}" for k, v in ev.summary().items() if v is not None)

        return self.jobs.start(sae_id, req.to_dict(), work)

    def _density_contexts(self, lm: LoadedModel, sae: SparseAutoencoder, req: EvalRequest) -> Tensor:
        """Whole contexts ``[n ctx]`` covering ``density_tokens`` (position 0 of each is not counted)."""
        contexts = self.contexts(lm, sae, req.corpus, req.density_tokens)
        per = contexts.shape[1] - 1
        if contexts.shape[0] * per < req.density_tokens:
            contexts = self.contexts(lm, sae, req.corpus, math.ceil(req.density_tokens / per) * per)
        return contexts

    def cancel(self, sae_id: str) -> JobRecord:
        """Stop the running evaluation of ``sae_id`` at its next stage (before it writes evals.json, so the
        previous result stays); 409 when none runs."""
        self.saes.row(sae_id)
        return self.jobs.cancel(sae_id)

    def wait(self, sae_id: str, timeout: float | None = None) -> None:
        self.jobs.wait(sae_id, timeout)

    def shutdown(self) -> None:
        self.jobs.shutdown()


def _finite(o: Any) -> Any:
    """Plain JSON: NaN/inf become None, tuples and arrays lists, keys strings."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_finite(v) for v in o]
    if hasattr(o, "tolist"):
        return _finite(o.tolist())
    return o
