"""SAEConfig: what an SAE is, as a dataclass (validated in __post_init__, to_dict/from_dict)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

ARCHITECTURES = ("topk", "standard", "jumprelu", "batchtopk")


@dataclass
class SAEConfig:
    d_in: int
    """Width of the activations the SAE reads (d_model)."""
    d_sae: int
    """Number of latents (features)."""
    architecture: str = "topk"
    """topk (default), standard (ReLU + L1), jumprelu, or batchtopk (topk over the batch in training,
    a per-latent threshold at inference; saved as jumprelu for SAELens)."""
    k: int | None = 32
    """Active latents per token for topk/batchtopk."""
    l1_coefficient: float = 5.0
    """Sparsity penalty weight for standard and jumprelu."""
    hook_name: str = ""
    """Canonical hook name the SAE was trained on, e.g. blocks.6.hook_resid_post."""
    model_id: str = ""
    """Base model id the activations came from."""
    model_revision: str | None = None
    """Base model revision or content tag."""
    model_class_name: str = ""
    """HF class of the base model."""
    context_size: int = 128
    """Tokens per context during training."""
    dataset_path: str = "default"
    """Corpus the SAE was trained on."""
    normalize_activations: str = "none"
    """'none' or 'expected_average_only_in' (inputs scaled by ``norm_scale`` before encoding)."""
    norm_scale: float = 1.0
    """Input scale for normalised activations (x * norm_scale is encoded; outputs are unscaled)."""
    apply_b_dec_to_input: bool = True
    """Subtract b_dec from the input before encoding (SAELens convention)."""
    exclude_first_position: bool = True
    """Position 0 (attention sink) was excluded from training."""
    dtype: str = "float32"
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (training metrics, run id)."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ValueError("d_in and d_sae must be positive")
        if self.architecture in ("topk", "batchtopk"):
            if not self.k or not (0 < self.k <= self.d_sae):
                raise ValueError(f"k must be in 1..d_sae ({self.d_sae}) for {self.architecture}, got {self.k}")
        if self.normalize_activations not in ("none", "expected_average_only_in"):
            raise ValueError("normalize_activations must be 'none' or 'expected_average_only_in'")

    @property
    def layer(self) -> int:
        from ..model.hook_names import parse_hook_name

        return parse_hook_name(self.hook_name).layer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SAEConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
