"""Contrast two prompt sets through an SAE: which features separate them.

Per text the SAE's feature activations at its hook (original model: every patch off) are reduced to
samples by ``position``: ``last`` (the last token), ``max`` (max over tokens) or ``all`` (every token is
a sample). Position 0 is skipped when the SAE excluded it in training (attention-sink outliers).
Features are ranked by Cohen's d = (mean₊ − mean₋) / pooled std (+ eps), largest first.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from ..inference.engine import encode_prompt
from ..model.hooks import run_with_cache

POSITIONS = ("last", "all", "max")
EPS = 1e-6
MAX_TEXTS = 512


class ContrastFeature(NamedTuple):
    index: int
    mean_positive: float
    mean_negative: float
    mean_diff: float
    effect_size: float
    """Cohen's d with pooled std (+ eps)."""
    positive_rate: float
    """Fraction of positive samples where the feature fires (> 0)."""
    negative_rate: float
    label: str | None
    top_tokens: list[str]


class ContrastResult(NamedTuple):
    features: list[ContrastFeature]
    n_positive: int
    """Samples in the positive set (texts, or tokens with position='all')."""
    n_negative: int
    hook_name: str


@torch.no_grad()
def feature_samples(state: Any, sae: Any, texts: list[str], position: str) -> Tensor:
    """``[n_samples d_sae]`` SAE activations of ``texts`` reduced by ``position``."""
    lm = state.require_model()
    hook = sae.cfg.hook_name
    skip_first = 1 if sae.cfg.exclude_first_position else 0
    rows = []
    for text in texts:
        ids = encode_prompt(lm, text, state.settings.max_prompt_tokens)
        with state.patches.using([]):
            act = run_with_cache(lm.model, ids, [hook]).cache[hook][0]  # [pos d_model]
        if act.shape[0] > skip_first:
            act = act[skip_first:]
        f = sae.encode(act.float())  # [pos d_sae]
        if position == "last":
            rows.append(f[-1:])
        elif position == "max":
            rows.append(f.max(0, keepdim=True).values)
        else:
            rows.append(f)
    return torch.cat(rows).cpu()


def _labels(state: Any, sae_id: str, idx: list[int]) -> dict[int, tuple[str | None, list[str]]]:
    if not idx:
        return {}
    marks = ",".join("?" for _ in idx)
    try:
        rows = state.db.query(f"SELECT idx, label, auto_label, top_tokens_json FROM features "
                              f"WHERE sae_id = ? AND idx IN ({marks})", [sae_id, *idx])
    except Exception:  # noqa: BLE001 - no analysis table yet: null labels
        return {}
    out = {}
    for r in rows:
        toks = r.get("top_tokens_json") or []
        toks = [str(t["token"]) if isinstance(t, dict) and "token" in t else str(t) for t in toks]  # [{token, id, count}]
        out[int(r["idx"])] = (r.get("label") or r.get("auto_label") or None, toks[:10])
    return out


def contrast(state: Any, sae_id: str, positive: list[str], negative: list[str], position: str = "last",
             top_n: int = 20) -> ContrastResult:
    if position not in POSITIONS:
        raise Invalid(f"position must be one of {', '.join(POSITIONS)}")
    if not positive or not negative:
        raise Invalid("give at least one positive and one negative text")
    if len(positive) + len(negative) > MAX_TEXTS:
        raise Invalid(f"at most {MAX_TEXTS} texts in all")
    entry = state.saes.get(sae_id)
    sae = entry.sae
    lm = state.require_model()
    if sae.cfg.d_in != lm.d_model:
        raise Invalid(f"SAE {sae_id} reads width {sae.cfg.d_in}; the loaded model's d_model is {lm.d_model}")
    pos = feature_samples(state, sae, positive, position).double()  # [n+ d_sae]
    neg = feature_samples(state, sae, negative, position).double()  # [n- d_sae]
    n1, n2 = pos.shape[0], neg.shape[0]
    m1, m2 = pos.mean(0), neg.mean(0)
    v1 = pos.var(0, unbiased=True) if n1 > 1 else torch.zeros_like(m1)
    v2 = neg.var(0, unbiased=True) if n2 > 1 else torch.zeros_like(m2)
    dof = max(n1 + n2 - 2, 1)
    pooled = (((n1 - 1) * v1 + (n2 - 1) * v2) / dof).sqrt()
    d = (m1 - m2) / (pooled + EPS)
    r1, r2 = (pos > 0).double().mean(0), (neg > 0).double().mean(0)
    order = torch.argsort(d, descending=True)[: max(1, min(top_n, d.shape[0]))].tolist()
    labels = _labels(state, sae_id, order)
    feats = [ContrastFeature(i, float(m1[i]), float(m2[i]), float(m1[i] - m2[i]), float(d[i]), float(r1[i]),
                             float(r2[i]), *labels.get(i, (None, []))) for i in order]
    return ContrastResult(feats, n1, n2, sae.cfg.hook_name)
