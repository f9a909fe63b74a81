"""Per-SAE training objectives (plain torch, no Lightning): TopK with AuxK on the sparse kernels,
BatchTopK, and standard ReLU + L1. Each returns a StepResult; ``DeadTracker`` counts tokens since
each latent last fired."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..sae.model import SparseAutoencoder
from ..sae.sparse import sparse_decode, topk_encode


class StepResult(NamedTuple):
    loss: Tensor
    """Scalar to minimise (reconstruction + sparsity/aux terms), in SAELens's units: squared error summed
    over d_in and averaged over tokens (see ``per_token``)."""
    mse: float
    """Mean squared error per element, in the SAE's (normalised) input space."""
    fvu: float
    """Fraction of variance unexplained on this batch."""
    l0: float
    """Mean active latents per token."""
    aux: float
    """AuxK (topk) or L1 (standard) term."""


class DeadTracker(nn.Module):
    """``tokens_since_fired [d_sae]`` and ``fire_count [d_sae]`` over training (saved in checkpoints)."""

    def __init__(self, d_sae: int, dead_after_tokens: int) -> None:
        super().__init__()
        self.dead_after_tokens = dead_after_tokens
        self.register_buffer("tokens_since_fired", torch.zeros(d_sae, dtype=torch.long))
        self.register_buffer("fire_count", torch.zeros(d_sae, dtype=torch.long))

    @torch.no_grad()
    def update(self, fired_idx: Tensor, n_tokens: int) -> None:
        """``fired_idx``: flat latent indices of every (token, latent) activation in the batch."""
        counts = torch.bincount(fired_idx, minlength=self.fire_count.shape[0])
        self.fire_count += counts
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[counts > 0] = 0

    def dead_mask(self) -> Tensor:
        return self.tokens_since_fired >= self.dead_after_tokens

    def dead_fraction(self) -> float:
        return float(self.dead_mask().float().mean())


