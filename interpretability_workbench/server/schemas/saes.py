"""Wire schemas for /api/saes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


class SAEInfo(BaseModel):
    id: str = Field(description="SAE id.")
    name: str = Field(description="Display name.")
    model_id: str = Field(description="Base model the SAE reads.")
    hook_name: str = Field(description="Canonical hook name, e.g. blocks.6.hook_resid_post.")
    layer: int = Field(description="Block index of the hook.")
    d_in: int = Field(description="Input width (d_model).")
    d_sae: int = Field(description="Number of latents.")
    architecture: str = Field(description="topk, standard, jumprelu or batchtopk.")
    source: str = Field(description="trained, imported (a SAELens folder or zip) or pretrained (a release of the pretrained registry).")
    run_id: str | None = Field(None, description="Training run that produced it.")
    created_at: float = Field(description="Unix time it was registered.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Final training metrics (held_out_fvu, l0, ce_loss_recovered, ...).")
    kind: str = Field("sae", description="sae, or transcoder (reads an MLP's input, its features write through the MLP output).")
    set_id: str | None = Field(None, description="Transcoder set it belongs to (GET /api/transcoders/{set_id}).")


class SAEDetail(SAEInfo):
    config: dict[str, Any] = Field(description="The SAE's config (k, l1_coefficient, normalisation, model revision, ...).")


class PretrainedSAEEntry(BaseModel):
    sae_id: str = Field(description="Id inside the release (SAELens's sae_id), e.g. blocks.6.hook_resid_post.")
    repo_id: str = Field(description="Hugging Face repo holding its files.")
    path: str = Field(description="Folder of its files inside the repo.")
    model: str = Field("", description="Model it was trained on, as the registry names it.")
    neuronpedia_id: str | None = Field(None, description="Neuronpedia id, when the registry lists one.")
    l0: float | None = Field(None, description="Mean active latents per token, as the registry lists it.")
    variance_explained: float | None = Field(None, description="Variance explained, as the registry lists it.")
    norm_scaling_factor: float | None = Field(None, description="Input scale folded into the weights on import.")
    hook_name: str | None = Field(None, description="Hook it reads, when known.")
    d_sae: int | None = Field(None, description="Number of latents, when its cfg.json is in the local cache.")
    architecture: str | None = Field(None, description="Architecture, when its cfg.json is in the local cache.")
    cached: bool = Field(False, description="Its files are in the local Hugging Face cache (it imports offline).")


class PretrainedRelease(BaseModel):
    release: str = Field(description="Release name (SAELens's release).")
    repo_id: str = Field(description="Hugging Face repo holding its SAEs.")
    model: str = Field(description="Model the SAEs were trained on, as the registry names it.")
    format: str = Field(description="File format; 'sae_lens' (cfg.json + sae_weights.safetensors) is the one imported.")
    supported: bool = Field(description="Whether the workbench imports this format.")
    unsupported_reason: str | None = Field(None, description="Why not, when it does not.")
    links: dict[str, str] = Field(default_factory=dict, description="Dashboards, publication, model card.")
    saes: list[PretrainedSAEEntry] = Field(description="Its SAEs (only those matching the search when the search named SAE ids).")


class PretrainedReleases(BaseModel):
    model_id: str | None = Field(description="Model the releases were filtered for (the loaded one), or null for every model.")
    total: int = Field(description="Releases that matched, before the limit.")
    releases: list[PretrainedRelease] = Field(description="Matching releases, by name.")


class ImportPretrainedRequest(BaseModel):
    release: str = Field(min_length=1, max_length=300, description="Release name from GET /api/saes/pretrained.")
    sae_id: str | None = Field(None, min_length=1, max_length=300, description="One SAE of the release.")
    sae_ids: list[str] | None = Field(None, min_length=1, max_length=512, description="Several SAEs of the release (e.g. one per layer).")
    all: bool = Field(False, description="Every SAE of the release.")

    @model_validator(mode="after")
    def _one_choice(self) -> "ImportPretrainedRequest":
        given = (self.sae_id is not None) + (self.sae_ids is not None) + bool(self.all)
        if given != 1:
            raise ValueError("give exactly one of sae_id, sae_ids or all=true")
        return self

    def chosen(self) -> list[str] | None:
        """The SAE ids to import (None: the whole release)."""
        if self.all:
            return None
        return [self.sae_id] if self.sae_id is not None else list(self.sae_ids or [])


class ImportedPretrainedSAE(SAEInfo):
    release: str = Field(description="Release it came from.")
    pretrained_id: str = Field(description="Its id inside the release.")
