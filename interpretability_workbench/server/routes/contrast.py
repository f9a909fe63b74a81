"""/api/saes/{sae_id}/contrast: features that separate two prompt sets, and a group patch from them."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.contrast import ContrastFeature, ContrastPatchRequest, ContrastRequest, ContrastResponse
from ..schemas.patches import Patch
from .patches import to_wire

router = APIRouter(prefix="/api/saes", tags=["contrast"])


@router.post("/{sae_id}/contrast", response_model=ContrastResponse, responses=ERRORS,
             summary="Rank features by how well they separate positive from negative texts (Cohen's d)")
def contrast_route(sae_id: str, req: ContrastRequest, state: StateDep) -> ContrastResponse:
    r = state.contrast.contrast(sae_id, req.positive, req.negative, req.position, req.top_n)
    return ContrastResponse(sae_id=sae_id, hook_name=r.hook_name, n_positive=r.n_positive, n_negative=r.n_negative,
                            features=[ContrastFeature(**f._asdict()) for f in r.features])


@router.post("/{sae_id}/contrast/patch", response_model=Patch, status_code=201, responses=ERRORS,
             summary="One patch over the selected features (a group ablation by default)")
def contrast_patch(sae_id: str, req: ContrastPatchRequest, state: StateDep) -> Patch:
    cfg = state.patches.create(sae_id=sae_id, features=req.features, mode=req.mode, strength=req.strength,
                               name=req.name or f"group {req.mode} of {len(req.features)} features",
                               enabled=req.enabled, strength_unit=req.strength_unit, origin="contrast")
    return to_wire(state, cfg)
