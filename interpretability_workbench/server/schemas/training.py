"""Wire schemas for /api/training."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


Architecture = Literal["topk", "standard", "batchtopk"]


class SweepRequest(BaseModel):
    """A grid of SAEs trained at every hook of the run from the same batches (one model forward per batch).
    Each axis left out takes the request's single value; topk/batchtopk members vary k, standard members
    vary l1_coefficient. Every member equals the SAE its configuration trains alone (same seed, same data)."""

    architectures: list[Architecture] | None = Field(None, min_length=1, max_length=3, description="Architectures to train.")
    d_sae: list[int] | None = Field(None, min_length=1, max_length=16, description="Widths (latents per SAE).")
    k: list[int] | None = Field(None, min_length=1, max_length=16, description="Active latents per token (topk, batchtopk members).")
    l1_coefficient: list[float] | None = Field(None, min_length=1, max_length=16, description="L1 weights (standard members).")

    @model_validator(mode="after")
    def _ranges(self) -> "SweepRequest":
        if any(not 1 <= d <= 1 << 20 for d in self.d_sae or []) or any(not 1 <= k <= 4096 for k in self.k or []):
            raise ValueError("sweep widths must be in 1..1048576 and k in 1..4096")
        if any(not 0 <= x <= 1e4 for x in self.l1_coefficient or []):
            raise ValueError("sweep l1_coefficient values must be in 0..10000")
        return self


class TrainingRequest(BaseModel):
    """What to train. Name the hook(s) one of three ways: ``hook_name``, ``layer`` + ``hook``, or ``layers`` + ``hook``
    (one SAE per layer, all fed from one forward per batch); ``sweep`` trains a grid of SAEs at each of them."""

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
    model_batch_size: int = Field(32, ge=1, le=4096, description="Contexts per model forward.")
    buffer_tokens: int = Field(65_536, ge=1, le=1 << 26, description="Activations per shuffle block (read, permuted and served before the next block; memory grows with it).")
    corpus: str = Field("default", max_length=100, description="Corpus id (GET /api/corpora); 'default' = built-in.")
    epochs: int | None = Field(None, ge=1, le=1000, description="Passes over the corpus allowed when it is shorter than the budget: 1 never repeats data (422 up front when the counted corpus is too short), k allows k passes, null repeats as needed (the run reports its passes and notes it at start).")
    sweep: SweepRequest | None = Field(None, description="Train a grid of SAEs per hook from the same batches; null: one SAE per hook.")
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
    grad_clip_norm: float | None = Field(1.0, gt=0, le=1e6, description="Clip each SAE's global gradient norm at this value, measured on the loss in SAELens's units (squared error summed over d_in, averaged over tokens; 1.0 = SAELens's clip); per SAE, so sweep members never affect each other; null: no clipping.")
    aux_k_on: Literal["raw", "post_relu"] = Field("raw", description="AuxK (topk) on the dead latents' raw pre-activations ('raw', as SAELens) or on their ReLU ('post_relu', as sparsify).")
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
    notes: list[str] = Field(default_factory=list, description="What to know before it runs, e.g. that the corpus is shorter than the budget and will be repeated.")


class MetricPoint(BaseModel):
    step: int = Field(description="Optimiser step.")
    tokens: int = Field(description="Training tokens seen at that step.")
    data: dict[str, Any] = Field(description="members (per SAE: index, hook_name, architecture, d_sae, k, l1_coefficient, mse, fvu, l0, aux, dead_fraction, lr), their aggregate mse/fvu/l0/dead_fraction by the rule in `aggregate` (mean_over_members), tokens_per_s, passes, peak_memory_bytes, world_size.")


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
    n_members: int = Field(1, description="SAEs the run trains (hooks x sweep grid).")


class MemberResult(BaseModel):
    """One SAE of a finished run: what it is and its final metrics (one point of an L0 vs FVU / CE-loss chart)."""

    index: int = Field(description="Position in the run (hooks, then architectures, widths, k / L1).")
    hook_name: str = Field(description="Hook the SAE reads.")
    architecture: str = Field(description="topk, standard or batchtopk.")
    d_sae: int = Field(description="Latents.")
    k: int | None = Field(None, description="Active latents per token (topk, batchtopk).")
    l1_coefficient: float | None = Field(None, description="L1 weight (standard).")
    lr: float | None = Field(None, description="Learning rate it trained with (before warm-up/decay).")
    label: str | None = Field(None, description="Short description, e.g. 'topk blocks.6.hook_resid_post d_sae=4608 k=32'.")
    sae_id: str | None = Field(None, description="The registered SAE (GET /api/saes/{sae_id}; null if it was deleted before the run finished registering).")
    held_out_fvu: float = Field(description="Fraction of variance unexplained on the held-out tokens.")
    explained_variance: float = Field(description="1 - held_out_fvu.")
    held_out_mse: float | None = Field(None, description="Mean squared error per element on the held-out tokens.")
    l0: float = Field(description="Mean active latents per held-out token.")
    held_out_tokens: int | None = Field(None, description="Held-out tokens measured.")
    dead_fraction: float = Field(description="Latents that had not fired in the dead window at the end of training.")
    held_out_dead_fraction: float | None = Field(None, description="Latents that never fired on the held-out tokens.")
    ce_clean: float | None = Field(None, description="Next-token CE loss of the clean model on the CE contexts.")
    ce_zero_ablation: float | None = Field(None, description="CE loss with the hook zero-ablated.")
    ce_with_sae: float | None = Field(None, description="CE loss with the SAE's reconstruction spliced in.")
    ce_loss_recovered: float | None = Field(None, description="(zero - sae) / (zero - clean); null when CE evaluation was skipped.")
    kl_with_sae: float | None = Field(None, description="Mean KL(clean || with SAE) per predicted token.")
    kl_zero_ablation: float | None = Field(None, description="Mean KL(clean || zero-ablated).")
    density_histogram: dict[str, list[float]] | None = Field(None, description="Histogram of log10 latent density on the held-out tokens: log10_density_edges, counts.")


class RunDetail(RunSummary):
    config: dict[str, Any] = Field(description="Full training config.")
    members: list[MemberResult] = Field(default_factory=list, description="Final metrics of every SAE of the run (done); nothing is aggregated across SAEs.")
    train_tokens: int | None = Field(None, description="Activations trained on (done; all processes).")
    held_out_tokens: int | None = Field(None, description="Held-out activations the metrics were measured on (done).")
    passes: int | None = Field(None, description="Passes over the training data the run started (done; 1: no data repeated).")
    notes: list[str] = Field(default_factory=list, description="What the run was told at start (e.g. that it repeats its corpus).")
    metrics: dict[str, Any] | None = Field(None, description="Run-level final facts (done): train_tokens, requested_tokens, held_out_tokens, held_out_contexts, passes, epochs, steps, world_size, peak_memory_bytes, train_contexts, contexts_digest (order-independent digest of the training contexts), notes, sae_ids, members.")
    latest: dict[str, Any] | None = Field(None, description="Latest live metrics (the last history point).")
    history: list[MetricPoint] = Field(default_factory=list, description="Metric history (thinned to at most 2000 points).")
    checkpoint_path: str | None = Field(None, description="Folder of the last checkpoint (resume continues from it).")
