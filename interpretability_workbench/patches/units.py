"""Strength units: how big "1" is for a steer or clamp patch whose ``strength_unit`` is ``typical_activation``.

A steer patch adds ``strength · Σ_f W_dec[f]`` to the residual stream; in absolute units a strength of 4 moves
the default model's output by almost nothing (its features' activations are tens). In typical-activation
units one unit is the activation the features usually have when they fire, so ``strength`` 4 adds four
times the features' typical contribution, and clamp holds them at ``strength`` times it:

* ``analysis``: the mean activation when active of the patch's features (``features.mean_act`` of the
  SAE's analysis), averaged over the features that have one;
* ``residual_norm`` (no analysis yet): the typical residual norm at the SAE's hook divided by the mean norm
  of the features' decoder rows — one unit adds a vector as long as the residual stream itself (a strong
  edit: analyse the SAE for the finer unit). The norm comes from the SAE's input normalisation
  (``expected_average_only_in`` stores ``norm_scale = sqrt(d_in) / E‖x‖``), else it is measured on the
  first context of the built-in corpus.

The scale is fixed when the patch is created (``PatchConfig.unit_scale``) and saved with it, so re-running the
analysis never changes an existing patch, and exports (PEFT: B/bias) bake in the absolute strength exactly.
"""
from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any, Callable, NamedTuple

import torch

from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder

MeanActivations = Callable[[str, list[int]], dict[int, float]]
"""(sae_id, features) -> mean activation when active of the analysed ones."""

UNITS = ("absolute", "typical_activation")
UNIT_MODES = ("steer", "clamp")
"""Modes whose strength is an activation-sized amount (ablate / scale are fractions and factors)."""


class StrengthUnit(NamedTuple):
    scale: float
    """Absolute strength of one unit."""
    source: str
    """'analysis' or 'residual_norm'."""


@torch.no_grad()
def residual_norm(lm: LoadedModel, sae: SparseAutoencoder, scope: AbstractContextManager[Any]) -> float:
    """Typical norm of the residual at the SAE's hook (positions after 0)."""
    if sae.cfg.normalize_activations != "none" and sae.cfg.norm_scale > 0:
        return math.sqrt(sae.cfg.d_in) / float(sae.cfg.norm_scale)
    from ..activations.corpus import load_texts
    from ..model.tokenize import encode_text

    text = " ".join(load_texts(None)[:4])
    ids = encode_text(lm, text, max_tokens=None).ids[:, :128]
    with scope:
        res = run_with_cache(lm.model, ids, [sae.cfg.hook_name])
    x = res.cache[sae.cfg.hook_name][0, 1:].float()  # [pos d_model]
    return float(x.norm(dim=-1).mean())


def typical_unit(sae_id: str, sae: SparseAutoencoder, features: list[int], mean_acts: MeanActivations | None,
                 norm: Callable[[], float]) -> StrengthUnit:
    """One typical-activation unit for a patch on ``features`` (see the module docstring)."""
    acts = mean_acts(sae_id, features) if mean_acts is not None else {}
    vals = [v for f, v in acts.items() if f in features and v > 0 and math.isfinite(v)]
    if vals:
        return StrengthUnit(sum(vals) / len(vals), "analysis")
    rows = sae.W_dec.detach()[features].float().norm(dim=-1) / sae.scale  # [n] decoder norms, residual units
    dec = float(rows.mean()) if rows.numel() else 1.0
    return StrengthUnit(norm() / max(dec, 1e-8), "residual_norm")
