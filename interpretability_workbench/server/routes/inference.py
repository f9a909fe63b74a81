"""/api/inference and /api/generate: original vs patched next tokens and continuations."""
from __future__ import annotations

from fastapi import APIRouter

from ...inference.engine import compare, generate
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.inference import (GenerateRequest, GenerateResponse, InferenceRequest, InferenceResponse, TokenMove,
                                 TokenProb)

router = APIRouter(prefix="/api", tags=["inference"])


def comparison_to_wire(c) -> InferenceResponse:  # noqa: ANN001
    return InferenceResponse(original=[TokenProb(**t.to_dict()) for t in c.original],
                             patched=[TokenProb(**t.to_dict()) for t in c.patched],
                             moved=[TokenMove(**m.to_dict()) for m in c.moved], kl=c.kl, patch_ids=c.patch_ids,
                             n_tokens=c.n_tokens, from_layer=c.from_layer, latency_ms=c.latency_ms)


@router.post("/inference", response_model=InferenceResponse, responses=ERRORS,
             summary="Next-token top-k of the original model (every patch off) and with patches, KL, biggest moves")
def inference(req: InferenceRequest, state: StateDep) -> InferenceResponse:
    return comparison_to_wire(compare(state, req.text, req.top_k, req.patch_ids))


@router.post("/generate", response_model=GenerateResponse, responses=ERRORS,
             summary="Original vs patched continuations (greedy, or seeded sampling), at most 128 new tokens")
def generate_route(req: GenerateRequest, state: StateDep) -> GenerateResponse:
    g = generate(state, req.text, req.max_new_tokens, req.temperature, req.seed, req.patch_ids)
    return GenerateResponse(**g._asdict())
