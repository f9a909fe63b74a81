"""/api/inference and /api/generate: original vs patched next tokens and continuations.

Concurrent ``/api/inference`` requests are batched by the engine (one padded forward per patch set); the
admission queue in front of every inference-type route is the middleware's (``server/admission.py``).
"""
from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.inference import GenerateRequest, GenerateResponse, InferenceRequest, InferenceResponse

router = APIRouter(prefix="/api", tags=["inference"])


@router.post("/inference", response_model=InferenceResponse, responses=ERRORS,
             summary="Next-token top-k of the original model (every patch off) and with patches, KL, biggest moves")
def inference(req: InferenceRequest, state: StateDep) -> InferenceResponse:
    return InferenceResponse.from_comparison(state.inference.compare(req.text, req.top_k, req.patch_ids))


@router.post("/generate", response_model=GenerateResponse, responses=ERRORS,
             summary="Original vs patched continuations (greedy, or seeded sampling), at most 128 new tokens")
def generate_route(req: GenerateRequest, state: StateDep) -> GenerateResponse:
    g = state.inference.generate(req.text, req.max_new_tokens, req.temperature, req.seed, req.patch_ids)
    return GenerateResponse(**g._asdict())
