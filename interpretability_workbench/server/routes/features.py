"""Feature explorer: analysis jobs, paged/sorted/searchable features, detail, labels, export, per-text
activations. Torch work runs in plain ``def`` routes (a worker thread) or the analysis thread."""
from __future__ import annotations

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.features import (ActivationsRequest, ActivationsResponse, AnalysisRequest, AnalysisStatus,
                                FeatureDetail, FeatureExportRow, FeaturePage, FeatureUpdate)

router = APIRouter(prefix="/api/saes", tags=["features"])

SaeId = Path(description="SAE id (GET /api/saes).")
Index = Path(description="Feature index, 0..d_sae-1.")


@router.post("/{sae_id}/analysis", response_model=AnalysisStatus, status_code=202, responses=ERRORS,
             summary="Start analysing every feature of an SAE (runs in the background; 409 if one is running)")
def start_analysis(state: StateDep, sae_id: str = SaeId, body: AnalysisRequest | None = None) -> AnalysisStatus:
    body = body or AnalysisRequest()
    return AnalysisStatus(**state.features.start_analysis(sae_id, body.corpus, body.n_tokens))


@router.get("/{sae_id}/analysis", response_model=AnalysisStatus, responses=ERRORS,
            summary="Analysis status: none, running (with progress), done (with summary), failed, cancelled")
def analysis_status(state: StateDep, sae_id: str = SaeId) -> AnalysisStatus:
    return AnalysisStatus(**state.features.status(sae_id))


@router.get("/{sae_id}/features", response_model=FeaturePage, responses=ERRORS,
            summary="Features of an SAE, paged, sorted and searched")
def list_features(
    state: StateDep,
    sae_id: str = SaeId,
    offset: int = Query(0, ge=0, description="First item to return."),
    limit: int = Query(50, ge=1, le=500, description="Page size."),
    sort: str = Query("index", description="index | density | max_activation (max_act) | mean_activation | "
                                           "label | starred | detection | fuzzing | consistency; prefix '-' to sort "
                                           "descending."),
    q: str | None = Query(None, max_length=200, description="Search: 'token:<tok>' (features peaking on that "
                                                            "token), 'is:starred', or text in label, notes or explanation."),
    hide_degenerate: bool = Query(False, description="Leave out degenerate features: those with at least half of "
                                                     "their top contexts peaking on whitespace-only tokens "
                                                     "(see FeatureSummary)."),
) -> FeaturePage:
    return FeaturePage(**state.features.list_features(sae_id, offset=offset, limit=limit, sort=sort, q=q,
                                                      hide_degenerate=hide_degenerate))


_NDJSON = {"content": {"application/x-ndjson": {"schema": {"$ref": "#/components/schemas/FeatureExportRow"}}},
           "description": "JSON lines: one FeatureExportRow a line, by feature index."}


@router.get("/{sae_id}/features/export", response_model=FeatureExportRow, response_class=StreamingResponse,
            responses={**ERRORS, 200: _NDJSON},
            summary="Export every analysed feature as JSON lines (close to Neuronpedia's feature rows)")
def export_features(state: StateDep, sae_id: str = SaeId) -> StreamingResponse:
    lines = state.features.export(sae_id)
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{sae_id}-features.jsonl"'})


@router.get("/{sae_id}/features/{index}", response_model=FeatureDetail, responses=ERRORS,
            summary="Everything about one feature: contexts, quantiles, histograms, logits, neighbours")
def get_feature(state: StateDep, sae_id: str = SaeId, index: int = Index) -> FeatureDetail:
    return FeatureDetail(**state.features.get_feature(sae_id, index))


@router.patch("/{sae_id}/features/{index}", response_model=FeatureDetail, responses=ERRORS,
              summary="Set a feature's user label, notes or star (persisted)")
def update_feature(body: FeatureUpdate, state: StateDep, sae_id: str = SaeId, index: int = Index) -> FeatureDetail:
    return FeatureDetail(**state.features.update_feature(sae_id, index, label=body.label, notes=body.notes,
                                                         starred=body.starred))


@router.post("/{sae_id}/activations", response_model=ActivationsResponse, responses=ERRORS,
             summary="Which features fire on each token of a text, with their values")
def activations(body: ActivationsRequest, state: StateDep, sae_id: str = SaeId) -> ActivationsResponse:
    res = state.features.activations(sae_id, body.text, top_k=body.top_k, features=body.features)
    return ActivationsResponse(**res._asdict())
