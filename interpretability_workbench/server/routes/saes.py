"""/api/saes: the SAE registry; zip import (SAELens folders, safetensors only) and export."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, UploadFile
from fastapi.responses import Response

from ...sae.archive import import_zip, zip_folder
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.saes import SAEDetail, SAEInfo

router = APIRouter(prefix="/api/saes", tags=["saes"])


def _info(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "model_id", "hook_name", "layer", "d_in", "d_sae", "architecture", "source", "run_id",
            "created_at")
    return {**{k: row.get(k) for k in keys}, "metrics": row.get("metrics_json") or {}}


@router.get("", response_model=list[SAEInfo], summary="Registered SAEs (trained and imported)")
def list_saes(state: StateDep) -> list[SAEInfo]:
    return [SAEInfo(**_info(r)) for r in state.saes.list()]


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
    return SAEInfo(**_info(state.saes.get(sae_id).row))


@router.get("/{sae_id}/export", response_class=Response, responses={**ERRORS, 200: {
    "content": {"application/zip": {}}, "description": "Zip of the SAELens v6 folder."}},
    summary="Download an SAE as a zipped SAELens v6 folder")
def export_sae(sae_id: str, state: StateDep) -> Response:
    row = state.saes.get(sae_id).row
    return Response(zip_folder(row["path"]), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{sae_id}.zip"'})
