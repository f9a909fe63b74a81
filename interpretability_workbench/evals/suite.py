"""One SAE's evaluations together (absorption, k-sparse probing, density), their headline numbers, and a
side-by-side table for several SAEs. The synthetic ground-truth check is about the trainer, not an SAE:
it lives in ``evals.synthetic``."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from ..errors import BadRequest
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder
from .absorption import AbsorptionConfig, AbsorptionResult, absorption
from .density import DensityResult, density_histogram
from .sparse_probing import SparseProbingConfig, SparseProbingResult, sparse_probing

EVALS = ("absorption", "sparse_probing", "density")


@dataclass
class SAEEvaluation:
    hook_name: str
    """Hook the SAE reads."""
    d_sae: int
    absorption: AbsorptionResult | None = None
    sparse_probing: SparseProbingResult | None = None
    density: DensityResult | None = None

    def summary(self) -> dict[str, float | None]:
        """Headline numbers (None where an evaluation was not run or had nothing to score)."""
        out: dict[str, float | None] = {}
        a, p, d = self.absorption, self.sparse_probing, self.density
        out["absorption_fraction"] = a.mean_absorption_fraction() if a else None
        out["full_absorption"] = a.mean_full_absorption() if a else None
        out["main_latents_per_letter"] = a.mean_split_latents() if a else None
        out["raw_probe_accuracy"] = p.mean_raw_accuracy() if p else None
        ks = p.config.ks if p else ()
        mean_k = p.mean_k_accuracy() if p else {}
        for k in ks:
            out[f"k{k}_probe_accuracy"] = mean_k.get(k)
        out["dead_fraction"] = d.dead_fraction if d else None
        out["dense_fraction"] = d.dense_fraction if d else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"hook_name": self.hook_name, "d_sae": self.d_sae, "summary": self.summary(),
                "absorption": self.absorption.to_dict() if self.absorption else None,
                "sparse_probing": self.sparse_probing.to_dict() if self.sparse_probing else None,
                "density": self.density.to_dict() if self.density else None}


def evaluate_sae(lm: LoadedModel, sae: SparseAutoencoder, *, texts: list[str], contexts: Tensor,
                 which: tuple[str, ...] = EVALS, absorption_cfg: AbsorptionConfig | None = None,
                 probing_cfg: SparseProbingConfig | None = None, density_tokens: int = 65_536,
                 lock: threading.RLock | None = None,
                 progress: Callable[[str], None] | None = None) -> SAEEvaluation:
    """Run the chosen evaluations of ``sae`` on ``lm``: ``texts`` are corpus documents (probing tasks),
    ``contexts [n ctx]`` token contexts (density; pass held-out ones)."""
    unknown = [w for w in which if w not in EVALS]
    if unknown:
        raise BadRequest(f"unknown evaluation(s) {unknown}; choose from {', '.join(EVALS)}")
    ev = SAEEvaluation(sae.cfg.hook_name, sae.cfg.d_sae)
    if "density" in which:
        if progress:
            progress("density")
        ev.density = density_histogram(lm, sae, contexts, n_tokens=density_tokens, lock=lock)
    if "sparse_probing" in which:
        if progress:
            progress("sparse probing")
        ev.sparse_probing = sparse_probing(lm, sae, texts, probing_cfg, lock=lock, progress=progress)
    if "absorption" in which:
        if progress:
            progress("absorption")
        ev.absorption = absorption(lm, sae, absorption_cfg, lock=lock, progress=progress)
    return ev


def compare(evaluations: dict[str, SAEEvaluation]) -> list[dict[str, Any]]:
    """One row per SAE id with its headline numbers; every row has the same keys (None where missing)."""
    return compare_summaries({sid: (ev.d_sae, ev.summary()) for sid, ev in evaluations.items()})


def compare_summaries(summaries: dict[str, tuple[int, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """``compare`` from stored ``(d_sae, summary())`` pairs, keyed by SAE id."""
    keys: list[str] = []
    for _, s in summaries.values():
        keys += [k for k in s if k not in keys]
    return [{"sae_id": sid, "d_sae": d_sae, **{k: s.get(k) for k in keys}} for sid, (d_sae, s) in summaries.items()]
