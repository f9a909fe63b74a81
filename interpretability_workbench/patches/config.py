"""PatchConfig: one edit of the live model along SAE features (a dataclass, validated in __post_init__)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MODES = ("ablate", "scale", "steer", "clamp", "adapter")
"""ablate / scale / steer / clamp act on SAE features; adapter is an imported LoRA adapter (raw deltas)."""
WEIGHT_MODES = ("ablate", "scale", "steer", "adapter")
"""Modes implemented as low-rank weight deltas (exportable as PEFT LoRA adapters)."""
DEFAULT_STRENGTH = {"ablate": 1.0, "scale": 0.0, "steer": 4.0, "clamp": 0.0, "adapter": 1.0}


@dataclass
class PatchConfig:
    id: str
    """Patch id (``patch_<hex>``)."""
    name: str
    """Human-readable name."""
    mode: str
    """ablate | scale | steer | clamp | adapter."""
    features: list[int] = field(default_factory=list)
    """SAE latent indices the patch acts on (empty for adapters). A group of any size is one patch in every
    mode: ablate/scale project onto the span of all the features' decoder rows (one delta per residual writer
    of rank dim span ≤ d_model, see ``lora.py``), steer adds their sum, clamp holds each of them."""
    sae_id: str | None = None
    """SAE whose decoder/encoder define the edit (None for imported adapters)."""
    strength: float = 1.0
    """ablate: fraction removed (1 = full projection); scale: factor s on the component along the features;
    steer: α added as α·W_dec[f] (summed over features); clamp: value v the activations are held at;
    adapter: multiplier on the imported deltas (1 = as imported). Steer and clamp read it in
    ``strength_unit``: the edit uses ``absolute_strength``."""
    enabled: bool = True
    """Whether the patch acts on the live model."""
    model_id: str = ""
    """Base model the patch was made for; it is applied only when this model is loaded."""
    hook_name: str = ""
    """SAE hook (``blocks.L.hook_resid_post``); for adapters empty."""
    rank: int = 0
    """Rank of the weight deltas (number of orthonormal directions: at most the number of features and
    d_model; 1 for steer; 0 for clamp)."""
    target_modules: list[str] = field(default_factory=list)
    """Module paths the patch wraps (filled when it is applied)."""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (origin of an imported adapter, where a patch was made: ``origin``, ...)."""
    strength_unit: str = "absolute"
    """'absolute' (``strength`` as above) or 'typical_activation' (steer and clamp: ``strength`` counts
    ``unit_scale``s, see ``patches/units.py``)."""
    unit_scale: float = 1.0
    """Absolute strength of one unit: the features' mean activation when active (or, before an analysis, the
    residual norm over the decoder norm), fixed at creation; 1 for 'absolute'."""
    unit_source: str = ""
    """Where ``unit_scale`` came from: 'analysis', 'residual_norm', or '' for absolute units."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES[:4])}, got {self.mode!r}")
        self.features = [int(f) for f in self.features]
        if self.mode != "adapter":
            if not self.features:
                raise ValueError("give at least one feature index")
            if len(set(self.features)) != len(self.features):
                raise ValueError("feature indices must be distinct")
            if any(f < 0 for f in self.features):
                raise ValueError("feature indices must be >= 0")
            if not self.sae_id:
                raise ValueError(f"{self.mode} patches need an sae_id")
        self.strength = float(self.strength)
        if self.strength != self.strength or abs(self.strength) == float("inf"):
            raise ValueError("strength must be a finite number")
        if self.strength_unit not in ("absolute", "typical_activation"):
            raise ValueError(f"strength_unit must be 'absolute' or 'typical_activation', got {self.strength_unit!r}")
        if self.strength_unit != "absolute" and self.mode not in ("steer", "clamp"):
            raise ValueError(f"{self.mode} strengths are fractions or factors; only steer and clamp take "
                             "strength_unit='typical_activation'")
        self.unit_scale = float(self.unit_scale)
        if not (self.unit_scale > 0 and self.unit_scale != float("inf")):
            raise ValueError("unit_scale must be a positive finite number")

    @property
    def absolute_strength(self) -> float:
        """The strength the edit applies: ``strength × unit_scale`` in typical-activation units."""
        return self.strength * self.unit_scale if self.strength_unit == "typical_activation" else self.strength

    @property
    def is_weight_delta(self) -> bool:
        return self.mode in WEIGHT_MODES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatchConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
