"""Wire schemas of /api/saes/{sae_id}/contrast."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .patches import UNIT_DESCRIPTION, PatchModeIn, StrengthUnit


class ContrastRequest(BaseModel):
    positive: list[str] = Field(min_length=1, max_length=256, description="Texts showing the behaviour.")
    negative: list[str] = Field(min_length=1, max_length=256, description="Texts without it.")
    position: Literal["last", "all", "max"] = Field("last", description="Sample per text: last token, every token, or max over tokens.")
    top_n: int = Field(20, ge=1, le=1000, description="How many features to return.")


class ContrastFeature(BaseModel):
    index: int = Field(description="Feature index.")
    label: str | None = Field(None, description="Label (user or auto) if the SAE was analysed.")
    top_tokens: list[str] = Field(description="Top tokens from the analysis (empty without one).")
    mean_positive: float = Field(description="Mean activation over positive samples.")
    mean_negative: float = Field(description="Mean activation over negative samples.")
    mean_diff: float = Field(description="mean_positive − mean_negative.")
    effect_size: float = Field(description="Cohen's d: mean_diff / pooled std (+1e-6). Ranking key, largest first.")
    positive_rate: float = Field(description="Fraction of positive samples where the feature fires.")
    negative_rate: float = Field(description="Fraction of negative samples where the feature fires.")


class ContrastResponse(BaseModel):
    sae_id: str = Field(description="SAE used.")
    hook_name: str = Field(description="Its hook.")
    n_positive: int = Field(description="Positive samples (texts, or tokens with position='all').")
    n_negative: int = Field(description="Negative samples.")
    features: list[ContrastFeature] = Field(description="Features ranked by effect size.")


class ContrastPatchRequest(BaseModel):
    features: list[int] = Field(min_length=1, max_length=65_536, description="Selected features (e.g. from a contrast); a group of any size is one patch.")
    mode: PatchModeIn = Field("ablate", description="Edit applied to the whole group.")
    strength: float | None = Field(None, description="Strength (see PatchCreate).")
    name: str | None = Field(None, max_length=200, description="Patch name.")
    enabled: bool = Field(False, description="Whether the group patch acts on the live model (the Patch console's results) at once; off by default: the effect check applies it explicitly, and the user enables it in the Patch console.")
    strength_unit: StrengthUnit = Field("absolute", description=UNIT_DESCRIPTION)
