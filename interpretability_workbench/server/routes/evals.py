"""/api/saes/{sae_id}/map and /api/saes/{sae_id}/evals: the feature map and the SAE evaluations, each computed
in a background job (progress on WS as ``job`` events, kinds ``map`` and ``evals``) and cached in the SAE's
folder, and cancellable (POST .../cancel); /api/evals/compare sets several SAEs' evaluations side by side."""
from __future__ import annotations

from fastapi import APIRouter, Query

from ...evals.service import EvalRequest
from ...features.map_service import MapRequest
from ...store.jobs import JobRecord
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.evals import (EvalCompareOut, EvalRequestBody, EvalResultOut, FeatureMapOut, MapCluster, MapPoints,
                             MapRequestBody, UnderstandingJob)

router = APIRouter(tags=["evals"])


def _wire(rec: JobRecord) -> UnderstandingJob:
    return UnderstandingJob(id=rec.id, sae_id=rec.subject or "", kind=rec.kind, status=rec.status,  # type: ignore[arg-type]
                            done=rec.done, total=rec.total, error=rec.error, config=rec.config,
                            created_at=rec.created_at, updated_at=rec.updated_at)


@router.post("/api/saes/{sae_id}/map", response_model=UnderstandingJob, status_code=202, responses=ERRORS,
             summary="Compute the feature map (UMAP of the decoder directions + k-means clusters) in the background")
def start_map(sae_id: str, body: MapRequestBody, state: StateDep) -> UnderstandingJob:
    return _wire(state.feature_maps.start(sae_id, MapRequest(**body.model_dump())))


@router.get("/api/saes/{sae_id}/map", response_model=FeatureMapOut, responses=ERRORS,
            summary="The cached feature map with labels, densities and clusters (404 before it is computed, 409 "
                    "while it is)")
def get_map(sae_id: str, state: StateDep) -> FeatureMapOut:
    v = state.feature_maps.view(sae_id)
    return FeatureMapOut(sae_id=v.sae_id, params=v.params.to_dict(), points=MapPoints(**v.points._asdict()),
                         clusters=[MapCluster(**c._asdict()) for c in v.clusters])


@router.get("/api/saes/{sae_id}/map/job", response_model=UnderstandingJob | None, responses=ERRORS,
            summary="The SAE's latest feature-map job (null when none ran)")
def map_job(sae_id: str, state: StateDep) -> UnderstandingJob | None:
    rec = state.feature_maps.job(sae_id)
    return None if rec is None else _wire(rec)


@router.post("/api/saes/{sae_id}/map/cancel", response_model=UnderstandingJob, status_code=202, responses=ERRORS,
             summary="Stop the running feature-map job at its next stage (it ends 'cancelled'; a map saved before "
                     "stays); 409 when none runs")
def cancel_map(sae_id: str, state: StateDep) -> UnderstandingJob:
    return _wire(state.feature_maps.cancel(sae_id))


@router.post("/api/saes/{sae_id}/evals", response_model=UnderstandingJob, status_code=202, responses=ERRORS,
             summary="Evaluate the SAE (absorption, k-sparse probing, density) on the loaded model in the background")
def start_evals(sae_id: str, body: EvalRequestBody, state: StateDep) -> UnderstandingJob:
    return _wire(state.evals.start(sae_id, EvalRequest(**body.model_dump())))


@router.get("/api/saes/{sae_id}/evals", response_model=EvalResultOut, responses=ERRORS,
            summary="The SAE's latest evaluation (404 before the first, 409 while one runs)")
def get_evals(sae_id: str, state: StateDep) -> EvalResultOut:
    r = state.evals.result(sae_id)
    return EvalResultOut(sae_id=r.sae_id, created_at=r.created_at, request=r.request,
                         summary=r.result.get("summary") or {}, result=r.result)


@router.get("/api/saes/{sae_id}/evals/job", response_model=UnderstandingJob | None, responses=ERRORS,
            summary="The SAE's latest evaluation job (null when none ran)")
def evals_job(sae_id: str, state: StateDep) -> UnderstandingJob | None:
    rec = state.evals.job(sae_id)
    return None if rec is None else _wire(rec)


@router.post("/api/saes/{sae_id}/evals/cancel", response_model=UnderstandingJob, status_code=202, responses=ERRORS,
             summary="Stop the running evaluation at its next stage (it ends 'cancelled'; the previous evaluation "
                     "stays); 409 when none runs")
def cancel_evals(sae_id: str, state: StateDep) -> UnderstandingJob:
    return _wire(state.evals.cancel(sae_id))


@router.get("/api/evals/compare", response_model=EvalCompareOut, responses=ERRORS,
            summary="Headline evaluation numbers of several SAEs side by side (each must have been evaluated)")
def compare(state: StateDep, sae_ids: str = Query(..., min_length=1, max_length=4000,
                                                   description="Comma-separated SAE ids.")) -> EvalCompareOut:
    ids = [s.strip() for s in sae_ids.split(",") if s.strip()]
    return EvalCompareOut(rows=state.evals.compare(ids))
