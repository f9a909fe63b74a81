"""Sparse TopK kernels: the encoder backward and the decoder touch only the k active latents per token.

A dense TopK step costs five ``[batch d_in] x [d_in d_sae]`` matmuls (encoder forward, encoder weight
grad, decoder forward, decoder weight grad, latent grad). Here only the encoder forward is dense; the
rest work on the ``batch*k`` (token, latent) pairs, as EleutherAI's sparsify does for the decoder:

- decode ``x_hat[b] = sum_j acts[b,j] W_dec[idx[b,j]]`` is an ``embedding_bag`` over the decoder rows;
- weight grads are a sparse ``[d_sae batch]`` CSR matrix (latent-major) times a dense ``[batch d_in]``;
- the latent grads gather the k decoder rows of each token, in chunks to bound memory.
"""
from __future__ import annotations

from typing import NamedTuple

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

_GATHER_CHUNK_FLOATS = 1 << 23  # bound for the [chunk k d_in] gather in the decoder backward
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def _latent_major(idx: Tensor, vals: Tensor, d_sae: int) -> Tensor:
    """``[batch k]`` indices and values -> CSR ``[d_sae batch]`` (row = latent, column = token)."""
    batch, k = idx.shape
    lat = idx.reshape(-1)
    tok = torch.arange(batch, device=idx.device).repeat_interleave(k)
    order = torch.sort(lat, stable=True).indices  # stable sort is ~9x faster than argsort on CPU
    counts = torch.bincount(lat, minlength=d_sae)
    crow = torch.zeros(d_sae + 1, dtype=torch.int64, device=idx.device)
    crow[1:] = counts.cumsum(0)
    return torch.sparse_csr_tensor(crow, tok[order], vals.reshape(-1)[order], size=(d_sae, batch),
                                   check_invariants=False)


