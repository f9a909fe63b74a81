"""Wire schemas of /api/patches."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

PatchModeIn = Literal["ablate", "scale", "steer", "clamp"]
StrengthUnit = Literal["absolute", "typical_activation"]
UNIT_DESCRIPTION = ("'absolute': strength as described under `strength`; 'typical_activation' (steer and clamp only): strength "
         "counts units of the features' typical activation — their mean activation when active from the SAE's analysis, "
         "or before an analysis the residual norm at the hook over the decoder norm — fixed when the patch is created "
         "(unit_scale), so steer 4 adds four times the features' usual contribution. Exports bake in the absolute "
         "strength (strength × unit_scale).")


class PatchCreate(BaseModel):
    sae_id: str = Field(min_length=1, max_length=200, description="SAE whose features the patch acts on.")
    features: list[int] = Field(min_length=1, max_length=65_536, description="Feature (latent) indices: a group of any size is one patch in every mode (ablate/scale project out the span of all their decoder rows).")
    mode: PatchModeIn = Field(description="ablate: remove the features' directions from the residual stream up to the SAE's layer; scale: multiply that component by `strength`; steer: add strength·W_dec[f]; clamp: hold the activations at `strength` (SAE splice, error term kept).")
    strength: float | None = Field(None, description="ablate: fraction removed (default 1); scale: factor s (default 0); steer: α (default 4); clamp: value v (default 0).")
    name: str | None = Field(None, max_length=200, description="Name; a description of the edit when omitted.")
    enabled: bool = Field(True, description="Whether the patch acts on the live model right away.")
    strength_unit: StrengthUnit = Field("absolute", description=UNIT_DESCRIPTION)
    origin: str | None = Field(None, max_length=100, description="Where the patch was made (e.g. 'patch console', 'feature page'), shown beside it.")


class PatchUpdate(BaseModel):
    strength: float | None = Field(None, description="New strength (applied in place).")
    enabled: bool | None = Field(None, description="Turn the patch on or off.")
    name: str | None = Field(None, max_length=200, description="New name.")
    features: list[int] | None = Field(None, min_length=1, max_length=65_536, description="New feature list, any size (the deltas are rebuilt).")


class Patch(BaseModel):
    id: str = Field(description="Patch id.")
    name: str = Field(description="Name.")
    mode: Literal["ablate", "scale", "steer", "clamp", "adapter"] = Field(description="Edit mode; 'adapter' for an imported LoRA adapter.")
    sae_id: str | None = Field(None, description="SAE the patch reads (None for adapters).")
    features: list[int] = Field(description="Feature indices (empty for adapters).")
    strength: float = Field(description="Current strength (see PatchCreate.strength; adapters: multiplier), in strength_unit.")
    strength_unit: StrengthUnit = Field("absolute", description=UNIT_DESCRIPTION)
    unit_scale: float = Field(1.0, description="Absolute strength of one unit (1 for 'absolute').")
    unit_source: str = Field("", description="Where unit_scale came from: 'analysis' (mean activation when active), 'residual_norm' (no analysis yet), 'given' (imported) or '' (absolute).")
    absolute_strength: float = Field(description="strength × unit_scale: what the edit applies (and exports bake in).")
    origin: str | None = Field(None, description="Where the patch was made ('contrast', 'patch console', ...); null when unknown.")
    enabled: bool = Field(description="Whether it acts on the live model.")
    model_id: str = Field(description="Base model the patch was made for.")
    hook_name: str = Field(description="The SAE's hook ('' for adapters).")
    rank: int = Field(description="Rank of the weight deltas (0 for clamp).")
    target_modules: list[str] = Field(description="Module paths the patch wraps.")
    applied: bool = Field(description="Whether the patch is applied to the loaded model.")
    apply_error: str | None = Field(None, description="Why it is not applied (another model is loaded, ...).")
    exportable_as_peft: bool = Field(description="Weight-delta patches export as PEFT LoRA adapters; clamp exports only in the native format.")
    created_at: float = Field(description="Creation time (unix seconds).")
    updated_at: float = Field(description="Last change (unix seconds).")


class EvaluateRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256, description="Prompts; the next token after each is scored.")
    target_tokens: list[str | int] = Field(min_length=1, max_length=64, description="Target tokens: ids, or text (its first token is used).")


class TextEffect(BaseModel):
    text: str = Field(description="The prompt.")
    before: float = Field(description="Summed probability of the targets with every patch off.")
    after: float = Field(description="Summed probability of the targets with only this patch on.")


class EvaluateResponse(BaseModel):
    patch_id: str = Field(description="The patch evaluated.")
    results: list[TextEffect] = Field(description="One entry per text.")
    mean_before: float = Field(description="Mean of `before`.")
    mean_after: float = Field(description="Mean of `after`.")
    target_ids: list[int] = Field(description="Token ids scored (a text target contributes its first token).")
    notes: list[str] = Field(description="How text targets were resolved (multi-token targets use their first token).")
