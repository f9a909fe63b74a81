"""/api/saes: the SAE registry; zip import (SAELens folders, safetensors only), export, and pretrained
releases (search, import by release and SAE id)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, UploadFile
from fastapi.responses import Response

from ...sae.archive import import_zip, zip_folder
from ...store.saes import SAERecord
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.saes import (ImportedPretrainedSAE, ImportPretrainedRequest, PretrainedRelease, PretrainedReleases,
                            SAEDetail, SAEInfo)

router = APIRouter(prefix="/api/saes", tags=["saes"])


def _info(rec: SAERecord) -> dict[str, Any]:
    return {"id": rec.id, "name": rec.name, "model_id": rec.model_id, "hook_name": rec.hook_name, "layer": rec.layer,
            "d_in": rec.d_in, "d_sae": rec.d_sae, "architecture": rec.architecture, "source": rec.source,
            "run_id": rec.run_id, "created_at": rec.created_at, "metrics": rec.metrics, "kind": rec.kind,
            "set_id": rec.set_id}


@router.get("", response_model=list[SAEInfo], summary="Registered SAEs (trained and imported)")
def list_saes(state: StateDep) -> list[SAEInfo]:
    return [SAEInfo(**_info(r)) for r in state.saes.list()]


@router.get("/pretrained", response_model=PretrainedReleases, responses=ERRORS,
            summary="Pretrained SAE releases for the loaded model (SAELens's registry + IWB_SAE_REGISTRY files)")
def list_pretrained(state: StateDep,
                    q: str | None = Query(None, max_length=200, description="Search terms (release, repo, model, SAE id)."),
                    all_models: bool = Query(False, description="Every model's releases, not only the loaded model's."),
                    limit: int = Query(50, ge=1, le=500, description="Most releases returned.")) -> PretrainedReleases:
    rels = state.pretrained.releases(q, any_model=all_models)
    lm = state.model.lm
    return PretrainedReleases(model_id=None if all_models or lm is None else lm.model_id, total=len(rels),
                              releases=[PretrainedRelease(**r.to_dict()) for r in rels[:limit]])


@router.post("/import-pretrained", response_model=list[ImportedPretrainedSAE], status_code=201, responses=ERRORS,
             summary="Import SAEs of a pretrained release (one, several, or all) from the local Hugging Face cache")
def import_pretrained(req: ImportPretrainedRequest, state: StateDep) -> list[ImportedPretrainedSAE]:
    done = state.pretrained.import_release(req.release, req.chosen())
    return [ImportedPretrainedSAE(**_info(state.saes.row(d.sae_id)), release=d.release, pretrained_id=d.pretrained_id)
            for d in done]


@router.get("/{sae_id}", response_model=SAEDetail, responses=ERRORS, summary="One SAE with its config and metrics")
def get_sae(sae_id: str, state: StateDep) -> SAEDetail:
    entry = state.saes.get(sae_id)
    return SAEDetail(**_info(entry.row), config=entry.sae.cfg.to_dict())


@router.post("/import", response_model=SAEInfo, status_code=201, responses=ERRORS,
             summary="Import a zipped SAELens folder (cfg.json + sae_weights.safetensors; v6 or pre-v6 cfg)")
def import_sae(file: UploadFile, state: StateDep) -> SAEInfo:
    data = file.file.read()
    name = (file.filename or "imported").rsplit("/", 1)[-1].removesuffix(".zip") or "imported"
    sae_id = import_zip(state.saes, data, name=name)
    return SAEInfo(**_info(state.saes.row(sae_id)))


@router.get("/{sae_id}/export", response_class=Response, responses={**ERRORS, 200: {
    "content": {"application/zip": {}}, "description": "Zip of the SAELens v6 folder."}},
    summary="Download an SAE as a zipped SAELens v6 folder")
def export_sae(sae_id: str, state: StateDep) -> Response:
    rec = state.saes.row(sae_id)
    return Response(zip_folder(rec.path), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{sae_id}.zip"'})
