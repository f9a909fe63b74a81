"""Activation-density histogram: the fraction of tokens on which each latent fires, binned in log10 with the
same edges as the training metrics (``training.evaluate.DENSITY_BINS``), so the two panels line up."""
from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ..activations.store import iter_activations
from ..errors import BadRequest
from ..model.loader import LoadedModel
from ..sae.model import SparseAutoencoder
from ..training.evaluate import DENSITY_BINS

DENSE_THRESHOLD = 0.1
"""A latent firing on more than this fraction of tokens is counted as dense."""


@dataclass
class DensityResult:
    n_tokens: int
    """Tokens the densities were measured on."""
    log10_density_edges: list[float]
    """Bin edges (log10 of the firing fraction); never-firing latents fall in the first bin."""
    counts: list[int]
    """Latents per bin."""
    dead_fraction: float
    """Latents that never fired on these tokens."""
    dense_fraction: float
    """Latents firing on more than ``DENSE_THRESHOLD`` of the tokens."""
    median_log10_density: float | None
    """Median log10 density of the latents that fired (None if none did)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def density_from_counts(fired: Tensor, n_tokens: int) -> DensityResult:
    """From per-latent firing counts ``fired [d_sae]`` over ``n_tokens`` tokens."""
    if n_tokens <= 0:
        raise BadRequest("density needs at least one token")
    density = fired.double().cpu() / n_tokens
    logd = torch.log10(density.clamp_min(1e-10))
    edges = torch.tensor(DENSITY_BINS, dtype=torch.float64)
    counts = torch.histogram(logd, bins=edges).hist
    alive = logd[density > 0]
    return DensityResult(n_tokens, edges.tolist(), [int(c) for c in counts.tolist()],
                         float((density == 0).double().mean()), float((density > DENSE_THRESHOLD).double().mean()),
                         float(alive.median()) if alive.numel() else None)


@torch.no_grad()
def density_from_activations(sae: SparseAutoencoder, x: Tensor, batch: int = 4096) -> DensityResult:
    """Densities of ``sae``'s latents on activations ``x [n d_in]``."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    for s in range(0, x.shape[0], batch):
        fired += (sae.encode(x[s: s + batch].to(sae.W_enc.device, torch.float32)) > 0).sum(0).cpu()
    return density_from_counts(fired, x.shape[0])


@torch.no_grad()
def density_histogram(lm: LoadedModel, sae: SparseAutoencoder, contexts: Tensor, *, n_tokens: int = 65_536,
                      batch_size: int = 16, lock: threading.RLock | None = None) -> DensityResult:
    """Run ``contexts [n ctx]`` (position 0 excluded, at most ``n_tokens`` tokens) and histogram the densities.
    Each forward holds ``lock``."""
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.long)
    seen = 0
    it = iter_activations(lm, contexts, [sae.cfg.hook_name], batch_size=batch_size, exclude_first=True,
                          max_tokens=n_tokens)
    while True:
        with lock or nullcontext():
            try:
                acts = next(it)[sae.cfg.hook_name]
            except StopIteration:
                break
        fired += (sae.encode(acts.to(sae.W_enc.device, torch.float32)) > 0).sum(0).cpu()
        seen += acts.shape[0]
    return density_from_counts(fired, seen)
