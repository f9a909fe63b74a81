"""Synthetic ground-truth check: train our TopK SAE (the product's objective functions and sparse kernels)
and a dense reference TopK trainer on the same planted activations, then match both decoders to the truth.

Ours (``train_topk``): ``training.objectives.topk_step`` (sparse TopK kernels + AuxK), ``DeadTracker``,
``remove_parallel_grads`` before each Adam step and ``SparseAutoencoder.normalize_decoder`` after it — the
step the Lightning module takes, in a plain loop. The reference (``train_dense_reference``) is written
independently here with dense autograd: a ``[batch d_sae]`` code matrix, ``f @ W_dec`` decoding, its own
dead-latent count, gradient projection and row normalisation. Both start from the same weights, see the
same batches in the same order and use the same optimiser and schedule, so their recovery should agree; a
bug in our kernels or step shows up as a gap (and as an MCC under the bar).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from ..sae.config import SAEConfig
from ..sae.model import SparseAutoencoder
from ..training.objectives import DeadTracker, per_token, remove_parallel_grads, topk_step
from .synthetic_data import RECOVERY_THRESHOLD, FeatureMatch, SyntheticConfig, generate, match_features


@dataclass
class SyntheticTrainConfig:
    d_sae: int | None = None
    """Latents; None = 1.5x the true features (a little wider than the truth, as real SAEs are: with exactly
    as many latents as features a few latents settle on mixtures and recovery stalls near MCC 0.88)."""
    k: int = 4
    """Active latents per token (the default data has 3 active features per token on average)."""
    lr: float = 1e-2
    """Adam learning rate (peak)."""
    batch_size: int = 512
    epochs: int = 3
    """Passes over the generated training tokens."""
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2
    """Linear decay to zero over the last fraction of steps."""
    aux_k: int | None = None
    """AuxK dead latents per token; None = d_in // 2."""
    aux_coef: float = 1 / 32
    dead_after_tokens: int = 16_384
    """A latent is dead after this many tokens without firing."""
    seed: int = 0
    """Initial weights and batch order."""
    eval_tokens: int = 8192
    """Held-out tokens (generated after the training tokens) for FVU and L0."""

    def __post_init__(self) -> None:
        if self.k < 1 or (self.d_sae is not None and not self.k <= self.d_sae):
            raise Invalid(f"need 1 <= k <= d_sae, got k={self.k}, d_sae={self.d_sae}")
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1 or self.eval_tokens < 1:
            raise Invalid("lr, batch_size, epochs and eval_tokens must be positive")

    def lr_factor(self, step: int, total: int) -> float:
        warm = max(1, int(total * self.warmup_fraction))
        decay = int(total * self.decay_fraction)
        if step < warm:
            return (step + 1) / warm
        if decay and step >= total - decay:
            return max(0.0, (total - step) / decay)
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Trained(NamedTuple):
    sae: SparseAutoencoder
    tokens_per_s: float
    """Training tokens per second of wall time (the loop only, data generation excluded)."""
    seconds: float
    dead_fraction: float


def _new_sae(d_in: int, d_sae: int, k: int, seed: int, x: Tensor) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, hook_name="",
                                      dataset_path="synthetic", apply_b_dec_to_input=True))
    sae.reset_parameters(seed=seed)
    with torch.no_grad():
        sae.b_dec.copy_(x[:4096].mean(0))
    return sae


def _batches(n: int, cfg: SyntheticTrainConfig) -> list[Tensor]:
    g = torch.Generator().manual_seed(cfg.seed + 1)
    out = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        out += [perm[s: s + cfg.batch_size] for s in range(0, n - cfg.batch_size + 1, cfg.batch_size)]
    return out


def _optimizer(params: list[Tensor], cfg: SyntheticTrainConfig, total: int):
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: cfg.lr_factor(i, total))


def train_topk(x: Tensor, cfg: SyntheticTrainConfig, d_sae: int) -> Trained:
    """Our trainer: the product's TopK step (sparse kernels, AuxK) in a plain torch loop."""
    d_in = x.shape[1]
    sae = _new_sae(d_in, d_sae, cfg.k, cfg.seed, x)
    tracker = DeadTracker(d_sae, cfg.dead_after_tokens)
    batches = _batches(x.shape[0], cfg)
    opt, sched = _optimizer(list(sae.parameters()), cfg, len(batches))
    k_aux = cfg.aux_k if cfg.aux_k is not None else d_in // 2
    t0 = time.perf_counter()
    for idx in batches:
        res = topk_step(sae, x[idx], tracker, k_aux, cfg.aux_coef)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        remove_parallel_grads(sae)
        opt.step()
        sched.step()
        sae.normalize_decoder()
    dt = time.perf_counter() - t0
    return Trained(sae, len(batches) * cfg.batch_size / dt, dt, tracker.dead_fraction())


