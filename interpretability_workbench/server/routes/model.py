"""/api/model: the loaded model; load another."""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.model import LoadModelRequest, ModelInfo

router = APIRouter(prefix="/api/model", tags=["model"])


@router.get("", response_model=ModelInfo, summary="The loaded model: architecture, sizes, device, dtype, hook points, memory per device")
def get_model(state: StateDep) -> ModelInfo:
    return ModelInfo(**state.model.info())


@router.post("", response_model=ModelInfo, responses=ERRORS,
             summary="Load another model ('default', hub id, local folder, .gguf file)")
def post_model(req: LoadModelRequest, state: StateDep) -> ModelInfo:
    state.model.load(req.name, device=req.device, dtype=req.dtype, device_map=req.device_map)
    return ModelInfo(**state.model.info())
