"""SparseAutoencoder: a plain nn.Module (Lightning stays in training/).

Encode ``act((x·s - b_dec) @ W_enc + b_enc)``, decode ``f @ W_dec + b_dec`` (then ``/ s``), where ``s``
is the stored input normalisation scale (1 without normalisation). Shapes: ``x [batch d_in]``,
``f [batch d_sae]``, ``W_enc [d_in d_sae]``, ``W_dec [d_sae d_in]`` — SAELens's names and layout.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import SAEConfig


class SAEOutput(NamedTuple):
    x_hat: Tensor
    """Reconstruction ``[batch d_in]`` in the input's scale."""
    feature_acts: Tensor
    """Latent activations ``[batch d_sae]`` (dense)."""
    pre_acts: Tensor
    """Encoder pre-activations ``[batch d_sae]``."""


class SparseAutoencoder(nn.Module):
    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        # jumprelu/batchtopk inference threshold per latent, compared with the pre-activation; 0 = plain ReLU
        self.register_buffer("threshold", torch.zeros(d_sae))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """Unit-norm decoder rows, encoder = decoder transpose, zero biases."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        w = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=g)
        w /= w.norm(dim=1, keepdim=True)
        self.W_dec.copy_(w)
        self.W_enc.copy_(w.T)
        self.b_enc.zero_()
        self.b_dec.zero_()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Constrain decoder rows to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @property
    def scale(self) -> float:
        return float(self.cfg.norm_scale) if self.cfg.normalize_activations != "none" else 1.0

    # encode / decode -------------------------------------------------------------------
    def pre_activations(self, x: Tensor) -> Tensor:
        # activations of any dtype and device (a dispatched model's block) are read in the SAE's: float32 here
        x = x.to(device=self.W_enc.device, dtype=self.W_enc.dtype) * self.scale
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activation(self, pre: Tensor) -> Tensor:
        arch = self.cfg.architecture
        if arch == "topk":
            vals, idx = pre.topk(self.cfg.k, dim=-1)  # type: ignore[arg-type]
            return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
        if arch in ("jumprelu", "batchtopk"):
            # SAELens's JumpReLU: ReLU, then zero every latent whose pre-activation is <= its threshold
            # (a negative threshold never lets a negative pre-activation through)
            return pre.relu() * (pre > self.threshold)
        return pre.relu()

    def encode(self, x: Tensor) -> Tensor:
        return self.activation(self.pre_activations(x))

    def decode(self, f: Tensor) -> Tensor:
        return (f @ self.W_dec + self.b_dec) / self.scale

    def forward(self, x: Tensor) -> SAEOutput:
        pre = self.pre_activations(x)
        f = self.activation(pre)
        return SAEOutput(self.decode(f), f, pre)

    @property
    def layer(self) -> int:
        return self.cfg.layer
