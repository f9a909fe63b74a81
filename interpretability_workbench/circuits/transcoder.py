"""Transcoder: a sparse replacement for one MLP (a plain nn.Module; Lightning stays in training/).

A transcoder reads the MLP's input after its norm (``blocks.L.ln2.hook_normalized``) and predicts the
MLP's output (``blocks.L.hook_mlp_out``)::

    f     = act(x @ W_enc + b_enc)                      x [.. d_in], f [.. d_tc]
    y_hat = f @ W_dec + b_dec (+ x @ W_skip)           y_hat [.. d_out]

``W_enc [d_in d_tc]``, ``W_dec [d_tc d_out]``, ``W_skip [d_in d_out]`` (skip transcoders, Paulo et al.
2025). There is no ``b_dec`` subtraction at the input: input and output live in different spaces.
Activations: ``topk`` (k largest, ReLU'd), ``jumprelu`` (``pre * (pre > threshold)``, one threshold per
latent) and ``relu`` (for imported ReLU transcoders such as circuit-tracer's Llama set).

Training is one step function per batch (``transcoder_step``): FVU of the MLP output (+ AuxK for TopK,
+ an L0 penalty with straight-through threshold gradients for JumpReLU). ``before_optimizer_step`` and
``after_optimizer_step`` hold the decoder-norm handling a training loop calls around ``optimizer.step``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..model.hook_names import MLP_IN, hook_name, parse_hook_name
from ..sae.sparse import sparse_decode, topk_encode

ACTIVATIONS = ("topk", "jumprelu", "relu")


@dataclass
class TranscoderConfig:
    d_in: int
    """Width of what the transcoder reads (d_model)."""
    d_tc: int
    """Number of latents (features)."""
    d_out: int | None = None
    """Width of what it predicts (d_model); None means d_in."""
    architecture: str = "topk"
    """topk (k largest pre-activations, ReLU'd), jumprelu (per-latent threshold) or relu."""
    k: int | None = 32
    """Active latents per token for topk."""
    skip: bool = False
    """Whether the transcoder has a linear skip term ``x @ W_skip``."""
    layer: int = 0
    """Block whose MLP it replaces."""
    input_hook: str = ""
    """Canonical hook it reads; default ``blocks.{layer}.ln2.hook_normalized`` (the MLP input)."""
    output_hook: str = ""
    """Canonical hook it predicts; default ``blocks.{layer}.hook_mlp_out``."""
    model_id: str = ""
    """Base model id the activations came from."""
    model_revision: str | None = None
    """Base model revision or content tag."""
    model_class_name: str = ""
    """HF class of the base model (e.g. LlamaForCausalLM)."""
    context_size: int = 128
    """Tokens per context during training."""
    dataset_path: str = "default"
    """Corpus the transcoder was trained on."""
    l0_coefficient: float = 1e-3
    """Weight of the L0 penalty when training a jumprelu transcoder."""
    jumprelu_bandwidth: float = 1e-3
    """Width of the rectangle kernel of the straight-through threshold gradient (jumprelu training)."""
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (training metrics, run id, provenance of an import)."""

    def __post_init__(self) -> None:
        if self.d_out is None:
            self.d_out = self.d_in
        if self.d_in <= 0 or self.d_tc <= 0 or self.d_out <= 0:
            raise ValueError("d_in, d_tc and d_out must be positive")
        if self.architecture not in ACTIVATIONS:
            raise ValueError(f"architecture must be one of {', '.join(ACTIVATIONS)}, got {self.architecture!r}")
        if self.architecture == "topk" and (not self.k or not 0 < self.k <= self.d_tc):
            raise ValueError(f"k must be in 1..d_tc ({self.d_tc}) for topk, got {self.k}")
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        self.input_hook = self.input_hook or hook_name(self.layer, MLP_IN)
        self.output_hook = self.output_hook or hook_name(self.layer, "mlp_out")
        for h in (self.input_hook, self.output_hook):
            if parse_hook_name(h).layer != self.layer:
                raise ValueError(f"hook {h} is not in layer {self.layer}")
        if self.l0_coefficient < 0 or self.jumprelu_bandwidth <= 0:
            raise ValueError("l0_coefficient must be >= 0 and jumprelu_bandwidth > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TranscoderConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TranscoderOutput(NamedTuple):
    y_hat: Tensor
    """Predicted MLP output ``[.. d_out]`` (skip term included)."""
    feature_acts: Tensor
    """Latent activations ``[.. d_tc]`` (dense)."""
    pre_acts: Tensor
    """Encoder pre-activations ``[.. d_tc]``."""


class Transcoder(nn.Module):
    def __init__(self, cfg: TranscoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_tc, d_out = cfg.d_in, cfg.d_tc, cfg.d_out
        self.W_enc = nn.Parameter(torch.empty(d_in, d_tc))
        self.b_enc = nn.Parameter(torch.zeros(d_tc))
        self.W_dec = nn.Parameter(torch.empty(d_tc, d_out))  # type: ignore[arg-type]
        self.b_dec = nn.Parameter(torch.zeros(d_out))  # type: ignore[arg-type]
        self.W_skip = nn.Parameter(torch.zeros(d_in, d_out)) if cfg.skip else None  # type: ignore[arg-type]
        # per-latent threshold: trained for jumprelu, unused (0) otherwise
        self.threshold = nn.Parameter(torch.zeros(d_tc), requires_grad=cfg.architecture == "jumprelu")
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Unit-norm encoder columns, decoder = their transpose (scaled to unit rows), zero biases/skip."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.randn(self.cfg.d_in, self.cfg.d_tc, generator=g)
        w /= w.norm(dim=0, keepdim=True)
        self.W_enc.copy_(w)
        if self.cfg.d_in == self.cfg.d_out:
            self.W_dec.copy_(w.T)
        else:
            d = torch.randn(self.cfg.d_tc, self.cfg.d_out, generator=g)  # type: ignore[arg-type]
            self.W_dec.copy_(d / d.norm(dim=1, keepdim=True))
        self.b_enc.zero_()
        self.b_dec.zero_()
        self.threshold.zero_()
        if self.W_skip is not None:
            self.W_skip.zero_()

    @property
    def layer(self) -> int:
        return self.cfg.layer

    @property
    def d_tc(self) -> int:
        return self.cfg.d_tc

    # encode / decode -------------------------------------------------------------------
    def pre_activations(self, x: Tensor) -> Tensor:
        """``[.. d_in]`` -> ``[.. d_tc]``."""
        return x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc

    def activation(self, pre: Tensor) -> Tensor:
        arch = self.cfg.architecture
        if arch == "topk":
            vals, idx = pre.topk(self.cfg.k, dim=-1)  # type: ignore[arg-type]
            return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
        if arch == "jumprelu":
            return pre * (pre > self.threshold)
        return pre.relu()

    def encode(self, x: Tensor) -> Tensor:
        return self.activation(self.pre_activations(x))

    def skip_term(self, x: Tensor) -> Tensor:
        """``x @ W_skip`` ``[.. d_out]`` (zeros without a skip connection)."""
        if self.W_skip is None:
            return x.new_zeros(*x.shape[:-1], self.cfg.d_out)  # type: ignore[misc]
        return x.to(self.W_skip.dtype) @ self.W_skip

    def decode(self, f: Tensor, x: Tensor | None = None) -> Tensor:
        """``f @ W_dec + b_dec``, plus the skip term when ``x`` is given and the transcoder has one."""
        y = f @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            if x is None:
                raise ValueError("this transcoder has a skip connection: decode needs its input x")
            y = y + self.skip_term(x)
        return y

    def forward(self, x: Tensor) -> TranscoderOutput:
        pre = self.pre_activations(x)
        f = self.activation(pre)
        return TranscoderOutput(self.decode(f, x), f, pre)

    # decoder norms ---------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Constrain decoder rows to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)


# ---- training ---------------------------------------------------------------------------------


class TranscoderStep(NamedTuple):
    loss: Tensor
    """Scalar to minimise: (FVU + the aux/L0 term) times the batch's per-token variance of the MLP output."""
    fvu: float
    """Fraction of the MLP output's variance the transcoder leaves unexplained (this batch)."""
    mse: float
    """Mean squared error per element of the MLP output."""
    l0: float
    """Mean active latents per token."""
    aux: float
    """AuxK (topk) or L0 penalty (jumprelu) term."""
    fired: Tensor
    """Flat latent indices of every (token, latent) activation: feed a dead-latent tracker."""


def _rectangle(x: Tensor) -> Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    """``pre * (pre > t)``; d/dpre = the mask, d/dt by the rectangle-kernel straight-through estimator
    (Rajamanoharan et al. 2024): ``-(t/eps) K((pre - t)/eps)``."""

    @staticmethod
    def forward(ctx, pre: Tensor, t: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(pre, t)
        ctx.eps = eps
        return pre * (pre > t)

    @staticmethod
    def backward(ctx, g: Tensor):
        pre, t = ctx.saved_tensors
        eps = ctx.eps
        g_pre = g * (pre > t)
        g_t = (-(t / eps) * _rectangle((pre - t) / eps) * g).reshape(-1, t.shape[-1]).sum(0)
        return g_pre, g_t, None


class _Step(torch.autograd.Function):
    """Heaviside ``pre > t`` with the straight-through threshold gradient ``-(1/eps) K((pre - t)/eps)``."""

    @staticmethod
    def forward(ctx, pre: Tensor, t: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(pre, t)
        ctx.eps = eps
        return (pre > t).to(pre.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        pre, t = ctx.saved_tensors
        eps = ctx.eps
        g_t = (-(1.0 / eps) * _rectangle((pre - t) / eps) * g).reshape(-1, t.shape[-1]).sum(0)
        return None, g_t, None


def _variance(y: Tensor) -> Tensor:
    return (y - y.mean(0)).pow(2).sum().clamp_min(1e-12)


def transcoder_step(tc: Transcoder, x: Tensor, y: Tensor, *, dead: Tensor | None = None, k_aux: int = 0,
                    aux_coefficient: float = 1 / 32) -> TranscoderStep:
    """One training step's loss on MLP inputs ``x [batch d_in]`` and outputs ``y [batch d_out]``.

    topk: FVU + ``aux_coefficient`` x AuxK (the top ``k_aux`` latents among ``dead [d_tc]`` reconstruct the
    residual error, as for SAEs), on the sparse kernels. jumprelu: FVU + ``l0_coefficient`` x mean L0
    with straight-through threshold gradients. relu: FVU only (ReLU transcoders are imported, not trained
    here: they need an L1 schedule). ``loss`` is that objective times the batch's per-token variance of ``y``
    (SAELens's units: Adam's eps would otherwise damp the small FVU gradients); ``fvu``/``aux`` stay as named.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same batch size, got {x.shape[0]} and {y.shape[0]}")
    cfg = tc.cfg
    y = y.to(tc.W_dec.dtype)
    var = _variance(y)
    skip = tc.skip_term(x) if tc.W_skip is not None else 0.0
    aux = torch.zeros((), device=x.device)
    if cfg.architecture == "topk":
        n_dead = int(dead.sum()) if dead is not None else 0
        codes = topk_encode(x.to(tc.W_enc.dtype), tc.W_enc, tc.b_enc, cfg.k, dead if n_dead else None, k_aux)  # type: ignore[arg-type]
        y_hat = sparse_decode(codes.idx, codes.acts, tc.W_dec) + tc.b_dec + skip
        err = y_hat - y
        loss = fvu = err.pow(2).sum() / var
        if codes.aux_idx.shape[1]:
            e_hat = sparse_decode(codes.aux_idx, codes.aux_acts, tc.W_dec)
            scale = min(n_dead / max(1, k_aux), 1.0)
            aux = scale * (e_hat + err.detach()).pow(2).sum() / var
            loss = loss + aux_coefficient * aux
        active = codes.acts > 0
        fired = codes.idx[active]
        l0 = active.sum(1).float().mean()
    else:
        pre = tc.pre_activations(x)
        if cfg.architecture == "jumprelu":
            f = _JumpReLU.apply(pre, tc.threshold, cfg.jumprelu_bandwidth)
        else:
            f = pre.relu()
        y_hat = f @ tc.W_dec + tc.b_dec + skip
        err = y_hat - y
        loss = fvu = err.pow(2).sum() / var
        if cfg.architecture == "jumprelu":
            aux = _Step.apply(pre, tc.threshold, cfg.jumprelu_bandwidth).sum(-1).mean()
            loss = loss + cfg.l0_coefficient * aux
        active = f.detach() > 0
        fired = active.nonzero()[:, 1]
        l0 = active.sum(1).float().mean()
    # minimised in SAELens's units (squared error summed over d_out, averaged over tokens): see
    # training.objectives.per_token (Adam's eps damps FVU-sized gradients)
    loss = loss * (var.detach() / x.shape[0])
    return TranscoderStep(loss, float(fvu.detach()), float(err.detach().pow(2).mean()), float(l0),
                          float(aux.detach()), fired)


@torch.no_grad()
def before_optimizer_step(tc: Transcoder) -> None:
    """TopK: project out the gradient component along each unit decoder row, so the renormalisation that
    follows only rotates rows (sparsify's practice). Other architectures: nothing."""
    if tc.cfg.architecture != "topk" or tc.W_dec.grad is None:
        return
    g, w = tc.W_dec.grad, tc.W_dec
    g -= (g * w).sum(1, keepdim=True) * w / w.pow(2).sum(1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def after_optimizer_step(tc: Transcoder) -> None:
    """TopK: decoder rows back to unit norm. JumpReLU: thresholds stay non-negative."""
    if tc.cfg.architecture == "topk":
        tc.normalize_decoder()
    elif tc.cfg.architecture == "jumprelu":
        tc.threshold.clamp_(min=0.0)


@torch.no_grad()
def init_b_dec(tc: Transcoder, y: Tensor) -> None:
    """Start the decoder bias at the mean MLP output ``y [n d_out]`` (the best constant prediction)."""
    tc.b_dec.copy_(y.to(tc.b_dec.dtype).mean(0))


@torch.no_grad()
def mlp_fvu(tc: Transcoder, x: Tensor, y: Tensor) -> float:
    """Fraction of variance unexplained of the MLP output ``y [n d_out]`` predicted from ``x [n d_in]``."""
    err = tc(x).y_hat - y.to(tc.W_dec.dtype)
    return float(err.pow(2).sum() / _variance(y.to(tc.W_dec.dtype)))
