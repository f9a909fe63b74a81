"""The end of a run: new SAEs initialised from the data, held-out and CE-loss evaluation with progress, SAEs
registered, and the run's final metrics — per member only, plus run-level facts (tokens trained and held
out, passes over the data, steps, processes). Nothing here aggregates across members."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..model.loader import LoadedModel
from ..sae.config import SAEConfig
from ..sae.model import SparseAutoencoder
from ..sae.sparse import geometric_median
from .config import TrainingConfig
from .evaluate import (HeldOutMetrics, SpliceMetrics, collect_held_out, final_metrics_dict, held_out_batches,
                       held_out_metrics, splice_metrics)
from .progress import Progress
from .sweep import MemberSpec

BRIEF_KEYS = ("index", "hook_name", "architecture", "d_sae", "k", "l1_coefficient", "label", "sae_id",
              "held_out_fvu", "explained_variance", "l0", "dead_fraction", "ce_loss_recovered", "kl_with_sae")
"""The per-member numbers of a ``training_done`` event (the run detail has them all)."""


def new_saes(cfg: TrainingConfig, lm: LoadedModel, sample: dict[str, Tensor],
             members: list[MemberSpec]) -> list[SparseAutoencoder]:
    """One SAE per member, initialised with the run's seed (so a member starts as it would alone), its input
    scale and b_dec from the sample of its hook."""
    saes = []
    for m in members:
        x = sample[m.hook_name].float()
        scale = math.sqrt(x.shape[1]) / float(x.norm(dim=1).mean().clamp_min(1e-8)) if cfg.normalize else 1.0
        scfg = SAEConfig(
            d_in=lm.d_model, d_sae=m.d_sae, architecture=m.architecture, k=m.k, l1_coefficient=m.l1_coefficient,
            hook_name=m.hook_name, model_id=lm.model_id, model_revision=lm.revision, model_class_name=lm.architecture,
            context_size=cfg.context_size, dataset_path=cfg.trace_dir or cfg.corpus,
            normalize_activations="expected_average_only_in" if cfg.normalize else "none", norm_scale=scale)
        sae = SparseAutoencoder(scfg)
        sae.reset_parameters(seed=cfg.seed)
        with torch.no_grad():
            xs = x * sae.scale
            if cfg.b_dec_init == "geometric_median":
                sae.b_dec.copy_(geometric_median(xs))
            elif cfg.b_dec_init == "mean":
                sae.b_dec.copy_(xs.mean(0))
        saes.append(sae)
    return saes


class Evaluation(NamedTuple):
    held: list[HeldOutMetrics]
    splice: list[SpliceMetrics | None]


def evaluate_saes(lm: LoadedModel, saes: list[SparseAutoencoder], cfg: TrainingConfig, held_out: Tensor,
                  scope: Any, progress: Progress | None = None) -> Evaluation:
    """Held-out FVU / L0 / density of every SAE from one set of forwards (each hook recorded once), then
    CE loss with each SAE spliced in; each phase reports its forwards."""
    names = list(dict.fromkeys(s.cfg.hook_name for s in saes))
    if progress is not None:
        progress.phase("evaluating held-out", held_out_batches(held_out, cfg.eval_tokens, cfg.model_batch_size),
                       "batches")
    batches = collect_held_out(lm, held_out, names, cfg.eval_tokens, cfg.model_batch_size, scope,
                               on_batch=progress.advance if progress is not None else None)
    held = held_out_metrics([s.to(lm.device) for s in saes], batches)
    splice: list[SpliceMetrics | None] = [None] * len(saes)
    if cfg.ce_eval_contexts:
        if progress is not None:
            progress.phase("evaluating CE loss", 1 + len(names) + len(saes), "forwards")
        splice = list(splice_metrics(lm, saes, held_out[: cfg.ce_eval_contexts], scope,
                                     on_forward=progress.advance if progress is not None else None))
    for s in saes:
        s.cpu()
    return Evaluation(held, splice)


def member_metrics(m: MemberSpec, held: HeldOutMetrics, splice: SpliceMetrics | None, dead: float) -> dict[str, Any]:
    """One member's final numbers (with what it is)."""
    d = final_metrics_dict(held, splice, dead, 0)
    d.pop("peak_memory_bytes", None)
    return {"index": m.index, "hook_name": m.hook_name, "architecture": m.architecture, "d_sae": m.d_sae, "k": m.k,
            "l1_coefficient": m.l1_coefficient, "lr": m.lr, "label": m.label, **d}


def brief(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: p.get(k) for k in BRIEF_KEYS} for p in members]
