"""Wire schemas of /api/transcoders."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


class TranscoderTrainRequest(BaseModel):
    """Train one transcoder per layer (reads the MLP input after its norm, predicts the MLP output), all from one
    forward per batch. Name the layers with ``layers`` or ``all: true``."""

    layers: list[int] | None = Field(None, min_length=1, max_length=256, description="Blocks whose MLPs get a transcoder.")
    all: bool = Field(False, description="Every layer of the loaded model (instead of `layers`).")
    d_tc: int = Field(2304, ge=1, le=1 << 20, description="Latents per transcoder.")
    architecture: Literal["topk", "jumprelu"] = Field("topk", description="topk (k largest, sparse kernels + AuxK) or jumprelu (thresholds + L0 penalty; exports to circuit-tracer).")
    k: int = Field(32, ge=1, le=4096, description="Active latents per token (topk); the starting sparsity of jumprelu.")
    skip: bool = Field(True, description="Skip transcoders: add a linear term x·W_skip.")
    l0_coefficient: float = Field(2e-3, ge=0, le=100, description="L0 penalty weight (jumprelu).")
    total_tokens: int = Field(200_000, ge=1, le=10_000_000_000, description="Training tokens (position 0 excluded).")
    batch_size: int = Field(1024, ge=1, le=1 << 20, description="Tokens per optimiser step.")
    context_size: int = Field(128, ge=2, le=8192, description="Tokens per context.")
    model_batch_size: int = Field(8, ge=1, le=1024, description="Contexts per model forward.")
    lr: float | None = Field(None, gt=0, le=1.0, description="Adam learning rate; null picks 8e-4/sqrt(d_tc/4096).")
    corpus: str = Field("default", max_length=100, description="Corpus id (GET /api/corpora); 'default' = built-in.")
    eval_contexts: int = Field(16, ge=1, le=4096, description="Held-out contexts for the final FVU and CE-loss recovered.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed.")
    name: str | None = Field(None, max_length=200, description="Name of the transcoder set.")
    analyze: bool = Field(False, description="Analyse every transcoder's features afterwards (top contexts, logit effects).")

    @model_validator(mode="after")
    def _layers_or_all(self) -> "TranscoderTrainRequest":
        if (self.layers is None) == (not self.all):
            raise ValueError("give exactly one of layers or all: true")
        return self


class TranscoderTrainStarted(BaseModel):
    run_id: str = Field(description="Run id; progress arrives on WS /ws as training_progress, then training_done.")
    status: str = Field(description="Run status right after the request (queued).")


class TranscoderMember(BaseModel):
    sae_id: str = Field(description="SAE-registry id of this layer's transcoder (its features open like any SAE's).")
    layer: int = Field(description="Block whose MLP it replaces.")
    hook_name: str = Field(description="What it reads: blocks.L.ln2.hook_normalized.")
    d_tc: int = Field(description="Latents.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="held_out_fvu, l0, dead_fraction, ...")


class TranscoderSet(BaseModel):
    id: str = Field(description="Transcoder set id.")
    name: str = Field(description="Display name.")
    model_id: str = Field(description="Base model the transcoders read.")
    scan: str = Field(description="Set identifier for graph viewers (circuit-tracer's scan).")
    layers: list[int] = Field(description="Layers that have a transcoder.")
    architecture: str = Field(description="topk, jumprelu or relu.")
    d_tc: int = Field(description="Latents per transcoder.")
    skip: bool = Field(description="Whether the transcoders have a linear skip term.")
    source: str = Field(description="trained or imported.")
    run_id: str | None = Field(None, description="Training run that produced it.")
    created_at: float = Field(description="Unix time it was registered.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="held_out_fvu (mean), ce_loss_recovered (every MLP replaced), per_layer, ...")


class TranscoderSetDetail(TranscoderSet):
    members: list[TranscoderMember] = Field(description="One transcoder per layer.")


class TranscoderRun(BaseModel):
    id: str = Field(description="Run id.")
    model_id: str = Field(description="Base model.")
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"] = Field(description="Run status.")
    step: int = Field(description="Last recorded step.")
    tokens_seen: int = Field(description="Training tokens seen so far.")
    total_tokens: int = Field(description="Token budget.")
    config: dict[str, Any] = Field(description="The run's config (kind: transcoders).")
    metrics: dict[str, Any] | None = Field(None, description="Final metrics (done), with set_id.")
    error: str | None = Field(None, description="Why the run failed.")
    created_at: float = Field(description="Unix time the run was created.")
    updated_at: float = Field(description="Unix time of the last update.")
