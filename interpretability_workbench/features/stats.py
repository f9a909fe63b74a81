"""Streaming per-feature statistics over SAE activations, vectorised across every feature at once.

One ``FeatureStats.update`` call takes the sparse activations of a batch of contexts (the (token, feature,
value) triplets of every active latent) and folds them into running statistics; nothing loops over
features in Python. What it keeps (``d_sae`` features, ``K`` top contexts, ``NB`` histogram bins):

- ``count [d_sae]`` active tokens, ``total`` tokens seen -> density; ``sum [d_sae]`` -> mean when active;
  ``max [d_sae]``.
- ``top_val/top_ctx/top_pos [K d_sae]``: the K contexts with the highest per-context maximum and the
  position of that maximum. Per batch the per-(context, feature) maxima are built with one
  ``scatter_reduce`` and merged with a ``topk`` over the concatenated candidates.
- ``hist [d_sae NB]``: activation histogram on fixed log-spaced bins (``BINS_PER_DECADE`` per decade from
  ``HIST_MIN`` to ``HIST_MAX``; values outside are clamped into the end bins).
- a reservoir of one uniformly sampled token per (feature, half-bin): a random key per active token and
  a ``scatter_reduce(amax)`` keep the token with the largest key in each slot — a size-1 reservoir per
  slot, used afterwards for examples spread across the activation range (quantile buckets).
- ``coact [d_sae d_sae]`` (when ``d_sae <= COACT_MAX_D_SAE``): on how many tokens each pair of features
  is active together *among the token's ``COACT_K`` strongest latents* (exact when at most ``COACT_K``
  latents fire; otherwise it counts strong co-activation — the pairs grow as k², so this bound keeps
  the cost a small fraction of the encoder matmul).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..sae.model import SparseAutoencoder

HIST_MIN, HIST_MAX, BINS_PER_DECADE = 1e-4, 1e4, 20
N_BINS = int(round(math.log10(HIST_MAX / HIST_MIN) * BINS_PER_DECADE))
RESERVOIR_PER_BIN = 2
COACT_MAX_D_SAE = 8192
COACT_K = 8


def hist_edges() -> Tensor:
    """``[N_BINS + 1]`` log-spaced bin edges shared by every feature's activation histogram."""
    return torch.logspace(math.log10(HIST_MIN), math.log10(HIST_MAX), N_BINS + 1, dtype=torch.float64)


class SparseActs(NamedTuple):
    """The active latents of a batch of ``n_tokens`` tokens, as parallel 1-D tensors ``[nnz]``."""

    token: Tensor
    """Token index within the batch (row-major over [context position])."""
    feature: Tensor
    value: Tensor
    """Activation (> 0)."""
    top_idx: Tensor
    """``[n_tokens kk]`` each token's strongest latents (for co-activation); entries with top_val <= 0 unused."""
    top_val: Tensor
    """``[n_tokens kk]``."""


@torch.no_grad()
def sparse_encode(sae: SparseAutoencoder, x: Tensor) -> SparseActs:
    """``x [n_tokens d_in]`` -> the active latents, computed exactly as ``sae.encode`` would.

    TopK SAEs never build the dense ``[n_tokens d_sae]`` activations: the pre-activations' top k are the
    activations (after ReLU). Other architectures apply ``sae.activation`` and take its non-zeros.
    """
    x = x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)  # float32 on the SAE's device
    if sae.scale != 1.0:
        x = x * sae.scale
    if sae.cfg.apply_b_dec_to_input:
        x = x - sae.b_dec
    pre = torch.addmm(sae.b_enc, x, sae.W_enc)  # [n_tokens d_sae], as sae.pre_activations
    if sae.cfg.architecture == "topk":
        vals, idx = pre.topk(int(sae.cfg.k), dim=-1, sorted=False)  # type: ignore[arg-type]
        vals = vals.relu()
        top_val, j = vals.topk(min(COACT_K, idx.shape[1]), dim=-1, sorted=False)
        tok = torch.arange(x.shape[0], device=x.device).repeat_interleave(idx.shape[1])
        feat, value = idx.reshape(-1), vals.reshape(-1)
        mask = value > 0
        if not bool(mask.all()):  # some of the top k are <= 0: drop them (rare once trained)
            keep = mask.nonzero().squeeze(1)
            tok, feat, value = tok[keep], feat[keep], value[keep]
        return SparseActs(tok, feat, value, idx.gather(1, j), top_val)
    f = sae.activation(pre)
    tok, feat = (f > 0).nonzero(as_tuple=True)
    top_val, top_idx = f.topk(min(COACT_K, f.shape[1]), dim=-1, sorted=False)
    return SparseActs(tok, feat, f[tok, feat], top_idx, top_val)


