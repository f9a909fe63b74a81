from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.model import LoadModelRequest, ModelInfo

router = APIRouter(prefix="/api/model", tags=["model"])


def _info(state) -> ModelInfo:
    info = state.model_info()
    if state.lm is not None:
        info["memory_bytes"] = sum(p.numel() * p.element_size() for p in state.lm.model.parameters())
    return ModelInfo(**info)


@router.get("", response_model=ModelInfo, summary="The loaded model: architecture, sizes, device, dtype, hook points")
async def get_model(state: StateDep) -> ModelInfo:
    return _info(state)


@router.post("", response_model=ModelInfo, responses=ERRORS,
             summary="Load another model ('default', hub id, local folder, .gguf file)")
def post_model(req: LoadModelRequest, state: StateDep) -> ModelInfo:
    state.load_model(req.name, device=req.device, dtype=req.dtype)
    return _info(state)
