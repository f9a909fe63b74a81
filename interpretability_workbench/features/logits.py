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
from ..model.placement import module_tensor
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


class Readout(NamedTuple):
    """What the final norm and the unembedding do to a residual direction (input-independent part)."""

    gain: Tensor
    """``[d_model]`` effective elementwise weight of the final norm (float32)."""
    centers: bool
    """Whether the norm subtracts the mean (LayerNorm)."""
    w_u: Tensor
    """``[d_vocab d_model]`` the unembedding weight, in the model's dtype, where it lives."""


def direction_to_residual_readout(model: nn.Module) -> Readout:
    """The final norm's effective gain, whether it centers its input, and ``W_U`` (read where it is stored,
    offloaded weights included; callers move and upcast what they use)."""
    spec = arch_for(model)
    norm = get_module(model, spec.final_norm)
    unembed = get_module(model, spec.unembed)
    w_u = module_tensor(unembed, "weight")
    d_model = w_u.shape[1]
    weight = getattr(norm, "weight", None)
    g = torch.ones(d_model) if weight is None else module_tensor(norm, "weight").float()
    model_type = str(getattr(getattr(model, "config", None), "model_type", ""))
    if model_type.startswith("gemma"):  # Gemma's RMSNorm scales by (1 + weight)
        g = 1.0 + g
    return Readout(g, isinstance(norm, nn.LayerNorm), w_u)


VOCAB_CHUNK = 16384
"""Rows of ``W_U`` upcast to float32 at a time when only a few directions are read out."""


def feature_logit_vectors(model: nn.Module, W_dec: Tensor, scale: float = 1.0) -> Tensor:
    """``W_dec [n d_model]`` -> direct logit effect of each direction ``[n d_vocab]`` (small n), float32 on
    ``W_dec``'s device; ``W_U`` is upcast in vocabulary chunks, so no float32 copy of it is ever whole."""
    g, centers, w_u = direction_to_residual_readout(model)
    dev = W_dec.device
    d = W_dec.detach().float() / scale
    if centers:
        d = d - d.mean(dim=1, keepdim=True)
    d = d * g.to(dev)  # [n d_model]
    out = torch.empty(d.shape[0], w_u.shape[0], device=dev)
    for lo in range(0, w_u.shape[0], VOCAB_CHUNK):
        out[:, lo: lo + VOCAB_CHUNK] = d @ w_u[lo: lo + VOCAB_CHUNK].to(dev, torch.float32).T
    return out


@torch.no_grad()
def logit_effects(model: nn.Module, sae: SparseAutoencoder, n: int = 10, chunk: int | None = None) -> LogitEffects:
    """Top ± tokens and a histogram of every feature's direct logit effect, float32 on the SAE's device
    (``W_U`` upcast once there). ``chunk`` features per matmul (default: 256 on CPU, 2048 on an accelerator)."""
    dev = sae.W_dec.device
    g, centers, w_u = direction_to_residual_readout(model)
    g = g.to(dev)
    w_u_t = w_u.to(dev, torch.float32).T.contiguous()  # [d_model d_vocab]
    chunk = chunk or (256 if dev.type == "cpu" else 2048)
    d_sae = sae.cfg.d_sae
    n = min(n, w_u_t.shape[1])
    outs: list[list[Tensor]] = [[] for _ in range(7)]
    for lo in range(0, d_sae, chunk):
        d = sae.W_dec[lo: lo + chunk].detach().float() / sae.scale  # [chunk d_model]
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
        b += (torch.arange(c, dtype=torch.int32, device=dev) * N_LOGIT_BINS)[:, None]
        counts = torch.bincount(b.view(-1), minlength=c * N_LOGIT_BINS).view(c, N_LOGIT_BINS)
        for lst, t in zip(outs, (pi, pv, ni, nv, lo_v, hi_v, counts)):
            lst.append(t)
    return LogitEffects(*(torch.cat(x) for x in outs))


@torch.no_grad()
def decoder_neighbours(sae: SparseAutoencoder, n: int = 10, chunk: int = 1024) -> Neighbours:
    """For every feature, the ``n`` other features whose decoder directions have the highest cosine
    (float32 on the SAE's device)."""
    w = sae.W_dec.detach().float()
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d_sae = w.shape[0]
    n = min(n, d_sae - 1)
    idx, val = [], []
    for lo in range(0, d_sae, chunk):
        sim = w[lo: lo + chunk] @ w.T  # [chunk d_sae]
        rows = torch.arange(sim.shape[0], device=w.device)
        sim[rows, lo + rows] = float("-inf")
        v, i = sim.topk(n, dim=1)
        idx.append(i)
        val.append(v)
    return Neighbours(torch.cat(idx), torch.cat(val))
