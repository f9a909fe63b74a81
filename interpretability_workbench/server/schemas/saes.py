"""Wire schemas for /api/saes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SAEInfo(BaseModel):
    id: str = Field(description="SAE id.")
    name: str = Field(description="Display name.")
    model_id: str = Field(description="Base model the SAE reads.")
    hook_name: str = Field(description="Canonical hook name, e.g. blocks.6.hook_resid_post.")
    layer: int = Field(description="Block index of the hook.")
    d_in: int = Field(description="Input width (d_model).")
    d_sae: int = Field(description="Number of latents.")
    architecture: str = Field(description="topk, standard, jumprelu or batchtopk.")
    source: str = Field(description="trained or imported.")
    run_id: str | None = Field(None, description="Training run that produced it.")
    created_at: float = Field(description="Unix time it was registered.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Final training metrics (held_out_fvu, l0, ce_loss_recovered, ...).")
    kind: str = Field("sae", description="sae, or transcoder (reads an MLP's input, its features write through the MLP output).")
    set_id: str | None = Field(None, description="Transcoder set it belongs to (GET /api/transcoders/{set_id}).")


class SAEDetail(SAEInfo):
    config: dict[str, Any] = Field(description="The SAE's config (k, l1_coefficient, normalisation, model revision, ...).")
