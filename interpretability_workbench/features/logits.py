"""Weight-based views of each feature: its direct logit effects and its nearest decoder directions.

Logit effects. A feature adds ``a · W_dec[i] / s`` to the residual stream (``s`` the SAE's input scale).
Its *direct* effect on the logits is that direction pushed through the final norm and the unembedding.
The norm's per-token denominator (the RMS / std of the whole residual) is a positive scalar that
depends on the rest of the residual, so it is left out: we apply only what the norm does to a
direction — LayerNorm's mean-centering (for GPT-2 / NeoX) and its elementwise weight (``1 + weight``
for Gemma's RMSNorm) — then ``W_U``. The norm's bias and the unembedding bias are constant across
features and dropped. Ranking tokens by this vector is what Neuronpedia's "top logits" show.

Everything is computed for all features at once in chunks of ``chunk`` rows:
``[chunk d_model] @ [d_model d_vocab]`` then ``topk`` both ways and a per-row histogram.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..model.hook_map import arch_for, get_module
from ..sae.model import SparseAutoencoder

N_LOGIT_BINS = 32


class LogitEffects(NamedTuple):
    pos_ids: Tensor
    """``[d_sae n]`` token ids with the largest positive effect, strongest first."""
    pos_vals: Tensor
    """``[d_sae n]``."""
    neg_ids: Tensor
    """``[d_sae n]`` token ids with the most negative effect, most negative first."""
    neg_vals: Tensor
    """``[d_sae n]``."""
    hist_lo: Tensor
    """``[d_sae]`` lowest logit weight (first histogram edge)."""
    hist_hi: Tensor
    """``[d_sae]`` highest logit weight (last histogram edge)."""
    hist_counts: Tensor
    """``[d_sae N_LOGIT_BINS]`` how many vocabulary tokens fall in each of the equal-width bins."""


class Neighbours(NamedTuple):
    index: Tensor
    """``[d_sae n]`` most similar other features."""
    score: Tensor
    """``[d_sae n]`` cosine similarity of the decoder directions."""


def direction_to_residual_readout(model: nn.Module) -> tuple[Tensor, bool, Tensor]:
    """(effective final-norm weight ``[d_model]``, whether the norm centers its input, ``W_U [d_vocab d_model]``)."""
    spec = arch_for(model)
    norm = get_module(model, spec.final_norm)
    unembed = get_module(model, spec.unembed)
    w_u = unembed.weight.detach().float()
    d_model = w_u.shape[1]
    weight = getattr(norm, "weight", None)
    g = torch.ones(d_model) if weight is None else weight.detach().float().cpu()
    model_type = str(getattr(getattr(model, "config", None), "model_type", ""))
    if model_type.startswith("gemma"):  # Gemma's RMSNorm scales by (1 + weight)
        g = 1.0 + g
    centers = isinstance(norm, nn.LayerNorm)
    return g, centers, w_u.cpu()


def feature_logit_vectors(model: nn.Module, W_dec: Tensor, scale: float = 1.0) -> Tensor:
    """``W_dec [n d_model]`` -> direct logit effect of each direction ``[n d_vocab]`` (small n only)."""
    g, centers, w_u = direction_to_residual_readout(model)
    d = W_dec.float().cpu() / scale
    if centers:
        d = d - d.mean(dim=1, keepdim=True)
    return (d * g) @ w_u.T


@torch.no_grad()
def logit_effects(model: nn.Module, sae: SparseAutoencoder, n: int = 10, chunk: int = 256) -> LogitEffects:
    g, centers, w_u = direction_to_residual_readout(model)
    w_u_t = w_u.T.contiguous()  # [d_model d_vocab]
    d_sae = sae.cfg.d_sae
    n = min(n, w_u.shape[0])
    outs: list[list[Tensor]] = [[] for _ in range(7)]
    for lo in range(0, d_sae, chunk):
        d = sae.W_dec[lo: lo + chunk].detach().float().cpu() / sae.scale  # [chunk d_model]
        if centers:
            d = d - d.mean(dim=1, keepdim=True)
        eff = (d * g) @ w_u_t  # [chunk d_vocab]
        pv, pi = eff.topk(n, dim=1)
        nv, ni = eff.topk(n, dim=1, largest=False)
        lo_v, hi_v = torch.aminmax(eff, dim=1)
        # equal-width bins per row: one int32 bincount over (row, bin) ids, in place to spare memory
        c = eff.shape[0]
        b = eff.sub_(lo_v[:, None]).mul_((N_LOGIT_BINS / (hi_v - lo_v).clamp_min(1e-12))[:, None])
        b = b.to(torch.int32).clamp_(0, N_LOGIT_BINS - 1)
        b += (torch.arange(c, dtype=torch.int32) * N_LOGIT_BINS)[:, None]
        counts = torch.bincount(b.view(-1), minlength=c * N_LOGIT_BINS).view(c, N_LOGIT_BINS)
        for lst, t in zip(outs, (pi, pv, ni, nv, lo_v, hi_v, counts)):
            lst.append(t)
    return LogitEffects(*(torch.cat(x) for x in outs))


@torch.no_grad()
def decoder_neighbours(sae: SparseAutoencoder, n: int = 10, chunk: int = 1024) -> Neighbours:
    """For every feature, the ``n`` other features whose decoder directions have the highest cosine."""
    w = sae.W_dec.detach().float().cpu()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d_sae = w.shape[0]
    n = min(n, d_sae - 1)
    idx, val = [], []
    for lo in range(0, d_sae, chunk):
        sim = w[lo: lo + chunk] @ w.T  # [chunk d_sae]
        rows = torch.arange(sim.shape[0])
        sim[rows, lo + rows] = float("-inf")
        v, i = sim.topk(n, dim=1)
        idx.append(i)
        val.append(v)
    return Neighbours(torch.cat(idx), torch.cat(val))