def train_dense_reference(x: Tensor, cfg: SyntheticTrainConfig, d_sae: int) -> Trained:
    """Reference trainer: the same TopK + AuxK objective with dense codes and plain autograd."""
    d_in = x.shape[1]
    init = _new_sae(d_in, d_sae, cfg.k, cfg.seed, x)
    W_enc, b_enc, W_dec, b_dec = (p.detach().clone().requires_grad_(True)
                                  for p in (init.W_enc, init.b_enc, init.W_dec, init.b_dec))
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    batches = _batches(x.shape[0], cfg)
    opt, sched = _optimizer([W_enc, b_enc, W_dec, b_dec], cfg, len(batches))
    k_aux = cfg.aux_k if cfg.aux_k is not None else d_in // 2
    t0 = time.perf_counter()
    for idx in batches:
        xb = x[idx]
        pre = (xb - b_dec) @ W_enc + b_enc  # [batch d_sae]
        vals, top = pre.topk(cfg.k, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top, vals.relu())
        recon = f @ W_dec + b_dec
        err = recon - xb
        var = (xb - xb.mean(0)).pow(2).sum().clamp_min(1e-12)
        loss = err.pow(2).sum() / var
        dead = since_fired >= cfg.dead_after_tokens
        n_dead = int(dead.sum())
        if n_dead and k_aux:
            avals, atop = pre.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
            e_hat = torch.zeros_like(pre).scatter(-1, atop, avals.relu()) @ W_dec
            scale = min(n_dead / k_aux, 1.0)
            loss = loss + cfg.aux_coef * scale * (e_hat + err.detach()).pow(2).sum() / var
        loss = per_token(loss, var, xb.shape[0])  # the product's loss units
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            fired = (f > 0).any(0)
            since_fired += xb.shape[0]
            since_fired[fired] = 0
            g = W_dec.grad
            g -= (g * W_dec).sum(1, keepdim=True) * W_dec / W_dec.pow(2).sum(1, keepdim=True).clamp_min(1e-12)
        opt.step()
        sched.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        for p, v in zip((init.W_enc, init.b_enc, init.W_dec, init.b_dec), (W_enc, b_enc, W_dec, b_dec)):
            p.copy_(v)
    return Trained(init, len(batches) * cfg.batch_size / dt, dt, float((since_fired >= cfg.dead_after_tokens).float().mean()))


@dataclass
class TrainerReport:
    name: str
    """'ours' (product TopK step) or 'dense_reference'."""
    mcc: float
    """Mean matched cosine (Hungarian) with the true features."""
    mmcs: float
    """Mean over true features of the best cosine with any latent."""
    f1: float
    """F1 of recovered features at ``threshold``."""
    precision: float
    recall: float
    fvu: float
    """Held-out fraction of variance unexplained."""
    l0: float
    """Held-out active latents per token."""
    dead_fraction: float
    """Latents that had not fired in the last ``dead_after_tokens`` training tokens."""
    tokens_per_s: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyntheticResult:
    data: SyntheticConfig
    """How the activations were generated."""
    train: SyntheticTrainConfig
    """How both SAEs were trained."""
    threshold: float
    """Matched cosine at which a true feature counts as recovered."""
    ours: TrainerReport
    """Our TopK trainer."""
    reference: TrainerReport | None
    """The dense reference trainer (None when skipped)."""
    true_mean_l0: float
    """Measured active true features per generated token."""
    mcc_at_init: float
    """MCC of the (shared) initial decoder: what training starts from, the floor to beat."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data.to_dict(), "train": self.train.to_dict(), "threshold": self.threshold,
                "ours": self.ours.to_dict(), "reference": self.reference.to_dict() if self.reference else None,
                "true_mean_l0": self.true_mean_l0, "mcc_at_init": self.mcc_at_init, "extra": self.extra}


@torch.no_grad()
def _report(name: str, t: Trained, truth: Tensor, x_eval: Tensor, threshold: float) -> TrainerReport:
    out = t.sae(x_eval)
    m: FeatureMatch = match_features(truth, t.sae.W_dec, threshold, live=(out.feature_acts > 0).any(0))
    fvu = float((out.x_hat - x_eval).pow(2).sum() / (x_eval - x_eval.mean(0)).pow(2).sum())
    l0 = float((out.feature_acts > 0).sum(1).float().mean())
    return TrainerReport(name, m.mcc, m.mmcs, m.f1, m.precision, m.recall, fvu, l0, t.dead_fraction,
                         t.tokens_per_s, t.seconds)


def synthetic_ground_truth(data: SyntheticConfig | None = None, train: SyntheticTrainConfig | None = None, *,
                           reference: bool = True, threshold: float = RECOVERY_THRESHOLD,
                           progress: Callable[[str], None] | None = None) -> SyntheticResult:
    """Generate planted activations, train ours (and the dense reference) on them, match to the truth."""
    data = data or SyntheticConfig()
    train = train or SyntheticTrainConfig()
    d_sae = train.d_sae or round(1.5 * data.n_features)
    if train.k > d_sae:
        raise Invalid(f"k ({train.k}) exceeds d_sae ({d_sae})")
    full = SyntheticConfig(**{**data.to_dict(), "n_tokens": data.n_tokens + train.eval_tokens})
    gen = generate(full)
    x, x_eval = gen.x[: data.n_tokens], gen.x[data.n_tokens:]
    if x.shape[0] < train.batch_size:
        raise Invalid(f"n_tokens ({data.n_tokens}) must be at least one batch ({train.batch_size})")
    true_l0 = float((gen.codes[: data.n_tokens] > 0).sum(1).float().mean())
    mcc_init = match_features(gen.features, _new_sae(data.d_in, d_sae, train.k, train.seed, x).W_dec).mcc
    if progress:
        progress("training ours")
    ours = _report("ours", train_topk(x, train, d_sae), gen.features, x_eval, threshold)
    ref = None
    if reference:
        if progress:
            progress("training dense reference")
        ref = _report("dense_reference", train_dense_reference(x, train, d_sae), gen.features, x_eval, threshold)
    return SyntheticResult(data, train, threshold, ours, ref, true_l0, mcc_init)
