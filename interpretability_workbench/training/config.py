"""TrainingConfig: everything one SAE training run needs, model-independent (validated in __post_init__)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..model.hook_names import parse_hook_name
from .objectives import AUX_K_ON
from .sweep import ARCHITECTURES as TRAINABLE
from .sweep import MemberSpec, SweepSpec, default_lr, members


RECORDED_BEFORE: dict[str, Any] = {"grad_clip_norm": None, "aux_k_on": "post_relu"}
"""How runs recorded before these fields existed were trained (no clipping, AuxK on the ReLU)."""


@dataclass
class TrainingConfig:
    hook_names: list[str]
    """Canonical hook names; one SAE each (or one per ``sweep`` grid point), all fed from one forward per batch."""
    architecture: str = "topk"
    """topk (default, sparse kernels + AuxK), standard (ReLU + L1) or batchtopk."""
    d_sae: int = 4608
    """Latents per SAE."""
    k: int = 32
    """Active latents per token (topk, batchtopk: average per token)."""
    l1_coefficient: float = 5.0
    """L1 weight for standard SAEs (warmed up over the first ``l1_warmup_fraction`` of steps)."""
    l1_warmup_fraction: float = 0.05
    lr: float | None = None
    """Adam learning rate; None picks 2e-4 / sqrt(d_sae / 2^14) (sparsify's scaling law)."""
    warmup_fraction: float = 0.05
    """Linear warm-up over this fraction of steps."""
    decay_fraction: float = 0.2
    """Linear decay to zero over the last fraction of steps."""
    total_tokens: int = 200_000
    """Training tokens (position 0 of each context excluded)."""
    batch_size: int = 4096
    """Activations per optimiser step: the global batch. With several processes (DDP) each takes
    ``batch_size / world_size`` per step, so steps = total_tokens / batch_size whatever the device count."""
    context_size: int = 128
    """Tokens per context."""
    model_batch_size: int = 32
    """Contexts per model forward."""
    buffer_tokens: int = 65_536
    """Activations per shuffle block: this many (rounded up to whole contexts) are read, permuted and served
    before the next block is read (all processes together)."""
    corpus: str = "default"
    """Corpus id ('default' = built-in)."""
    trace_dir: str | None = None
    """Train from a recorded Parquet trace folder instead of running the model (single hook; held-out
    metrics still run the model on the corpus's held-out slice)."""
    epochs: int | None = None
    """Passes over the training documents allowed when the corpus is shorter than the budget: 1 never
    repeats data (a known-short corpus is refused before the run starts, otherwise the run fails when the
    corpus ends); k allows k passes; None repeats as often as needed. Runs report the passes made."""
    eval_tokens: int = 16_384
    """Held-out tokens for FVU / L0 / density at the end (from a slice at the start of the corpus that is
    never trained on)."""
    ce_eval_contexts: int = 8
    """Held-out contexts for CE-loss recovered and KL (full forwards: keep small on CPU)."""
    sweep: SweepSpec | None = None
    """Train a grid of SAEs per hook from the same batches (widths, k, architectures, L1); None: one SAE
    per hook with the fields above."""
    checkpoint_every: int = 50
    """Steps between checkpoints (0: only at the end of the run)."""
    normalize: bool = True
    """Scale inputs to mean norm sqrt(d_in) (scale stored in the SAE's cfg.norm_scale)."""
    b_dec_init: str = "geometric_median"
    """geometric_median, mean or zeros."""
    aux_k: int | None = None
    """AuxK dead latents per token (topk); None = d_in // 2."""
    aux_k_coefficient: float = 1 / 32
    aux_k_on: str = "raw"
    """AuxK (topk) on the dead latents' raw pre-activations ('raw', as SAELens: a dead latent below zero
    still learns) or on their ReLU ('post_relu', as sparsify)."""
    grad_clip_norm: float | None = 1.0
    """Clip each SAE's global gradient norm at this value (None: no clipping), measured on the loss in
    SAELens's units (squared error summed over d_in, averaged over tokens), so 1.0 is SAELens's hard-coded
    clip. Applied per SAE: sweep members never change each other's step."""
    dead_after_tokens: int = 100_000
    """A latent is dead when it has not fired in this many training tokens."""
    progress_interval_s: float = 0.5
    """Seconds between training_progress events (a heartbeat keeps them flowing while the buffer fills)."""
    seed: int = 0
    devices: int | str = 1
    """Lightning Trainer devices. More than one process (or a ddp strategy) is a CLI feature:
    ``microscope train --devices N --strategy ddp`` (see training/ddp.py); the server refuses it."""
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    """Lightning precision ('32-true', 'bf16-mixed', ...). The sparse kernels always compute in fp32."""
    lr_finder: bool = False
    """Run Lightning's LR finder before training and use its suggestion."""
    analyze: bool = True
    """Start feature analysis after a successful run (when that service exists)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.hook_names, str):
            self.hook_names = [self.hook_names]
        if not self.hook_names:
            raise ValueError("give at least one hook name (or a layer and a hook kind)")
        self.hook_names = list(dict.fromkeys(self.hook_names))
        for h in self.hook_names:
            parse_hook_name(h)
        if self.trace_dir and len(self.hook_names) != 1:
            raise ValueError("a trace holds one hook: train several hooks from the model stream instead")
        if self.architecture not in TRAINABLE:
            raise ValueError(f"architecture must be one of {', '.join(TRAINABLE)} for training, got {self.architecture!r}")
        if self.d_sae <= 0 or not (0 < self.k <= self.d_sae):
            raise ValueError(f"need d_sae > 0 and 0 < k <= d_sae (got d_sae={self.d_sae}, k={self.k})")
        self.sweep = SweepSpec.from_dict(self.sweep)  # type: ignore[arg-type]
        self.members  # noqa: B018 - validates the grid
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1, or null to repeat the corpus as often as needed")
        if self.batch_size <= 0 or self.total_tokens < self.batch_size:
            raise ValueError(f"total_tokens ({self.total_tokens}) must be at least one batch ({self.batch_size})")
        if self.context_size < 2:
            raise ValueError("context_size must be at least 2")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise ValueError("b_dec_init must be geometric_median, mean or zeros")
        if self.eval_tokens < 1 or self.ce_eval_contexts < 0:
            raise ValueError("eval_tokens must be >= 1 and ce_eval_contexts >= 0")
        if self.aux_k_on not in AUX_K_ON:
            raise ValueError(f"aux_k_on must be one of {', '.join(AUX_K_ON)}, got {self.aux_k_on!r}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0, or null for no clipping (got {self.grad_clip_norm})")
        self.buffer_tokens = max(self.buffer_tokens, self.batch_size)

    @property
    def total_steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.d_sae)

    @property
    def members(self) -> list[MemberSpec]:
        """The SAEs this run trains: every hook crossed with the sweep grid (one per hook without a sweep)."""
        return members(self.hook_names, self.architecture, self.d_sae, self.k, self.l1_coefficient, self.lr,
                       self.sweep)

    @property
    def train_rows(self) -> int:
        """Activation rows the run trains on: whole batches of the budget."""
        return self.total_steps * self.batch_size

    @property
    def held_out_contexts(self) -> int:
        """Size of the held-out slice: enough contexts for ``eval_tokens`` rows and the CE-loss contexts."""
        return max(math.ceil(self.eval_tokens / (self.context_size - 1)), self.ce_eval_contexts)

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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainingConfig":
        """A recorded config; fields it predates take the values it was trained with (``RECORDED_BEFORE``),
        so a resumed run goes on as it began."""
        names = {f.name for f in fields(cls)}
        return cls(**{**RECORDED_BEFORE, **{k: v for k, v in d.items() if k in names}})
