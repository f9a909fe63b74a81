"""Contrast two prompt sets through an SAE: which features separate them.

Per text the SAE's feature activations at its hook (original model: every patch off) are reduced to
samples by ``position``: ``last`` (the last token), ``max`` (max over tokens) or ``all`` (every token is
a sample). Texts become model input by the rule of ``model/tokenize.py``; position 0 (the BOS or attention
sink) is never a sample.
Features are ranked by Cohen's d = (mean₊ − mean₋) / pooled std (+ eps), largest first.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from ..model.handle import ModelHandle
from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..model.placement import to_stats
from ..model.tokenize import encode_text
from ..sae.model import SparseAutoencoder
from ..sae.registry import SAERegistry
from ..store.features import FeatureLabel

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


LabelLookup = Callable[[str, list[int]], dict[int, FeatureLabel]]
"""(sae_id, feature indices) -> their display labels and top tokens (features without a row are left out)."""


@torch.no_grad()
def feature_samples(lm: LoadedModel, sae: SparseAutoencoder, texts: list[str], position: str, *,
                    scope: AbstractContextManager[Any], max_tokens: int | None) -> Tensor:
    """``[n_samples d_sae]`` SAE activations of ``texts`` reduced by ``position`` (original model), float32
    on the SAE's device (the model's main device)."""
    hook = sae.cfg.hook_name
    rows = []
    for text in texts:
        inp = encode_text(lm, text, max_tokens)
        inp.reported()  # 422 for a text with nothing after position 0
        with scope:
            act = run_with_cache(lm.model, inp.ids, [hook]).cache[hook][0]  # [pos d_model]
        f = sae.encode(to_stats(act[inp.first:], sae.W_enc.device))  # [pos-first d_sae]
        if position == "last":
            rows.append(f[-1:])
        elif position == "max":
            rows.append(f.max(0, keepdim=True).values)
        else:
            rows.append(f)
    return torch.cat(rows)


class ContrastService:
    def __init__(self, model: ModelHandle, saes: SAERegistry, labels: LabelLookup,
                 scope: AbstractContextManager[Any], max_prompt_tokens: int) -> None:
        """``scope``: held around every forward (the model lock, with every patch switched off)."""
        self.model, self.saes, self.labels, self.scope = model, saes, labels, scope
        self.max_prompt_tokens = max_prompt_tokens

    def contrast(self, sae_id: str, positive: list[str], negative: list[str], position: str = "last",
                 top_n: int = 20) -> "ContrastResult":
        if position not in POSITIONS:
            raise Invalid(f"position must be one of {', '.join(POSITIONS)}")
        if not positive or not negative:
            raise Invalid("give at least one positive and one negative text")
        if len(positive) + len(negative) > MAX_TEXTS:
            raise Invalid(f"at most {MAX_TEXTS} texts in all")
        fit = self.saes.fitted(sae_id)
        kw = {"scope": self.scope, "max_tokens": self.max_prompt_tokens}
        pos = feature_samples(fit.lm, fit.sae, positive, position, **kw).double()  # [n+ d_sae]
        neg = feature_samples(fit.lm, fit.sae, negative, position, **kw).double()  # [n- d_sae]
        ranked = rank_features(pos, neg, top_n)
        labels = self.labels(sae_id, [r[0] for r in ranked])
        feats = [ContrastFeature(*r, labels[r[0]].label if r[0] in labels else None,
                                 labels[r[0]].top_tokens[:10] if r[0] in labels else []) for r in ranked]
        return ContrastResult(feats, pos.shape[0], neg.shape[0], fit.sae.cfg.hook_name)


def rank_features(pos: Tensor, neg: Tensor, top_n: int) -> list[tuple[int, float, float, float, float, float, float]]:
    """Cohen's d ranking of ``pos [n+ d_sae]`` vs ``neg [n- d_sae]``: the ``top_n`` largest as (index, mean+,
    mean-, mean diff, d, rate+, rate-)."""
    n1, n2 = pos.shape[0], neg.shape[0]
    m1, m2 = pos.mean(0), neg.mean(0)
    v1 = pos.var(0, unbiased=True) if n1 > 1 else torch.zeros_like(m1)
    v2 = neg.var(0, unbiased=True) if n2 > 1 else torch.zeros_like(m2)
    dof = max(n1 + n2 - 2, 1)
    pooled = (((n1 - 1) * v1 + (n2 - 1) * v2) / dof).sqrt()
    d = (m1 - m2) / (pooled + EPS)
    r1, r2 = (pos > 0).double().mean(0), (neg > 0).double().mean(0)
    order = torch.argsort(d, descending=True)[: max(1, min(top_n, d.shape[0]))]
    cols = torch.stack([m1, m2, m1 - m2, d, r1, r2])[:, order].T.tolist()  # [top_n 6], one host copy
    return [(i, *row) for i, row in zip(order.tolist(), cols)]
