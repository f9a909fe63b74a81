"""Wire schemas for /api/training."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class TrainingRequest(BaseModel):
    """What to train. Name the hook(s) one of three ways: ``hook_name``, ``layer`` + ``hook``, or ``layers`` + ``hook``
    (one SAE per layer, all fed from one forward per batch)."""

    hook_name: str | None = Field(None, max_length=100, description="Canonical hook name, e.g. blocks.6.hook_resid_post.")
    layer: int | None = Field(None, ge=0, le=1000, description="Block index (with `hook`).")
    layers: list[int] | None = Field(None, min_length=1, max_length=64, description="Several block indices: one SAE each, one forward per batch.")
    hook: Literal["resid_pre", "resid_post", "mlp_out", "attn_out"] = Field("resid_post", description="Hook kind for `layer`/`layers`.")
    architecture: Literal["topk", "standard", "batchtopk"] = Field("topk", description="topk (sparse kernels + AuxK), standard (ReLU + L1) or batchtopk.")
    d_sae: int = Field(4608, ge=1, le=1 << 20, description="Latents per SAE.")
    k: int = Field(32, ge=1, le=4096, description="Active latents per token (topk, batchtopk).")
    l1_coefficient: float = Field(5.0, ge=0, le=1e4, description="L1 weight (standard).")
    lr: float | None = Field(None, gt=0, le=1.0, description="Adam learning rate; null picks 2e-4/sqrt(d_sae/2^14).")
    total_tokens: int = Field(200_000, ge=1, le=10_000_000_000, description="Training tokens (position 0 excluded).")
    batch_size: int = Field(4096, ge=1, le=1 << 20, description="Activations per optimiser step (the global batch; with several processes each takes an equal share).")
    context_size: int = Field(128, ge=2, le=8192, description="Tokens per context.")
    corpus: str = Field("default", max_length=100, description="Corpus id (GET /api/corpora); 'default' = built-in.")
    checkpoint_every: int = Field(50, ge=0, le=10_000_000, description="Steps between checkpoints (0: at the end only).")
    normalize: bool = Field(True, description="Scale inputs to mean norm sqrt(d_in); the scale is stored (and folded on export).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed.")
    eval_tokens: int = Field(16_384, ge=1, le=10_000_000, description="Held-out tokens for the final FVU / L0 / density.")
    ce_eval_contexts: int = Field(8, ge=0, le=1024, description="Held-out contexts for CE-loss recovered and KL (0 skips).")
    devices: int | str = Field(1, description="Lightning Trainer devices. The server trains in one process: more than one device answers 422; use `microscope train --devices N --strategy ddp` for multi-process DDP.")
    accelerator: str = Field("auto", max_length=20, description="Lightning accelerator: auto, cpu, gpu.")
    strategy: str = Field("auto", max_length=40, description="Lightning strategy. Multi-process strategies (ddp, fsdp, deepspeed) answer 422 here; run them with `microscope train`.")
    num_nodes: int = Field(1, ge=1, le=1024, description="Lightning num_nodes; more than 1 answers 422 here (use `microscope train --num-nodes`).")
    precision: str = Field("32-true", max_length=20, description="Lightning precision: 32-true, bf16-mixed, ...")
    lr_finder: bool = Field(False, description="Run Lightning's LR finder first and train with its suggestion.")
    analyze: bool = Field(True, description="Start feature analysis of the new SAEs when training succeeds.")

    @model_validator(mode="after")
    def _one_hook_spec(self) -> "TrainingRequest":
        given = sum(x is not None for x in (self.hook_name, self.layer, self.layers))
        if given != 1:
            raise ValueError("give exactly one of hook_name, layer or layers")
        return self


class TrainingStarted(BaseModel):
    run_id: str = Field(description="Id of the new or resumed run; progress arrives on WS /ws as training_progress.")
    status: str = Field(description="Run status right after the request (queued).")


class MetricPoint(BaseModel):
    step: int = Field(description="Optimiser step.")
    tokens: int = Field(description="Training tokens seen at that step.")
    data: dict[str, Any] = Field(description="mse, fvu, l0, dead_fraction, tokens_per_s, eta_s, lr, peak_memory_bytes, ...")


class RunSummary(BaseModel):
    id: str = Field(description="Run id.")
    model_id: str = Field(description="Base model the run trains on.")
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"] = Field(description="Run status.")
    hook_names: list[str] = Field(description="Hooks trained (one SAE each).")
    architecture: str = Field(description="SAE architecture.")
    step: int = Field(description="Last recorded step.")
    tokens_seen: int = Field(description="Training tokens seen so far.")
    total_tokens: int = Field(description="Token budget.")
    created_at: float = Field(description="Unix time the run was created.")
    updated_at: float = Field(description="Unix time of the last update.")
    error: str | None = Field(None, description="Why the run failed.")
    sae_ids: list[str] = Field(default_factory=list, description="SAEs produced (when done).")


class RunDetail(RunSummary):
    config: dict[str, Any] = Field(description="Full training config.")
    metrics: dict[str, Any] | None = Field(None, description="Final metrics (done): held_out_fvu, explained_variance, l0, dead_fraction, density_histogram, ce_loss_recovered, kl_with_sae, peak_memory_bytes, per_hook.")
    latest: dict[str, Any] | None = Field(None, description="Latest live metrics (the last history point).")
    history: list[MetricPoint] = Field(default_factory=list, description="Metric history (thinned to at most 2000 points).")
    checkpoint_path: str | None = Field(None, description="Folder of the last checkpoint (resume continues from it).")
