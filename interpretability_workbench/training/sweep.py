"""Sweeps: one run trains a grid of SAEs (members) from one model forward per batch.

A ``SweepSpec`` lists values per axis (architectures, widths, k, L1 coefficients); a run's members are
every hook crossed with that grid (``members``): for topk/batchtopk members the k axis varies, for standard
members the L1 axis. Every member is initialised with the run's seed and sees the same batches in the same
order, so it ends identical (within fp32 tolerance) to the SAE its ``solo_overrides`` train alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ARCHITECTURES = ("topk", "standard", "batchtopk")
MAX_MEMBERS = 64


def default_lr(d_sae: int) -> float:
    """2e-4 / sqrt(d_sae / 2^14) (sparsify's scaling law)."""
    return 2e-4 / (d_sae / 2 ** 14) ** 0.5


@dataclass
class SweepSpec:
    """The grid: each axis left None takes the run's own single value."""

    architectures: list[str] | None = None
    """SAE architectures: topk, standard, batchtopk."""
    d_sae: list[int] | None = None
    """Latents per SAE."""
    k: list[int] | None = None
    """Active latents per token (topk, batchtopk members)."""
    l1_coefficient: list[float] | None = None
    """L1 weights (standard members)."""

    def __post_init__(self) -> None:
        for name in ("architectures", "d_sae", "k", "l1_coefficient"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, list) or not v:
                raise ValueError(f"sweep.{name} must be a non-empty list (or left out)")
            if len(set(v)) != len(v):
                raise ValueError(f"sweep.{name} lists a value twice: {v}")
        for a in self.architectures or []:
            if a not in ARCHITECTURES:
                raise ValueError(f"sweep.architectures: {a!r} is not one of {', '.join(ARCHITECTURES)}")
        if any(not isinstance(d, int) or d <= 0 for d in self.d_sae or []):
            raise ValueError("sweep.d_sae values must be positive integers")
        if any(not isinstance(k, int) or k <= 0 for k in self.k or []):
            raise ValueError("sweep.k values must be positive integers")
        if any(x < 0 for x in self.l1_coefficient or []):
            raise ValueError("sweep.l1_coefficient values must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | SweepSpec | None) -> SweepSpec | None:
        if d is None or isinstance(d, SweepSpec):
            return d
        return cls(**{k: (list(v) if v is not None else None) for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class MemberSpec:
    """One SAE of a run."""

    index: int
    """Position in the run (order of ``members``: hooks, then architectures, widths, k / L1)."""
    hook_name: str
    hook_index: int
    """Position of the hook among the run's hooks (its columns in a batch)."""
    architecture: str
    d_sae: int
    k: int
    l1_coefficient: float
    lr: float
    """Adam learning rate of this member (the run's, else ``default_lr(d_sae)``)."""

    @property
    def label(self) -> str:
        knob = f"l1={self.l1_coefficient:g}" if self.architecture == "standard" else f"k={self.k}"
        return f"{self.architecture} {self.hook_name} d_sae={self.d_sae} {knob}"

    def solo_overrides(self) -> dict[str, Any]:
        """TrainingConfig fields that train this member alone (with the run's other fields)."""
        return {"hook_names": [self.hook_name], "architecture": self.architecture, "d_sae": self.d_sae,
                "k": self.k, "l1_coefficient": self.l1_coefficient, "sweep": None}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def members(hook_names: list[str], architecture: str, d_sae: int, k: int, l1_coefficient: float, lr: float | None,
            sweep: SweepSpec | None) -> list[MemberSpec]:
    """Every (hook, architecture, d_sae, k or L1) of a run, in a fixed order; raises ValueError for a
    member whose k exceeds its width, or more than ``MAX_MEMBERS`` members."""
    s = sweep or SweepSpec()
    out: list[MemberSpec] = []
    for hi, h in enumerate(hook_names):
        for arch in s.architectures or [architecture]:
            for d in s.d_sae or [d_sae]:
                ks = (s.k or [k]) if arch != "standard" else [min(k, d)]
                l1s = (s.l1_coefficient or [l1_coefficient]) if arch == "standard" else [l1_coefficient]
                for kk in ks:
                    for l1 in l1s:
                        if arch != "standard" and not 0 < kk <= d:
                            raise ValueError(f"a {arch} member needs 0 < k <= d_sae (got k={kk}, d_sae={d})")
                        out.append(MemberSpec(len(out), h, hi, arch, d, kk, float(l1),
                                              lr if lr is not None else default_lr(d)))
    if len(out) > MAX_MEMBERS:
        raise ValueError(f"the run has {len(out)} SAEs (hooks x grid); at most {MAX_MEMBERS}: "
                         "split the sweep into several runs")
    return out


def legacy_members(metrics: dict[str, Any] | None, config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The members of a run's final metrics, also for runs recorded before sweeps (``per_hook`` entries,
    completed with the run's architecture, width and k from its ``config``)."""
    if not metrics:
        return []
    if "members" in metrics:
        return list(metrics["members"])
    cfg = config or {}
    fill = {k: cfg.get(k) for k in ("architecture", "d_sae", "k", "l1_coefficient")}
    return [{**fill, "index": i, **p} for i, p in enumerate(metrics.get("per_hook") or [])]