def _variance(x: Tensor) -> Tensor:
    return (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def per_token(fvu_loss: Tensor, var: Tensor, n_tokens: int) -> Tensor:
    """An FVU-normalised loss (squared error / the batch's total variance ``var``) in SAELens's units:
    times the batch's per-token variance, i.e. squared error summed over d_in, averaged over tokens.

    Why it matters: Adam is invariant to a constant loss scale except for its ``eps`` (1e-8), and FVU
    gradients are smaller by the per-token variance (~570 on SmolLM2's scaled residual stream), small
    enough for ``eps`` to damp the updates of rarely firing latents. Measured on the default model (layer 6,
    d_sae 4608, k 32, 131k tokens, same data and init): held-out FVU 0.1917 minimising FVU vs 0.1787 in
    these units (SAELens 0.1805); FVU with eps scaled down by the per-token variance gives 0.1820, so eps is
    most of it and the rest is FVU weighting each batch by its own variance (a batch with an outlier token
    counts less). Gradient clipping (``grad_clip_norm``) then bounds SAELens's gradients
    directly. The reported ``fvu``/``aux`` metrics stay normalised."""
    return fvu_loss * (var.detach() / n_tokens)


AUX_K_ON = ("raw", "post_relu")


def topk_step(sae: SparseAutoencoder, x: Tensor, tracker: DeadTracker, k_aux: int, aux_coef: float,
              aux_k_on: str = "raw") -> StepResult:
    """TopK with AuxK (Gao et al. 2024): dead latents reconstruct the residual error. ``aux_k_on``: the top
    ``k_aux`` dead latents contribute their raw pre-activations ('raw', as SAELens) or their ReLU
    ('post_relu', as sparsify: a dead latent with a negative pre-activation then gets no gradient)."""
    if aux_k_on not in AUX_K_ON:
        raise ValueError(f"aux_k_on must be one of {', '.join(AUX_K_ON)}, got {aux_k_on!r}")
    x_s = x * sae.scale  # [batch d_in]
    dead = tracker.dead_mask()
    n_dead = int(dead.sum())
    codes = topk_encode(x_s - sae.b_dec, sae.W_enc, sae.b_enc, sae.cfg.k, dead if n_dead else None, k_aux,
                        aux_k_on == "post_relu")
    recon = sparse_decode(codes.idx, codes.acts, sae.W_dec) + sae.b_dec
    err = recon - x_s
    var = _variance(x_s)
    fvu = err.pow(2).sum() / var
    loss = fvu
    aux = torch.zeros((), device=x.device)
    if codes.aux_idx.shape[1]:
        e_hat = sparse_decode(codes.aux_idx, codes.aux_acts, sae.W_dec)
        scale = min(n_dead / max(1, k_aux), 1.0)
        aux = scale * (e_hat + err.detach()).pow(2).sum() / var  # target is the residual x_s - recon
        loss = loss + aux_coef * aux
    active = codes.acts > 0
    tracker.update(codes.idx[active], x.shape[0])
    return StepResult(per_token(loss, var, x.shape[0]), float(err.detach().pow(2).mean()), float(fvu.detach()),
                      float(active.sum(1).float().mean()), float(aux.detach()))


def batchtopk_step(sae: SparseAutoencoder, x: Tensor, tracker: DeadTracker, threshold_lr: float = 0.01) -> StepResult:
    """BatchTopK (Bussmann et al. 2024): the batch's k*batch largest activations; the inference threshold
    tracks the smallest selected activation (EMA), saved as jumprelu for SAELens."""
    x_s = x * sae.scale
    pre = (x_s - sae.b_dec) @ sae.W_enc + sae.b_enc  # [batch d_sae]
    acts = pre.relu()
    flat = acts.flatten()
    vals, idx = flat.topk(min(sae.cfg.k * x.shape[0], flat.numel()), sorted=False)  # type: ignore[operator]
    f = torch.zeros_like(flat).scatter(0, idx, vals).view_as(acts)
    recon = f @ sae.W_dec + sae.b_dec
    err = recon - x_s
    var = _variance(x_s)
    fvu = err.pow(2).sum() / var
    with torch.no_grad():
        pos = vals[vals > 0]
        if pos.numel():
            t = sae.threshold
            t.mul_(1 - threshold_lr).add_(threshold_lr * pos.min()) if bool((t > 0).any()) else t.fill_(float(pos.min()))
        active = f > 0
        tracker.update(active.nonzero()[:, 1], x.shape[0])
    return StepResult(per_token(fvu, var, x.shape[0]), float(err.detach().pow(2).mean()), float(fvu.detach()),
                      float(active.sum(1).float().mean()), 0.0)


def standard_step(sae: SparseAutoencoder, x: Tensor, tracker: DeadTracker, l1: float) -> StepResult:
    """ReLU + L1 weighted by decoder norms (SAELens's standard objective, MSE summed over d_in)."""
    x_s = x * sae.scale
    pre = (x_s - sae.b_dec) @ sae.W_enc + sae.b_enc
    f = pre.relu()
    recon = f @ sae.W_dec + sae.b_dec
    err = recon - x_s
    mse_tok = err.pow(2).sum(1).mean()
    sparsity = (f * sae.W_dec.norm(dim=1)).sum(1).mean()
    loss = mse_tok + l1 * sparsity
    with torch.no_grad():
        active = f > 0
        tracker.update(active.nonzero()[:, 1], x.shape[0])
        fvu = err.pow(2).sum() / _variance(x_s)
    return StepResult(loss, float(err.detach().pow(2).mean()), float(fvu), float(active.sum(1).float().mean()),
                      float(sparsity.detach()))


@torch.no_grad()
def remove_parallel_grads(sae: SparseAutoencoder) -> None:
    """Project out the gradient component along each (unit) decoder row, so the norm step that follows
    only rotates rows (as sparsify does)."""
    g = sae.W_dec.grad
    if g is None:
        return
    w = sae.W_dec
    g -= (g * w).sum(1, keepdim=True) * w / w.pow(2).sum(1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def clip_grads(sae: SparseAutoencoder, max_norm: float) -> float:
    """Scale ``sae``'s gradients so their global L2 norm is at most ``max_norm`` (the losses are in SAELens's
    units, whose trainer clips at 1.0). Touches this SAE only, so sweep members never change each other's
    step. Returns the norm before clipping."""
    grads = [p.grad for p in sae.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))
    if norm > max_norm:
        factor = max_norm / (norm + 1e-6)
        for g in grads:
            g.mul_(factor)
    return norm
