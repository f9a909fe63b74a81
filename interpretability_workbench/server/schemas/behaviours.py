"""Wire schemas of /api/behaviours (behaviour-removal search jobs)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SearchMode = Literal["ablate", "scale", "clamp"]
Position = Literal["last", "max", "all"]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
JobPhase = Literal["queued", "training", "ranking", "searching", "finalising", "done"]


class BudgetIn(BaseModel):
    max_kl: float = Field(0.01, gt=0, le=100, description="Largest mean KL(original ‖ patched) of the next-token distribution over the negative prompts, nats.")
    max_target_change: float = Field(0.05, gt=0, le=1, description="Largest |Δ target probability| on any single negative prompt.")


class RemoveBehaviourRequest(BaseModel):
    positive: list[str] = Field(min_length=2, max_length=256, description="Prompts after which the model shows the behaviour (its next token is a target). Part is held out for the report.")
    negative: list[str] = Field(min_length=2, max_length=256, description="Prompts whose next-token distribution must stay as it is. Part is held out for the report.")
    target_tokens: list[str | int] | None = Field(None, min_length=1, max_length=64, description="Target tokens: ids, or text (its first token); their probabilities are summed. Give this or target_text.")
    target_text: str | None = Field(None, min_length=1, max_length=2000, description="The phrase the behaviour produces; its first token is the target. Give this or target_tokens.")
    sae_ids: list[str] | None = Field(None, min_length=1, max_length=256, description="SAEs to search over; null = every SAE that fits the loaded model (within `layers` if given).")
    layers: list[int] | None = Field(None, min_length=1, max_length=256, description="Layers to search at; with train_missing, layers without a resid_post SAE are trained first (else 422 lists them).")
    train_missing: bool = Field(False, description="Train SAEs for the requested layers that have none (one training run; the job waits for it; their feature analysis starts once the job is done).")
    train_tokens: int = Field(100_000, ge=1024, le=100_000_000, description="Training tokens for missing layers.")
    train_d_sae: int = Field(4608, ge=1, le=1_048_576, description="Latents of SAEs trained for missing layers.")
    train_k: int = Field(32, ge=1, le=4096, description="Active latents per token (topk) of SAEs trained for missing layers.")
    train_corpus: str = Field("default", min_length=1, max_length=200, description="Corpus id the missing layers train on (it should contain text showing the behaviour).")
    budget: BudgetIn = Field(default_factory=BudgetIn, description="Damage allowed on the negative prompts.")
    max_evaluations: int = Field(150, ge=1, le=10_000, description="Candidates evaluated at most.")
    max_features: int = Field(32, ge=1, le=4096, description="Most features per layer considered (top of the contrast ranking).")
    modes: list[SearchMode] = Field(default_factory=lambda: ["ablate", "scale", "clamp"], min_length=1, max_length=3, description="Modes allowed: ablate (fraction of the features' span removed), scale (factor on it; used past full removal), clamp (SAE splice holding the features at a value ≤ 0; not exportable as PEFT).")
    positions: list[Position] = Field(default_factory=lambda: ["last", "max"], min_length=1, max_length=3, description="Positions the contrast ranking reads; a feature scores its largest effect size over them.")
    held_out_fraction: float = Field(0.5, gt=0, lt=1, description="Share of each prompt set held out for the report (the search decides on the rest).")
    search_margin: float = Field(0.5, gt=0, le=1, description="Fraction of the budget a candidate may spend on the search split to count as within budget. The search pushes edits to that edge and the held-out prompts scatter around it: below 1 leaves room for that scatter (1 spends the whole budget on the search split); the report measures against the whole budget.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the split; the search is deterministic given it.")
    enable_result: bool = Field(True, description="Leave the resulting patches enabled on the live model.")
    name: str | None = Field(None, max_length=200, description="Name of the resulting edit set.")


class JobStarted(BaseModel):
    job_id: str = Field(description="Job id; progress arrives as `job` (kind behaviour_removal) and `behaviour_candidate` WS events.")
    status: str = Field(description="queued | cancelling.")


class SplitMetrics(BaseModel):
    n_positive: int = Field(description="Positive prompts in the split.")
    n_negative: int = Field(description="Negative prompts in the split.")
    target_before: float = Field(description="Mean target probability on the positives, original model.")
    target_after: float = Field(description="Mean target probability on the positives, patched.")
    target_ratio: float = Field(description="target_after / target_before.")
    kl_mean: float = Field(description="Mean KL(original ‖ patched) over the negatives, nats.")
    kl_max: float = Field(description="Largest KL over the negatives.")
    max_target_change: float = Field(description="Largest |Δ target probability| over the negatives.")


class EditWire(BaseModel):
    sae_id: str = Field(description="SAE of the edit.")
    hook_name: str = Field(description="The SAE's hook.")
    layer: int = Field(description="The SAE's block.")
    mode: SearchMode = Field(description="ablate | scale | clamp.")
    strength: float = Field(description="ablate: fraction removed; scale: factor; clamp: value held.")
    features: list[int] = Field(description="Feature indices, best-ranked first.")


class CandidateWire(BaseModel):
    index: int = Field(description="Evaluation order.")
    stage: str = Field(description="screen | refine | prune | combine.")
    edits: list[EditWire] = Field(description="One edit per SAE.")
    search: SplitMetrics = Field(description="Measured on the search split (what the search decides on).")
    held_out: SplitMetrics = Field(description="Measured on the held-out split.")
    feasible: bool = Field(description="Within budget on the search split (within search_margin of it).")
    objective: float = Field(description="target ratio + 0.01 × budget use (search split); lower is better.")
    budget_use: float = Field(description="Fraction of the budget spent on the search split (≤ 1: within budget).")
    held_out_budget_use: float = Field(description="Fraction of the budget spent on the held-out split (the Pareto front's damage axis).")
    pareto: bool = Field(description="On the Pareto front (held-out target ratio vs held-out budget use).")
    attempt: int = Field(description="Which attempt of the job evaluated it (0, then +1 per resume).")


class ChosenFeature(BaseModel):
    index: int = Field(description="Feature index.")
    label: str | None = Field(None, description="Its label, looked up when the report is read (None before the SAE is analysed).")
    top_tokens: list[str] = Field(description="Tokens it fires on most (from the analysis).")
    effect_size: float | None = Field(None, description="Contrast score: largest Cohen's d over the ranking positions (search split).")
    mean_positive: float | None = Field(None, description="Mean activation on the positives at the last token.")
    mean_negative: float | None = Field(None, description="Mean activation on the negatives at the last token.")


class EditReport(BaseModel):
    patch_id: str = Field(description="The patch made for this edit.")
    sae_id: str = Field(description="Its SAE.")
    hook_name: str = Field(description="Its hook.")
    layer: int = Field(description="Its block.")
    mode: SearchMode = Field(description="ablate | scale | clamp.")
    strength: float = Field(description="Strength of the patch.")
    rank: int = Field(description="Rank of its weight deltas (0 for clamp).")
    features: list[ChosenFeature] = Field(description="The features chosen, with labels.")


class PromptEffect(BaseModel):
    text: str = Field(description="The prompt.")
    target_before: float = Field(description="Summed target probability, original model.")
    target_after: float = Field(description="With the edit set on.")
    kl: float = Field(description="KL(original ‖ patched), nats.")


class BehaviourReport(BaseModel):
    target_ids: list[int] = Field(description="Target token ids.")
    target_tokens: list[str] = Field(description="The targets decoded.")
    target_notes: list[str] = Field(description="How text targets were resolved.")
    feasible: bool = Field(description="The patches are within budget on the search split.")
    held_out_feasible: bool = Field(description="... and on the held-out split.")
    held_out: SplitMetrics | None = Field(None, description="Measured from the returned patches on the held-out prompts (null when no patch was made).")
    search: SplitMetrics | None = Field(None, description="Measured from the returned patches on the search prompts.")
    held_out_positive: list[PromptEffect] = Field(description="Per held-out positive prompt.")
    held_out_negative: list[PromptEffect] = Field(description="Per held-out negative prompt.")
    edits: list[EditReport] = Field(description="One patch per SAE: mode, strength, features with labels.")
    patch_ids: list[str] = Field(description="The patches made (an edit set: each carries extra.edit_set = the job id).")
    edit_set: str = Field(description="The job id, shared by the patches.")
    best_candidate: int | None = Field(None, description="The candidate the patches were made from.")
    pareto: list[int] = Field(description="Candidate indices on the Pareto front, by held-out budget use.")
    peft_exportable: bool = Field(description="Every patch is a weight delta: GET /api/behaviours/{job_id}/export gives one PEFT adapter.")
    export_note: str = Field(description="How to export, or why PEFT is not possible (clamp).")
    n_evaluated: int = Field(description="Candidates evaluated.")
    exhausted: bool = Field(description="max_evaluations ran out before the search's stages finished.")
    seconds: float = Field(description="Wall time of the job's attempts.")
    message: str | None = Field(None, description="Why no patch was made, when none was.")
    notes: list[str] = Field(description="Other remarks.")


class BehaviourJobSummary(BaseModel):
    id: str = Field(description="Job id.")
    name: str | None = Field(None, description="Edit set name.")
    model_id: str = Field(description="Model searched.")
    status: JobStatus = Field(description="Job status; interrupted, cancelled and failed jobs can be resumed.")
    phase: JobPhase = Field(description="Where the job is (or stopped).")
    n_evaluated: int = Field(description="Candidates evaluated so far.")
    max_evaluations: int = Field(description="Candidates evaluated at most.")
    attempt: int = Field(description="0 for the first run, +1 per resume.")
    error: str | None = Field(None, description="Why it failed.")
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds.")


class BehaviourJob(BehaviourJobSummary):
    request: RemoveBehaviourRequest = Field(description="The request.")
    sae_ids: list[str] = Field(description="SAEs searched (trained ones included once trained).")
    missing_layers: list[int] = Field(description="Requested layers that had no SAE (trained by the job).")
    training_run_id: str | None = Field(None, description="The training run for the missing layers (its progress: training_progress events).")
    best: CandidateWire | None = Field(None, description="The best within-budget candidate so far.")
    report: BehaviourReport | None = Field(None, description="The final report (status done).")


class CandidatePatchRequest(BaseModel):
    enabled: bool = Field(True, description="Leave the patches enabled on the live model.")
