"""Planted ground truth: activations built from known sparse features, and matching of learned decoder
directions to them.

Generation (``SyntheticConfig``): ``n_features`` random unit directions in ``d_in`` dimensions (more
features than dimensions: superposition). Feature i fires with a power-law probability
``p_i ∝ (i+1)^-alpha``, scaled so a token has ``mean_l0`` active features on average. Firing is correlated
within groups of ``group_size`` consecutive features through a Gaussian copula: each feature has a latent
``z_i = sqrt(rho) g + sqrt(1 - rho) e_i`` (g shared by the group) and fires when ``z_i`` exceeds its
``1 - p_i`` quantile, so the marginal frequencies stay exactly the power law. An active feature has a
magnitude uniform in ``[mag_low, mag_high]``. ``x = sum_i a_i f_i + offset + noise``.

Matching (``match_features``): Hungarian assignment on the signed cosine between true and learned
directions. MCC is the mean matched cosine over the true features (an unmatched true feature, possible only
when the SAE has fewer latents, counts 0). F1 at a cosine ``threshold`` (0.9 by default): recall = true
features whose matched latent has cosine >= threshold / true features; precision = live latents (those that
fire; all latents when no mask is given) whose best cosine with any true feature is >= threshold / live
latents. Dead latents are no claim about the data, so they do not count against precision; a duplicate
of a true feature does not count against it either (it is a true direction), but it cannot raise recall.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import Invalid

RECOVERY_THRESHOLD = 0.9
"""Matched cosine at which a true feature counts as recovered (for F1)."""


@dataclass
class SyntheticConfig:
    d_in: int = 32
    """Width of the generated activations."""
    n_features: int = 64
    """True features (unit directions)."""
    mean_l0: float = 3.0
    """Expected active features per token."""
    alpha: float = 0.5
    """Power-law exponent of the firing probabilities (0: all equally frequent)."""
    group_size: int = 4
    """Consecutive features sharing a correlated firing factor (1: independent)."""
    rho: float = 0.5
    """Latent correlation within a group (Gaussian copula), in [0, 1)."""
    mag_low: float = 0.5
    """Smallest magnitude of an active feature."""
    mag_high: float = 1.5
    """Largest magnitude of an active feature."""
    noise_std: float = 0.01
    """Isotropic Gaussian noise added to every activation."""
    offset_norm: float = 1.0
    """Norm of a constant offset added to every activation (what b_dec should learn)."""
    n_tokens: int = 65_536
    """Activations generated (the training set)."""
    seed: int = 0
    """Generator seed: features, firing and noise are all reproducible."""

    def __post_init__(self) -> None:
        if self.d_in < 2 or self.n_features < 2:
            raise Invalid("d_in and n_features must be at least 2")
        if not 0 < self.mean_l0 < self.n_features:
            raise Invalid(f"mean_l0 must be in (0, n_features={self.n_features}), got {self.mean_l0}")
        if self.alpha < 0:
            raise Invalid(f"alpha must be >= 0, got {self.alpha}")
        if not 1 <= self.group_size <= self.n_features:
            raise Invalid(f"group_size must be in 1..n_features, got {self.group_size}")
        if not 0 <= self.rho < 1:
            raise Invalid(f"rho must be in [0, 1), got {self.rho}")
        if not 0 < self.mag_low <= self.mag_high:
            raise Invalid("need 0 < mag_low <= mag_high")
        if self.noise_std < 0 or self.offset_norm < 0:
            raise Invalid("noise_std and offset_norm must be >= 0")
        if self.n_tokens < 1:
            raise Invalid("n_tokens must be positive")

    def firing_probabilities(self) -> Tensor:
        """``p [n_features]``: power law scaled to ``mean_l0`` (capped at 1, the excess spread over the rest)."""
        w = torch.arange(1, self.n_features + 1, dtype=torch.float64).pow(-self.alpha)
        p = w * (self.mean_l0 / w.sum())
        for _ in range(self.n_features):  # water-filling when a probability would exceed 1
            over = p > 1
            if not over.any():
                break
            p[over] = 1.0
            free = ~over
            p[free] *= (self.mean_l0 - over.sum()) / p[free].sum()
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SyntheticData(NamedTuple):
    x: Tensor
    """Activations ``[n_tokens d_in]`` float32."""
    features: Tensor
    """True unit directions ``[n_features d_in]``."""
    codes: Tensor
    """True magnitudes ``[n_tokens n_features]`` (0 where a feature is off), float32."""
    probabilities: Tensor
    """Firing probability of each feature ``[n_features]``."""
    offset: Tensor
    """Constant offset ``[d_in]``."""


_SEED_SALT = 0x5EED_DA7A
"""Mixed into the generator seed so planted features never coincide with an SAE initialised from the same
small integer seed (both draw ``randn(n, d)`` first)."""


def generate(cfg: SyntheticConfig) -> SyntheticData:
    g = torch.Generator().manual_seed(_SEED_SALT + 7919 * cfg.seed)
    f = torch.randn(cfg.n_features, cfg.d_in, generator=g)
    f /= f.norm(dim=1, keepdim=True)
    offset = torch.randn(cfg.d_in, generator=g)
    offset *= cfg.offset_norm / offset.norm().clamp_min(1e-12)
    p = cfg.firing_probabilities()
    thresholds = torch.from_numpy(_normal_quantile(1 - p.numpy())).float()  # fire when z > threshold
    n_groups = math.ceil(cfg.n_features / cfg.group_size)
    group_of = torch.arange(cfg.n_features) // cfg.group_size
    codes = torch.empty(cfg.n_tokens, cfg.n_features)
    x = torch.empty(cfg.n_tokens, cfg.d_in)
    for s in range(0, cfg.n_tokens, 16_384):
        n = min(16_384, cfg.n_tokens - s)
        shared = torch.randn(n, n_groups, generator=g)[:, group_of]
        z = math.sqrt(cfg.rho) * shared + math.sqrt(1 - cfg.rho) * torch.randn(n, cfg.n_features, generator=g)
        mags = torch.empty(n, cfg.n_features).uniform_(cfg.mag_low, cfg.mag_high, generator=g)
        c = mags * (z > thresholds)
        codes[s: s + n] = c
        x[s: s + n] = c @ f + offset + cfg.noise_std * torch.randn(n, cfg.d_in, generator=g)
    return SyntheticData(x, f, codes, p.float(), offset)


def _normal_quantile(q: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(np.clip(q, 1e-12, 1 - 1e-12))


class FeatureMatch(NamedTuple):
    mcc: float
    """Mean matched cosine over the true features (Hungarian assignment)."""
    mmcs: float
    """Mean over true features of the best cosine with any learned direction (no one-to-one constraint)."""
    precision: float
    """Live latents within ``threshold`` of some true feature / live latents."""
    recall: float
    """True features whose matched latent is within ``threshold`` / true features."""
    f1: float
    threshold: float
    """Matched cosine at which a true feature counts as recovered."""
    matched_cos: Tensor
    """Matched cosine of each true feature ``[n_features]`` (0 when unmatched)."""
    assignment: Tensor
    """Learned latent matched to each true feature ``[n_features]`` (-1 when unmatched)."""


def match_features(true_dirs: Tensor, learned: Tensor, threshold: float = RECOVERY_THRESHOLD,
                   live: Tensor | None = None) -> FeatureMatch:
    """Match learned directions ``[d_sae d_in]`` to true ones ``[n_true d_in]`` one-to-one (see module doc).
    ``live [d_sae]`` (bool) marks the latents that fire, for precision."""
    from scipy.optimize import linear_sum_assignment

    if true_dirs.ndim != 2 or learned.ndim != 2 or true_dirs.shape[1] != learned.shape[1]:
        raise Invalid(f"need [n_true d] and [d_sae d] with the same d, got {tuple(true_dirs.shape)} "
                      f"and {tuple(learned.shape)}")
    t = true_dirs.detach().double().cpu()
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    s = learned.detach().double().cpu()
    s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (t @ s.T).numpy()  # [n_true d_sae]
    rows, cols = linear_sum_assignment(cos, maximize=True)
    matched = torch.zeros(t.shape[0], dtype=torch.float64)
    assign = torch.full((t.shape[0],), -1, dtype=torch.long)
    matched[torch.from_numpy(rows)] = torch.from_numpy(cos[rows, cols])
    assign[torch.from_numpy(rows)] = torch.from_numpy(cols).long()
    recall = float((matched >= threshold).double().mean())
    live_mask = torch.ones(s.shape[0], dtype=torch.bool) if live is None else live.detach().cpu().bool()
    if live_mask.shape != (s.shape[0],):
        raise Invalid(f"live must be [d_sae] = [{s.shape[0]}], got {tuple(live_mask.shape)}")
    best = torch.from_numpy(cos.max(0))  # [d_sae] best cosine of each latent with any true feature
    n_live = int(live_mask.sum())
    precision = float((best[live_mask] >= threshold).sum()) / n_live if n_live else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return FeatureMatch(float(matched.mean()), float(cos.max(1).mean()), precision, recall, f1, threshold,
                        matched.float(), assign)
