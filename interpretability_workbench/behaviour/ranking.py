"""Rank every SAE's features by how well they separate the positive from the negative prompts.

One forward per prompt (original model, stopped after the deepest hook) caches every SAE's hook; each
SAE's activations are reduced per position (``last`` token, ``max`` over tokens, ``all`` tokens as samples;
position 0 never counts) and ranked by Cohen's d with ``contrast.rank_features``. A feature's score is its
largest effect size over the positions; features that do not fire more on the positives are left out.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from ..contrast.contrast import rank_features
from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..model.tokenize import encode_text
from ..sae.model import SparseAutoencoder
from .types import LayerRanking, RankedFeature


def _reduce(f: Tensor, position: str) -> Tensor:
    """``f [pos d_sae]`` -> samples ``[n d_sae]``."""
    if position == "last":
        return f[-1:]
    if position == "max":
        return f.max(0, keepdim=True).values
    return f


@torch.no_grad()
def rank_saes(lm: LoadedModel, saes: list[tuple[str, SparseAutoencoder]], positive: list[str],
              negative: list[str], positions: list[str], top_n: int, *, scope: AbstractContextManager[Any],
              max_tokens: int | None) -> list[LayerRanking]:
    """Per SAE (in the order given) its ``top_n`` best separating features."""
    hooks = list(dict.fromkeys(sae.cfg.hook_name for _, sae in saes))
    samples: dict[tuple[str, str, str], list[Tensor]] = {}  # (sae id, side, position) -> rows
    for side, texts in (("pos", positive), ("neg", negative)):
        for text in texts:
            inp = encode_text(lm, text, max_tokens)
            inp.reported()  # 422 for a prompt with nothing after position 0
            with scope:
                cache = run_with_cache(lm.model, inp.ids, hooks).cache
            for sid, sae in saes:
                f = sae.encode(cache[sae.cfg.hook_name][0, inp.first:].float()).double().cpu()  # [pos d_sae]
                for p in dict.fromkeys([*positions, "last"]):
                    samples.setdefault((sid, side, p), []).append(_reduce(f, p))
    out = []
    for sid, sae in saes:
        d_sae = sae.cfg.d_sae
        per_pos: dict[str, dict[int, float]] = {}
        for p in positions:
            pos, neg = torch.cat(samples[(sid, "pos", p)]), torch.cat(samples[(sid, "neg", p)])
            per_pos[p] = {r[0]: r[4] for r in rank_features(pos, neg, d_sae)}
        last_pos, last_neg = torch.cat(samples[(sid, "pos", "last")]), torch.cat(samples[(sid, "neg", "last")])
        m1, m2 = last_pos.mean(0), last_neg.mean(0)
        r1, r2 = (last_pos > 0).double().mean(0), (last_neg > 0).double().mean(0)
        scored = []
        for i in range(d_sae):
            sizes = {p: per_pos[p].get(i, 0.0) for p in positions}
            best = max(sizes.values())
            if best > 0:
                scored.append(RankedFeature(i, best, sizes, float(m1[i]), float(m2[i]), float(r1[i]), float(r2[i])))
        scored.sort(key=lambda r: (-r.score, r.index))
        out.append(LayerRanking(sid, sae.cfg.hook_name, sae.cfg.layer, scored[:top_n]))
    return out
