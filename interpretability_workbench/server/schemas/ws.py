"""Wire schemas of ``WS /ws``: a discriminated union per direction, on ``type``.

Server -> client: ``hello`` on connect, ``pong`` for ``ping``, ``error`` when a client message is refused
or a live computation fails, ``logits`` from the live-logits worker, and every bus event
(``interpretability_workbench/events.py``; each event dataclass has its twin here and a test keeps them in
step). Client -> server: ``ping``, ``subscribe_logits``, ``set_prompt``, ``set_strength``,
``commit_strength``, ``unsubscribe_logits``. Both unions are listed in the OpenAPI document
(``components.schemas.WsServerMessage`` / ``WsClientMessage``) so the UI's message types are generated
from it like the REST types.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .behaviours import EditWire, SplitMetrics
from .inference import TokenMove, TokenProb

ModelStatus = Literal["none", "loading", "ready", "error"]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Event(_Msg):
    ts: float = Field(description="Unix time the event was made.")


# server -> client ------------------------------------------------------------------------------
class HelloMsg(_Msg):
    type: Literal["hello"] = Field("hello", description="Sent once when the socket opens.")
    model_status: ModelStatus = Field(description="Loading state of the model.")


class PongMsg(_Msg):
    type: Literal["pong"] = Field("pong", description="Answer to a ping.")
    model_status: ModelStatus = Field(description="Loading state of the model.")


class ErrorMsg(_Msg):
    type: Literal["error"] = Field("error", description="A client message was refused or a live computation failed.")
    detail: str = Field(description="What went wrong and what to change.")
    status: int | None = Field(None, description="The HTTP status the same error has over REST.")


class MemberProgressWire(_Msg):
    index: int = Field(description="Position of the SAE in the run (as in the run detail's `members`).")
    hook_name: str = Field(description="Hook the SAE reads.")
    architecture: str = Field(description="topk, standard or batchtopk.")
    d_sae: int = Field(description="Latents.")
    k: int = Field(description="Active latents per token (topk, batchtopk).")
    l1_coefficient: float = Field(description="L1 weight (standard).")
    mse: float | None = Field(None, description="Reconstruction MSE of the last step.")
    fvu: float | None = Field(None, description="Fraction of variance unexplained of the last step.")
    l0: float | None = Field(None, description="Mean active latents per token of the last step.")
    aux: float | None = Field(None, description="AuxK loss (topk) or L1 term (standard) of the last step.")
    dead_fraction: float | None = Field(None, description="Latents that have not fired in the dead window.")
    lr: float | None = Field(None, description="Current learning rate of this SAE.")


TrainingPhase = Literal["starting", "preparing", "filling buffer", "training", "evaluating held-out",
                        "evaluating CE loss", "saving"]


class TrainingProgressMsg(_Event):
    type: Literal["training_progress"] = Field("training_progress", description="A training run's latest snapshot (at least every progress interval, in every phase).")
    run_id: str = Field(description="Run id.")
    total_tokens: int = Field(description="Tokens the run trains (the budget rounded down to whole batches).")
    total_steps: int = Field(description="Optimiser steps of the run.")
    step: int = Field(description="Optimiser step.")
    tokens: int = Field(description="Training tokens consumed so far.")
    tokens_read: int = Field(description="Activations produced by the model (or read from a trace) so far; ahead of tokens by the block being served.")
    passes: int = Field(description="Passes over the training data started so far (1: nothing repeated).")
    phase: TrainingPhase = Field(description="preparing (held-out slice, init sample) -> filling buffer <-> training -> evaluating held-out -> evaluating CE loss -> saving. The buffer is refilled between steps, so filling buffer and training alternate.")
    phase_done: int = Field(description="Units of the current phase done.")
    phase_total: int = Field(description="Units of the current phase (0 when unknown).")
    phase_unit: str = Field(description="What the phase counts: contexts, steps, batches, forwards, SAEs.")
    tokens_per_s: float | None = Field(None, description="Training throughput (buffer fills included).")
    eta_s: float | None = Field(None, description="Estimated seconds left for the whole run (training, evaluation, saving) at the rates measured so far.")
    peak_memory_bytes: int = Field(description="Peak memory (GPU allocated, else process RSS).")
    world_size: int = Field(description="Processes training together (DDP).")
    aggregate: Literal["mean_over_members"] = Field(description="How mse/fvu/l0/dead_fraction below combine the members: their arithmetic mean. Per-SAE numbers are in `members`.")
    mse: float | None = Field(None, description="Aggregate (see `aggregate`) of the members' last-step MSE.")
    fvu: float | None = Field(None, description="Aggregate (see `aggregate`) of the members' last-step FVU.")
    l0: float | None = Field(None, description="Aggregate (see `aggregate`) of the members' last-step L0.")
    dead_fraction: float | None = Field(None, description="Aggregate (see `aggregate`) of the members' dead fractions.")
    members: list[MemberProgressWire] = Field(description="The numbers of each SAE of the run (one per hook, or per hook and sweep grid point).")


class TrainingDoneMsg(_Event):
    type: Literal["training_done"] = Field("training_done", description="A run finished and registered its SAEs.")
    run_id: str = Field(description="Run id.")
    sae_ids: list[str] = Field(description="SAEs produced, one per member.")
    metrics: list[dict[str, Any]] = Field(description="Final metrics per member: index, hook_name, architecture, d_sae, k, l1_coefficient, label, sae_id, held_out_fvu, explained_variance, l0, dead_fraction, ce_loss_recovered, kl_with_sae.")
    train_tokens: int = Field(description="Activations trained on (all processes).")
    held_out_tokens: int = Field(description="Held-out activations the metrics were measured on.")
    passes: int = Field(description="Passes over the training data the run started (1: no data repeated).")


class TrainingFailedMsg(_Event):
    type: Literal["training_failed"] = Field("training_failed", description="A run failed.")
    run_id: str = Field(description="Run id.")
    error: str = Field(description="Why.")


class TrainingCancelledMsg(_Event):
    type: Literal["training_cancelled"] = Field("training_cancelled", description="A run stopped before its budget.")
    run_id: str = Field(description="Run id.")
    step: int = Field(description="Step it stopped at (checkpointed; resumable).")
    tokens: int = Field(description="Training tokens consumed.")
    reason: str = Field(description="cancelled (by the user) or interrupted (server shutdown).")


class AnalysisProgressMsg(_Event):
    type: Literal["analysis_progress"] = Field("analysis_progress", description="Progress of a feature analysis.")
    sae_id: str = Field(description="SAE being analysed.")
    phase: str = Field(description="activations | windows | weights | saving.")
    done: int = Field(description="Units done in this phase.")
    total: int = Field(description="Units in this phase.")


class AnalysisDoneMsg(_Event):
    type: Literal["analysis_done"] = Field("analysis_done", description="A feature analysis ended.")
    sae_id: str = Field(description="SAE analysed.")
    status: str = Field(description="done | failed | cancelled.")
    error: str | None = Field(None, description="Why it failed or stopped.")
    n_features: int = Field(description="Features analysed.")
    n_tokens: int = Field(description="Tokens read.")
    seconds: float = Field(description="Wall time.")


class ModelLoadedMsg(_Event):
    type: Literal["model_loaded"] = Field("model_loaded", description="Another model was loaded.")
    model: dict[str, Any] = Field(description="The model's description (as GET /api/model reports it).")


class JobMsg(_Event):
    type: Literal["job"] = Field("job", description="Progress of a background job.")
    job_id: str = Field(description="Job id.")
    kind: str = Field(description="What the job does.")
    status: str = Field(description="queued | running | done | failed | cancelled | interrupted.")
    done: int = Field(description="Units done.")
    total: int = Field(description="Units in all.")
    detail: str | None = Field(None, description="A note (the error when failed).")


class BehaviourCandidateMsg(_Event):
    type: Literal["behaviour_candidate"] = Field("behaviour_candidate", description="A behaviour-removal job evaluated one candidate (status changes come as `job` events, kind behaviour_removal).")
    job_id: str = Field(description="Job id.")
    index: int = Field(description="Evaluation order within the job.")
    stage: str = Field(description="screen | refine | prune | combine.")
    edits: list[EditWire] = Field(description="One edit per SAE.")
    search: SplitMetrics = Field(description="Measured on the search split.")
    held_out: SplitMetrics = Field(description="Measured on the held-out split.")
    feasible: bool = Field(description="Within budget on the search split.")
    objective: float = Field(description="target ratio + 0.01 × budget use (search split); lower is better.")
    budget_use: float = Field(description="Fraction of the budget spent on the search split.")
    best_index: int | None = Field(None, description="The best within-budget candidate so far.")


class LogitsMsg(_Msg):
    type: Literal["logits"] = Field("logits", description="Live original vs patched next-token distributions.")
    seq: int = Field(description="Increases with each result on this socket.")
    text: str = Field(description="The prompt.")
    top_k: int = Field(description="Tokens listed.")
    patch_ids: list[str] = Field(description="Patches applied for `patched`.")
    original: list[TokenProb] = Field(description="Top-k next tokens of the original model (every patch off).")
    patched: list[TokenProb] = Field(description="Top-k next tokens with the patches on.")
    moved: list[TokenMove] = Field(description="Tokens whose probability moved most (by |Δp|).")
    kl: float = Field(description="KL(original ‖ patched) in nats.")
    from_layer: int | None = Field(None, description="Lowest block rerun for the patched result.")
    n_tokens: int = Field(description="Prompt length in tokens.")
    compute_ms: float = Field(description="Server compute time of this comparison.")
    latency_ms: float = Field(description="From the newest client message folded into this result to the result.")


WsServerMessage = Annotated[Union[
    HelloMsg, PongMsg, ErrorMsg, LogitsMsg, TrainingProgressMsg, TrainingDoneMsg, TrainingFailedMsg,
    TrainingCancelledMsg, AnalysisProgressMsg, AnalysisDoneMsg, ModelLoadedMsg, JobMsg, BehaviourCandidateMsg,
], Field(discriminator="type")]

EVENT_MESSAGES: dict[str, type[_Event]] = {
    m.model_fields["type"].default: m for m in (
        TrainingProgressMsg, TrainingDoneMsg, TrainingFailedMsg, TrainingCancelledMsg, AnalysisProgressMsg,
        AnalysisDoneMsg, ModelLoadedMsg, JobMsg, BehaviourCandidateMsg)
}
"""Bus event type -> its wire model."""


# client -> server ------------------------------------------------------------------------------
class PingMsg(_Msg):
    type: Literal["ping"] = Field(description="Ask for a pong.")


class SubscribeLogitsMsg(_Msg):
    type: Literal["subscribe_logits"] = Field(description="Start (or change) live logits.")
    text: str = Field(min_length=1, max_length=200_000, description="Prompt.")
    top_k: int = Field(10, ge=1, le=100, description="Tokens listed.")
    patch_ids: list[str] | None = Field(None, description="Patches to apply; null = the enabled patches.")


class SetPromptMsg(_Msg):
    type: Literal["set_prompt"] = Field(description="Change the live prompt.")
    text: str = Field(min_length=1, max_length=200_000, description="Prompt.")


class SetStrengthMsg(_Msg):
    type: Literal["set_strength"] = Field(description="Move a patch's strength live (in memory; persisted by commit_strength, PATCH /api/patches/{id} or when the socket closes).")
    patch_id: str = Field(description="Patch id.")
    strength: float = Field(allow_inf_nan=False, description="New strength.")


class CommitStrengthMsg(_Msg):
    type: Literal["commit_strength"] = Field(description="Persist the live strength of a patch (the user settled).")
    patch_id: str = Field(description="Patch id.")


class UnsubscribeLogitsMsg(_Msg):
    type: Literal["unsubscribe_logits"] = Field(description="Stop live logits.")


WsClientMessage = Annotated[Union[
    PingMsg, SubscribeLogitsMsg, SetPromptMsg, SetStrengthMsg, CommitStrengthMsg, UnsubscribeLogitsMsg,
], Field(discriminator="type")]

server_message = TypeAdapter(WsServerMessage)
client_message = TypeAdapter(WsClientMessage)


def openapi_components() -> dict[str, Any]:
    """JSON schemas of both unions and every member, for ``components.schemas`` of the OpenAPI document."""
    out: dict[str, Any] = {}
    for name, adapter, mode in (("WsServerMessage", server_message, "serialization"),
                                ("WsClientMessage", client_message, "validation")):
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out
