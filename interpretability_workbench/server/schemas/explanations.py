"""Wire schemas of /api/saes/{sae_id}/explanations (explanation jobs)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ExplainRequestBody(BaseModel):
    features: list[int] | None = Field(None, min_length=1, max_length=1_000_000, description="Feature indices to explain; null: every analysed feature.")
    explainer: Literal["loaded", "local", "endpoint"] = Field("loaded", description="loaded: the loaded model; local: explainer_model loaded beside it; endpoint: the OpenAI-compatible server of IWB_EXPLAINER_URL.")
    explainer_model: str | None = Field(None, max_length=500, description="local: a model name (as POST /api/model takes); endpoint: overrides IWB_EXPLAINER_MODEL.")
    score: bool = Field(True, description="Score each explanation by detection and fuzzing (balanced accuracy).")
    n_contexts: int = Field(256, ge=8, le=100_000, description="Analysis contexts sampled for non-activating examples and hard negatives.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of every example draw (results do not depend on which features were skipped).")
    force: bool = Field(False, description="Explain and score the chosen features again even when this explainer and prompt version already explained them; the new result (or error) replaces the stored explanation, the user's own label is kept. A resumed forced job skips only what it explained itself.")


class ExplainJob(BaseModel):
    id: str = Field(description="Job id.")
    sae_id: str = Field(description="SAE whose features are explained.")
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"] = Field(description="Job status.")
    done: int = Field(description="Features finished (with or without an error).")
    total: int = Field(description="Features the job covers.")
    errors: int = Field(description="Finished features whose result records an error (the job went on).")
    error: str | None = Field(None, description="Why the job itself failed.")
    config: dict = Field(description="The request the job runs (a forced job also records `forced_since`, Unix seconds from which its own results count as done).")
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds.")
