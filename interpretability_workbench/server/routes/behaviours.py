"""/api/behaviours: remove a behaviour — start a search job, follow it (WS `job` and `behaviour_candidate`
events), cancel, resume, inspect its candidates, make patches from any of them, export the edit set."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ...behaviour.service import CandidateRow
from ...behaviour.types import SearchRequest
from ...errors import Invalid
from ...store.behaviours import BehaviourJobRecord
from ..deps import StateDep
from ..schemas.behaviours import (
    BehaviourJob,
    BehaviourJobSummary,
    CandidatePatchRequest,
    CandidateWire,
    JobStarted,
    RemoveBehaviourRequest,
)
from ..schemas.common import ERRORS
from ..schemas.patches import Patch
from .patches import to_wire as patch_wire

router = APIRouter(prefix="/api/behaviours", tags=["behaviours"])


def _summary(rec: BehaviourJobRecord) -> dict:
    return {"id": rec.id, "name": rec.request.get("name"), "model_id": rec.model_id, "status": rec.status,
            "phase": rec.phase, "n_evaluated": rec.n_evaluated,
            "max_evaluations": int(rec.request.get("max_evaluations", 0)), "attempt": rec.attempt,
            "error": rec.error, "created_at": rec.created_at, "updated_at": rec.updated_at}


def _candidate(row: CandidateRow) -> CandidateWire:
    c = row.candidate
    return CandidateWire(**c.to_dict(), held_out_budget_use=row.held_out_budget_use, pareto=row.pareto,
                         attempt=row.attempt)


@router.post("/remove", response_model=JobStarted, status_code=202, responses=ERRORS,
             summary="Start a search for SAE feature edits that remove a behaviour (one job at a time; 409 otherwise)")
def remove_behaviour(req: RemoveBehaviourRequest, state: StateDep) -> JobStarted:
    try:
        sreq = SearchRequest.from_dict(req.model_dump())
    except ValueError as e:
        raise Invalid(str(e)) from None
    return JobStarted(job_id=state.behaviours.start(sreq).id, status="queued")


@router.get("", response_model=list[BehaviourJobSummary], summary="Behaviour-removal jobs, newest first")
def list_jobs(state: StateDep) -> list[BehaviourJobSummary]:
    return [BehaviourJobSummary(**_summary(r)) for r in state.behaviours.list()]


@router.get("/{job_id}", response_model=BehaviourJob, responses=ERRORS,
            summary="A job: request, status, phase, best candidate so far, and the report once done")
def get_job(job_id: str, state: StateDep) -> BehaviourJob:
    rec = state.behaviours.get(job_id)
    best = state.behaviours.best(job_id)
    rows = {r.candidate.index: r for r in state.behaviours.candidate_rows(job_id)} if best else {}
    st = rec.state
    return BehaviourJob(**_summary(rec), request=RemoveBehaviourRequest(**rec.request),
                        sae_ids=list(st.get("sae_ids", [])) + list(st.get("trained_sae_ids", [])),
                        missing_layers=list(st.get("missing_layers", [])), training_run_id=st.get("training_run"),
                        best=_candidate(rows[best.index]) if best else None,
                        report=state.behaviours.report(job_id))


@router.get("/{job_id}/candidates", response_model=list[CandidateWire], responses=ERRORS,
            summary="Every candidate the job evaluated, in order, with its Pareto flag")
def list_candidates(job_id: str, state: StateDep) -> list[CandidateWire]:
    return [_candidate(r) for r in state.behaviours.candidate_rows(job_id)]


@router.post("/{job_id}/cancel", response_model=JobStarted, status_code=202, responses=ERRORS,
             summary="Stop the job before its next candidate (resumable)")
def cancel_job(job_id: str, state: StateDep) -> JobStarted:
    state.behaviours.cancel(job_id)
    return JobStarted(job_id=job_id, status="cancelling")


@router.post("/{job_id}/resume", response_model=JobStarted, status_code=202, responses=ERRORS,
             summary="Continue an interrupted, cancelled or failed job from its stored candidates")
def resume_job(job_id: str, state: StateDep) -> JobStarted:
    return JobStarted(job_id=state.behaviours.resume(job_id).id, status="queued")


@router.post("/{job_id}/candidates/{index}/patch", response_model=list[Patch], status_code=201, responses=ERRORS,
             summary="Make patches (one per SAE) from any evaluated candidate, e.g. another Pareto point")
def patch_from_candidate(job_id: str, index: int, req: CandidatePatchRequest, state: StateDep) -> list[Patch]:
    return [patch_wire(state, c) for c in state.behaviours.make_patches(job_id, index, enabled=req.enabled)]


@router.get("/{job_id}/export", response_class=Response, responses={**ERRORS, 200: {
    "content": {"application/zip": {}}, "description": "Zip of one PEFT LoRA adapter folder holding the edit set"}},
    summary="The job's edit set as one PEFT LoRA adapter (weight-delta patches only; 422 for clamp)")
def export_job(job_id: str, state: StateDep) -> Response:
    ex = state.behaviours.export(job_id)
    return Response(ex.data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{ex.filename}"', "X-Export-Note": ex.note})


@router.delete("/{job_id}", status_code=204, response_class=Response, responses=ERRORS,
               summary="Forget a job and its candidates (its patches stay)")
def delete_job(job_id: str, state: StateDep) -> Response:
    state.behaviours.delete(job_id)
    return Response(status_code=204)
