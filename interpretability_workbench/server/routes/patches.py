"""/api/patches: create, list, update, delete, export, import and evaluate patches."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import Response

from ...patches.config import PatchConfig
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.patches import EvaluateRequest, EvaluateResponse, Patch, PatchCreate, PatchUpdate, TextEffect

router = APIRouter(prefix="/api/patches", tags=["patches"])


def to_wire(state, cfg: PatchConfig) -> Patch:  # noqa: ANN001
    applied, err = state.patches.status(cfg.id)
    d = cfg.to_dict()
    return Patch(**{k: d[k] for k in ("id", "name", "mode", "sae_id", "features", "strength", "enabled", "model_id",
                                      "hook_name", "rank", "target_modules", "created_at", "updated_at",
                                      "strength_unit", "unit_scale", "unit_source")},
                 applied=applied, apply_error=err, exportable_as_peft=cfg.is_weight_delta,
                 absolute_strength=cfg.absolute_strength, origin=cfg.extra.get("origin"))


@router.get("", response_model=list[Patch], summary="Stored patches, oldest first")
def list_patches(state: StateDep) -> list[Patch]:
    return [to_wire(state, c) for c in state.patches.list()]


@router.post("", response_model=Patch, status_code=201, responses=ERRORS,
             summary="Create a patch on one or several features of an SAE; it is applied to the live model at once")
def create_patch(req: PatchCreate, state: StateDep) -> Patch:
    cfg = state.patches.create(sae_id=req.sae_id, features=req.features, mode=req.mode, strength=req.strength,
                               name=req.name, enabled=req.enabled, strength_unit=req.strength_unit,
                               origin=req.origin)
    return to_wire(state, cfg)


@router.post("/import", response_model=Patch, status_code=201, responses=ERRORS,
             summary="Import a zip: a PEFT LoRA adapter folder (safetensors only) or a native patch export")
def import_patch_route(state: StateDep, file: UploadFile, name: str | None = Form(None)) -> Patch:
    return to_wire(state, state.patch_transfer.import_zip(file.file.read(), name))


@router.get("/{patch_id}", response_model=Patch, responses=ERRORS, summary="One patch")
def get_patch(patch_id: str, state: StateDep) -> Patch:
    return to_wire(state, state.patches.get(patch_id))


@router.patch("/{patch_id}", response_model=Patch, responses=ERRORS,
              summary="Change strength, enabled, name or features (in place on the live model)")
def update_patch(patch_id: str, req: PatchUpdate, state: StateDep) -> Patch:
    cfg = state.patches.update(patch_id, strength=req.strength, enabled=req.enabled, name=req.name,
                               features=req.features)
    return to_wire(state, cfg)


@router.delete("/{patch_id}", status_code=204, response_class=Response, responses=ERRORS,
               summary="Delete a patch; the original modules are restored")
def delete_patch(patch_id: str, state: StateDep) -> Response:
    state.patches.delete(patch_id)
    return Response(status_code=204)


@router.get("/{patch_id}/export", response_class=Response, responses={**ERRORS, 200: {
    "content": {"application/zip": {}}, "description": "Zip of a PEFT LoRA adapter folder or a native patch folder"}},
    summary="Export as a PEFT LoRA adapter (weight-delta patches) or natively (every mode; clamp only natively)")
def export_patch_route(patch_id: str, state: StateDep,
                       format: Literal["peft", "native"] = Query("peft", description="peft or native")) -> Response:
    ex = state.patch_transfer.export(patch_id, format)
    return Response(ex.data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{ex.filename}"', "X-Export-Note": ex.note})


@router.post("/{patch_id}/evaluate", response_model=EvaluateResponse, responses=ERRORS,
             summary="Probability of target tokens before and after the patch, per text and on average")
def evaluate_patch(patch_id: str, req: EvaluateRequest, state: StateDep) -> EvaluateResponse:
    ev = state.inference.evaluate(patch_id, req.texts, req.target_tokens)
    return EvaluateResponse(patch_id=patch_id, results=[TextEffect(**r._asdict()) for r in ev.results],
                            mean_before=ev.mean_before, mean_after=ev.mean_after, target_ids=ev.target_ids,
                            notes=ev.notes)
