"""Which features fire on each token of a user's text, and how strongly.

The text becomes model input by the one rule of ``model/tokenize.py`` (BOS first when the tokenizer has
one, as in training); position 0 — the BOS, or the attention sink when there is none — is not reported.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, NamedTuple

import torch

from ..errors import Invalid
from ..model.tokenize import encode_text
from ..model.hooks import run_with_cache
from ..model.loader import LoadedModel
from ..model.placement import to_stats
from ..sae.model import SparseAutoencoder


class TextActivations(NamedTuple):
    tokens: list[str]
    token_ids: list[int]
    features: list[dict[str, Any]]
    """Feature-major: {index, label, max, activations [n_tokens]}, strongest first."""
    per_token: list[list[dict[str, Any]]]
    """Token-major: for each token its ``top_k`` firing features {index, label, value}, strongest first."""
    bos_excluded: bool
    """Whether a BOS token was prepended (position 0, never reported, is the BOS rather than a text token)."""


@torch.no_grad()
def text_activations(lm: LoadedModel, sae: SparseAutoencoder, text: str, *, top_k: int = 5,
                     features: list[int] | None = None, vocab: list[str] | None = None,
                     max_tokens: int | None = None, lock: Any = None,
                     labels: dict[int, str] | None = None) -> TextActivations:
    d_sae = sae.cfg.d_sae
    if not 1 <= top_k <= min(d_sae, 256):
        raise Invalid(f"top_k must be in 1..{min(d_sae, 256)}")
    if features is not None:
        bad = [f for f in features if not 0 <= f < d_sae]
        if bad:
            raise Invalid(f"features {bad[:5]} out of range: SAE has features 0..{d_sae - 1}")
    inp = encode_text(lm, text, max_tokens)
    tok_ids = inp.reported().tolist()
    with lock if lock is not None else nullcontext():
        res = run_with_cache(lm.model, inp.ids, [sae.cfg.hook_name])
    a = res.cache[sae.cfg.hook_name][0]  # [pos d_model], the model's dtype, its block's device
    f = sae.encode(to_stats(a[inp.first:], sae.W_enc.device))  # [pos d_sae] float32 on the SAE's device
    if vocab is not None:
        tokens = [vocab[t] if t < len(vocab) else "" for t in tok_ids]
    else:
        tokens = [lm.tokenizer.decode([t]) for t in tok_ids]
    labels = labels or {}
    vals, idx = f.topk(top_k, dim=-1)  # [pos top_k]
    per_token = [[{"index": i, "label": labels.get(i, ""), "value": v} for v, i in zip(vr, ir) if v > 0]
                 for vr, ir in zip(vals.tolist(), idx.tolist())]
    if features is None:
        chosen = sorted({e["index"] for row in per_token for e in row})
    else:
        chosen = list(dict.fromkeys(features))
    cols = f[:, chosen] if chosen else f.new_zeros(f.shape[0], 0)  # [pos n_chosen]
    mx = cols.amax(dim=0).tolist() if chosen else []
    per_feature = cols.T.tolist()  # [n_chosen pos], one host copy
    feats = [{"index": i, "label": labels.get(i, ""), "max": m, "activations": per_feature[j]}
             for j, (i, m) in enumerate(zip(chosen, mx))]
    if features is None:
        feats.sort(key=lambda e: -e["max"])
    return TextActivations(tokens, tok_ids, feats, per_token, inp.has_bos)