def _no_autocast(t: Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False)


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_c: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, dead: Tensor | None, k_aux: int,
                aux_relu: bool = True):
        with _no_autocast(x_c):
            x_c = x_c.to(W_enc.dtype)
            pre = torch.addmm(b_enc, x_c, W_enc)  # [batch d_sae]
            vals, idx = pre.topk(k, dim=-1, sorted=False)
            acts = vals.relu()
            if dead is not None and k_aux > 0 and bool(dead.any()):
                n = min(k_aux, int(dead.sum()))
                avals, aidx = pre.masked_fill(~dead, float("-inf")).topk(n, dim=-1, sorted=False)
                aacts = avals.relu() if aux_relu else avals
            else:
                aidx = idx.new_zeros(x_c.shape[0], 0)
                aacts = acts.new_zeros(x_c.shape[0], 0)
        ctx.save_for_backward(x_c, W_enc, idx, acts, aidx, aacts)
        ctx.mark_non_differentiable(idx, aidx)
        ctx.aux_relu = aux_relu
        return acts, idx, aacts, aidx

    @staticmethod
    def backward(ctx, g_acts, _g_idx, g_aacts, _g_aidx):
        x_c, W_enc, idx, acts, aidx, aacts = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        g = g_acts * (acts > 0) if g_acts is not None else torch.zeros_like(acts)
        if aidx.shape[1]:
            if g_aacts is None:
                ga = torch.zeros_like(aacts)
            else:
                ga = g_aacts * (aacts > 0) if ctx.aux_relu else g_aacts
            idx_all, g_all = torch.cat([idx, aidx], 1), torch.cat([g, ga], 1)
        else:
            idx_all, g_all = idx, g
        g_all = g_all.to(W_enc.dtype)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(idx_all, W_enc.t().contiguous(), per_sample_weights=g_all, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_w = (_latent_major(idx_all, g_all, d_sae) @ x_c).t().contiguous()  # [d_in d_sae]
        if ctx.needs_input_grad[2]:
            grad_b = torch.bincount(idx_all.reshape(-1), weights=g_all.reshape(-1), minlength=d_sae).to(W_enc.dtype)
        return grad_x, grad_w, grad_b, None, None, None, None


def _rowwise_dots(idx: Tensor, g: Tensor, W_dec: Tensor) -> Tensor:
    """``out[b, j] = g[b] . W_dec[idx[b, j]]`` -> ``[batch k]`` without a dense ``[batch d_sae]`` product:
    a sampled matmul on the token-major CSR pattern (falls back to a chunked gather)."""
    batch, k = idx.shape
    try:
        crow = torch.arange(0, batch * k + 1, k, device=idx.device)
        pattern = torch.sparse_csr_tensor(crow, idx.reshape(-1), g.new_zeros(batch * k), size=(batch, W_dec.shape[0]),
                                            check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, g, W_dec.t()).values().view(batch, k)
    except (RuntimeError, NotImplementedError):  # pragma: no cover - backends without sampled_addmm
        chunk = max(1, _GATHER_CHUNK_FLOATS // max(1, k * W_dec.shape[1]))
        out = g.new_empty(batch, k)
        for s in range(0, batch, chunk):
            out[s: s + chunk] = torch.bmm(F.embedding(idx[s: s + chunk], W_dec), g[s: s + chunk, :, None]).squeeze(-1)
        return out


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, idx: Tensor, acts: Tensor, W_dec: Tensor):
        with _no_autocast(acts):
            acts = acts.to(W_dec.dtype)
            out = F.embedding_bag(idx, W_dec, per_sample_weights=acts, mode="sum")  # [batch d_in]
        ctx.save_for_backward(idx, acts, W_dec)
        return out

    @staticmethod
    def backward(ctx, g_out):
        idx, acts, W_dec = ctx.saved_tensors
        g_out = g_out.to(W_dec.dtype).contiguous()
        grad_acts = grad_w = None
        if ctx.needs_input_grad[1]:
            grad_acts = _rowwise_dots(idx, g_out, W_dec)
        if ctx.needs_input_grad[2]:
            grad_w = _latent_major(idx, acts, W_dec.shape[0]) @ g_out  # [d_sae d_in]
        return None, grad_acts, grad_w


class TopKCodes(NamedTuple):
    acts: Tensor
    """Values of the k active latents ``[batch k]`` (after ReLU)."""
    idx: Tensor
    """Their latent indices ``[batch k]``."""
    aux_acts: Tensor
    """AuxK: values of the top dead latents ``[batch k_aux]`` (ReLU'd or raw pre-activations, see
    ``topk_encode``; ``[batch 0]`` when none are dead)."""
    aux_idx: Tensor
    """AuxK latent indices ``[batch k_aux]``."""


def topk_encode(x_c: Tensor, W_enc: Tensor, b_enc: Tensor, k: int, dead: Tensor | None = None,
                k_aux: int = 0, aux_relu: bool = True) -> TopKCodes:
    """TopK codes of centred inputs ``x_c [batch d_in]`` with a sparse backward (same values as the dense
    ``pre.topk`` path). With a ``dead [d_sae]`` mask, also the top ``k_aux`` dead latents for AuxK: their
    ReLU'd pre-activations (``aux_relu``, as sparsify) or the raw ones (as SAELens)."""
    return TopKCodes(*_TopKEncode.apply(x_c, W_enc, b_enc, k, dead, k_aux, aux_relu))


def sparse_decode(idx: Tensor, acts: Tensor, W_dec: Tensor) -> Tensor:
    """``sum_j acts[:, j] * W_dec[idx[:, j]]`` -> ``[batch d_in]`` (no bias), sparse in both directions."""
    return _SparseDecode.apply(idx, acts, W_dec)


@torch.no_grad()
def geometric_median(points: Tensor, max_iter: int = 100, tol: float = 1e-5) -> Tensor:
    """Weiszfeld's algorithm: the point minimising the summed distance to ``points [n d]``."""
    points = points.float()
    guess = points.mean(0)
    for _ in range(max_iter):
        w = 1.0 / (points - guess).norm(dim=1).clamp_min(1e-8)
        new = (w[:, None] * points).sum(0) / w.sum()
        if (new - guess).norm() <= tol * guess.norm().clamp_min(1e-8):
            return new
        guess = new
    return guess