class Picked(NamedTuple):
    """(context, position, value) triplets of chosen examples; -1 context for an empty slot."""

    ctx: Tensor
    pos: Tensor
    value: Tensor


class FeatureStats:
    """Running statistics for ``d_sae`` features over contexts of ``n_pos`` analysed positions each."""

    def __init__(self, d_sae: int, n_top: int = 10, seed: int = 0, coactivation: bool = True,
                 device: torch.device | str = "cpu") -> None:
        """Every running statistic lives on ``device`` (the SAE's): ``update`` never leaves it."""
        self.d_sae, self.n_top = d_sae, n_top
        self.device = dev = torch.device(device)
        self.total = 0
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=dev)
        self.sum = torch.zeros(d_sae, dtype=torch.float64, device=dev)
        self.max = torch.zeros(d_sae, device=dev)
        self.hist = torch.zeros(d_sae * N_BINS, dtype=torch.int64, device=dev)
        self.top_val = torch.zeros(n_top, d_sae, device=dev)
        self.top_ctx = torch.full((n_top, d_sae), -1, dtype=torch.int64, device=dev)
        self.top_pos = torch.zeros(n_top, d_sae, dtype=torch.int64, device=dev)
        n_res = d_sae * N_BINS * RESERVOIR_PER_BIN
        self._n_res = n_res
        # one spare slot at the end takes the writes of tokens that did not win their slot (no host sync)
        self.res_key = torch.full((n_res,), -1.0, device=dev)
        self.res_ctx = torch.full((n_res + 1,), -1, dtype=torch.int64, device=dev)
        self.res_pos = torch.zeros(n_res + 1, dtype=torch.int64, device=dev)
        self.res_val = torch.zeros(n_res + 1, device=dev)
        self._log_min = math.log10(HIST_MIN)
        self.coact = (torch.zeros(d_sae * d_sae, device=dev)
                      if coactivation and d_sae <= COACT_MAX_D_SAE else None)
        self.gen = torch.Generator(device=dev).manual_seed(seed)

    @torch.no_grad()
    def update(self, acts: SparseActs, n_ctx: int, n_pos: int, ctx_offset: int, first_pos: int = 1,
               n_counted: int | None = None) -> None:
        """Fold in one batch: ``n_ctx`` contexts of ``n_pos`` analysed positions each (token ``t`` of the
        batch is context ``ctx_offset + t // n_pos`` at position ``first_pos + t % n_pos``); ``n_counted``:
        how many of those tokens count towards density (default all; excluded ones carry no activations)."""
        d, dev = self.d_sae, self.device
        tok, feat, val = acts.token.to(dev), acts.feature.to(dev), acts.value.to(dev, torch.float32)
        self.total += n_ctx * n_pos if n_counted is None else n_counted
        self.count += torch.bincount(feat, minlength=d)
        self.sum += torch.bincount(feat, weights=val.double(), minlength=d)
        self.max = self.max.scatter_reduce(0, feat, val, "amax", include_self=True)
        # log-spaced histogram bins (and half bins for the reservoirs)
        half = ((val.clamp_min(HIST_MIN).log10_().sub_(self._log_min)).mul_(BINS_PER_DECADE * RESERVOIR_PER_BIN)
                ).long().clamp_(0, N_BINS * RESERVOIR_PER_BIN - 1)
        self.hist += torch.bincount(feat * N_BINS + half // RESERVOIR_PER_BIN, minlength=d * N_BINS)
        ctx_local = tok // n_pos
        pos = tok % n_pos + first_pos
        # top contexts: per-(context, feature) max and its position, merged with the running top-K
        key = ctx_local * d + feat
        cmax = torch.zeros(n_ctx * d, device=dev).scatter_reduce_(0, key, val, "amax", include_self=True)
        win = val == cmax[key]
        # the peak's position (the last one on ties, deterministically)
        cpos = torch.zeros(n_ctx * d, dtype=torch.int64, device=dev).scatter_reduce_(
            0, key, torch.where(win, pos, torch.zeros_like(pos)), "amax", include_self=True)
        cand_val = torch.cat([self.top_val, cmax.view(n_ctx, d)])
        cand_ctx = torch.cat([self.top_ctx, (ctx_offset + torch.arange(n_ctx, device=dev))[:, None].expand(n_ctx, d)])
        cand_pos = torch.cat([self.top_pos, cpos.view(n_ctx, d)])
        self.top_val, sel = cand_val.topk(self.n_top, dim=0)
        self.top_ctx = cand_ctx.gather(0, sel)
        self.top_pos = cand_pos.gather(0, sel)
        # size-1 reservoirs per (feature, half bin): keep the largest random key
        slot = feat * (N_BINS * RESERVOIR_PER_BIN) + half
        rkey = torch.rand(val.shape[0], generator=self.gen, device=dev)
        self.res_key = self.res_key.scatter_reduce(0, slot, rkey, "amax", include_self=True)
        s = torch.where(rkey == self.res_key[slot], slot, self._n_res)  # losers write the spare slot
        self.res_ctx[s] = ctx_offset + ctx_local
        self.res_pos[s] = pos
        self.res_val[s] = val
        if self.coact is not None:
            self._update_coact(acts.top_idx.to(dev), acts.top_val.to(dev))

    def _update_coact(self, idx: Tensor, vals: Tensor) -> None:
        # idx, vals [n_tokens kk]: pairs (i, j), i != j, both active on the same token
        active = vals > 0
        pair_ok = active[:, :, None] & active[:, None, :]
        pair_ok &= ~torch.eye(idx.shape[1], dtype=torch.bool, device=idx.device)[None]
        keys = idx[:, :, None] * self.d_sae + idx[:, None, :]
        # every pair is added, weighted 1 when both are active (a mask select would sync with the host)
        self.coact.index_add_(0, keys.reshape(-1), pair_ok.reshape(-1).to(self.coact.dtype))  # type: ignore[union-attr]

    # results ----------------------------------------------------------------------------
    def density(self) -> Tensor:
        return self.count.double() / max(self.total, 1)

    def mean_active(self) -> Tensor:
        """Mean activation over the tokens where the feature is active (0 for dead features)."""
        return (self.sum / self.count.clamp_min(1)).float()

    def histograms(self) -> Tensor:
        return self.hist.view(self.d_sae, N_BINS)

    def top_contexts(self) -> Picked:
        """``[K d_sae]`` best contexts per feature, strongest first (ctx -1 where fewer were active)."""
        ctx = torch.where(self.top_val > 0, self.top_ctx, torch.full_like(self.top_ctx, -1))
        return Picked(ctx, self.top_pos, self.top_val)

    def reservoir(self) -> Picked:
        """``[d_sae N_BINS*RESERVOIR_PER_BIN]`` one sampled token per (feature, half-bin) (ctx -1 if empty)."""
        shape = (self.d_sae, N_BINS * RESERVOIR_PER_BIN)
        n = self._n_res
        return Picked(self.res_ctx[:n].view(shape), self.res_pos[:n].view(shape), self.res_val[:n].view(shape))

    def coactivation(self, n: int) -> tuple[Tensor, Tensor] | None:
        """Top ``n`` co-active features per feature by Jaccard index ``|i∧j| / |i∨j|``:
        (indices ``[d_sae n]``, scores ``[d_sae n]``), or None when not tracked."""
        if self.coact is None:
            return None
        c = self.coact.view(self.d_sae, self.d_sae)
        cnt = self.count.float()
        out_idx, out_val = [], []
        for lo in range(0, self.d_sae, 1024):  # chunks bound the [chunk d_sae] temporaries
            cc = c[lo: lo + 1024]
            union = cnt[lo: lo + 1024, None] + cnt[None, :] - cc
            jac = cc / union.clamp_min(1)
            v, i = jac.topk(min(n, self.d_sae), dim=1)
            out_idx.append(i)
            out_val.append(v)
        return torch.cat(out_idx), torch.cat(out_val)
