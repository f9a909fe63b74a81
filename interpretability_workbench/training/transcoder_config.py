"""TranscoderTrainingConfig: one run that trains a transcoder per layer (all from one forward per batch).

Stored in the ``runs`` table with ``kind: "transcoders"`` beside SAE runs; ``hook_names`` lists the MLP
inputs the transcoders read, so run listings show them like an SAE run's hooks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..model.hook_names import MLP_IN, hook_name

KIND = "transcoders"
TRAINABLE = ("topk", "jumprelu")


@dataclass
class TranscoderTrainingConfig:
    layers: list[int]
    """Blocks whose MLPs get a transcoder (one each; all fed from one forward per batch)."""
    d_tc: int = 2304
    """Latents per transcoder."""
    architecture: str = "topk"
    """topk (k largest, sparse kernels + AuxK) or jumprelu (per-latent thresholds + an L0 penalty)."""
    k: int = 32
    """Active latents per token (topk)."""
    skip: bool = True
    """Add a linear skip term ``x @ W_skip`` (skip transcoders): much lower error at the same sparsity."""
    l0_coefficient: float = 2e-3
    """Weight of the L0 penalty (jumprelu)."""
    jumprelu_bandwidth: float = 1e-2
    """Width of the straight-through threshold gradient's kernel (jumprelu)."""
    initial_threshold: float = 0.05
    """Starting threshold of every latent (jumprelu)."""
    total_tokens: int = 200_000
    """Training tokens (position 0 of each context excluded)."""
    batch_size: int = 1024
    """Tokens per optimiser step."""
    context_size: int = 128
    """Tokens per context."""
    model_batch_size: int = 8
    """Contexts per model forward (each yields the MLP input and output of every layer)."""
    buffer_tokens: int = 4096
    """Tokens mixed before batches are cut (contexts are also visited in a shuffled order). Memory:
    buffer_tokens x layers x 2 x d_model floats."""
    lr: float | None = None
    """Adam learning rate; None picks 8e-4 / sqrt(d_tc / 4096)."""
    warmup_fraction: float = 0.05
    """Linear warm-up over this fraction of steps."""
    decay_fraction: float = 0.2
    """Linear decay to zero over the last fraction of steps."""
    aux_k: int | None = None
    """AuxK dead latents per token (topk); None = d_model // 2."""
    aux_k_coefficient: float = 1 / 32
    dead_after_tokens: int = 50_000
    """A latent is dead when it has not fired in this many training tokens."""
    corpus: str = "default"
    """Corpus id ('default' = built-in)."""
    eval_contexts: int = 16
    """Held-out contexts (the end of the corpus) for the final FVU and CE-loss-recovered metrics."""
    progress_interval_s: float = 0.5
    """Seconds between training_progress events."""
    seed: int = 0
    name: str | None = None
    """Name of the registered transcoder set (default: architecture, width and layers)."""
    analyze: bool = False
    """Start feature analysis of every trained transcoder afterwards (costly for many layers)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = sorted({int(x) for x in self.layers})
        if not self.layers or self.layers[0] < 0:
            raise ValueError("give at least one layer (>= 0)")
        if self.architecture not in TRAINABLE:
            raise ValueError(f"architecture must be one of {', '.join(TRAINABLE)} for training, got {self.architecture!r}")
        if self.d_tc <= 0 or (self.architecture == "topk" and not 0 < self.k <= self.d_tc):
            raise ValueError(f"need d_tc > 0 and 0 < k <= d_tc (got d_tc={self.d_tc}, k={self.k})")
        if self.batch_size <= 0 or self.total_tokens < self.batch_size:
            raise ValueError(f"total_tokens ({self.total_tokens}) must be at least one batch ({self.batch_size})")
        if self.context_size < 2 or self.model_batch_size < 1 or self.eval_contexts < 1:
            raise ValueError("context_size must be >= 2, model_batch_size and eval_contexts >= 1")
        if self.l0_coefficient < 0 or self.jumprelu_bandwidth <= 0 or self.initial_threshold < 0:
            raise ValueError("l0_coefficient and initial_threshold must be >= 0, jumprelu_bandwidth > 0")
        self.buffer_tokens = max(self.buffer_tokens, self.batch_size)

    @property
    def hook_names(self) -> list[str]:
        """The MLP inputs the transcoders read (``blocks.L.ln2.hook_normalized``)."""
        return [hook_name(layer, MLP_IN) for layer in self.layers]

    @property
    def total_steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else 8e-4 / (self.d_tc / 4096) ** 0.5

    def lr_factor(self, step: int) -> float:
        """Warm-up, constant, then linear decay to 0 (a multiplier of ``learning_rate``)."""
        n = self.total_steps
        warm = max(1, int(n * self.warmup_fraction))
        decay = int(n * self.decay_fraction)
        if step < warm:
            return (step + 1) / warm
        if decay and step >= n - decay:
            return max(0.0, (n - step) / decay)
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        """As stored in the run row: ``kind`` and ``hook_names`` ride along for listings."""
        return {"kind": KIND, "hook_names": self.hook_names, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TranscoderTrainingConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
