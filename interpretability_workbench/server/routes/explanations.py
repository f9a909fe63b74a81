"""/api/saes/{sae_id}/explanations: explain and score features in a background job (progress on WS as
``job`` events, kind ``explain``); results land on the feature rows (GET /api/saes/{id}/features)."""
from __future__ import annotations

from fastapi import APIRouter

from ...features.explanations import ExplainRequest
from ...errors import Invalid
from ...store.jobs import JobRecord
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.explanations import ExplainJob, ExplainRequestBody

router = APIRouter(prefix="/api/saes", tags=["explanations"])


def _wire(rec: JobRecord) -> ExplainJob:
    return ExplainJob(id=rec.id, sae_id=rec.subject or "", status=rec.status, done=rec.done, total=rec.total,  # type: ignore[arg-type]
                      errors=rec.errors, error=rec.error, config=rec.config, created_at=rec.created_at,
                      updated_at=rec.updated_at)


@router.post("/{sae_id}/explanations", response_model=ExplainJob, status_code=202, responses=ERRORS,
             summary="Explain (and score) features with an LLM in the background; features this explainer already "
                     "explained are skipped unless force is set")
def start(sae_id: str, body: ExplainRequestBody, state: StateDep) -> ExplainJob:
    try:
        req = ExplainRequest(**body.model_dump())
    except ValueError as e:
        raise Invalid(str(e)) from None
    return _wire(state.explanations.start(sae_id, req))


@router.get("/{sae_id}/explanations/job", response_model=ExplainJob | None, responses=ERRORS,
            summary="The SAE's latest explanation job (null when none ran)")
def latest(sae_id: str, state: StateDep) -> ExplainJob | None:
    rec = state.explanations.status(sae_id)
    return None if rec is None else _wire(rec)


@router.post("/{sae_id}/explanations/cancel", response_model=ExplainJob, status_code=202, responses=ERRORS,
             summary="Stop the running explanation job after the current feature (resumable)")
def cancel(sae_id: str, state: StateDep) -> ExplainJob:
    state.explanations.cancel(sae_id)
    return _wire(state.explanations.status(sae_id))  # type: ignore[arg-type]


@router.post("/{sae_id}/explanations/resume", response_model=ExplainJob, status_code=202, responses=ERRORS,
             summary="Run the latest job's request again; features it already explained are skipped")
def resume(sae_id: str, state: StateDep) -> ExplainJob:
    rec = state.explanations.status(sae_id)
    if rec is None:
        raise Invalid(f"SAE {sae_id} has no explanation job to resume; POST /api/saes/{sae_id}/explanations")
    return _wire(state.explanations.resume(rec.id))
