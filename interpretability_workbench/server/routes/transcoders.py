"""/api/transcoders: train transcoder sets, list them, import (circuit-tracer or SAELens zips), export."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import Response

from ...errors import Invalid
from ...store.runs import RunRecord
from ...store.transcoders import TranscoderSetRecord
from ...training.transcoder_config import TranscoderTrainingConfig
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.transcoders import (TranscoderMember, TranscoderRun, TranscoderSet, TranscoderSetDetail,
                                   TranscoderTrainRequest, TranscoderTrainStarted)

router = APIRouter(prefix="/api/transcoders", tags=["transcoders"])


def _set(rec: TranscoderSetRecord) -> dict[str, Any]:
    return {"id": rec.id, "name": rec.name, "model_id": rec.model_id, "scan": rec.scan, "layers": rec.layers,
            "architecture": rec.architecture, "d_tc": rec.d_tc, "skip": rec.skip, "source": rec.source,
            "run_id": rec.run_id, "created_at": rec.created_at, "metrics": rec.metrics}


def _run(rec: RunRecord) -> TranscoderRun:
    return TranscoderRun(id=rec.id, model_id=rec.model_id, status=rec.status, step=rec.step, tokens_seen=rec.tokens_seen,
                         total_tokens=rec.config.get("total_tokens", 0), config=rec.config, metrics=rec.metrics,
                         error=rec.error, created_at=rec.created_at, updated_at=rec.updated_at)


def _detail(state: StateDep, set_id: str) -> TranscoderSetDetail:
    rec = state.transcoders.get(set_id)
    members = [TranscoderMember(sae_id=m.id, layer=m.layer, hook_name=m.hook_name, d_tc=m.d_sae, metrics=m.metrics)
               for m in state.transcoders.members(set_id)]
    return TranscoderSetDetail(**_set(rec), members=members)


@router.post("/train", response_model=TranscoderTrainStarted, status_code=202, responses=ERRORS,
             summary="Train one transcoder per layer in a worker thread (progress on WS /ws); 409 while a run trains")
def train(req: TranscoderTrainRequest, state: StateDep) -> TranscoderTrainStarted:
    layers = list(range(state.require_model().n_layers)) if req.all else list(req.layers or [])
    fields = req.model_dump(exclude={"layers", "all"})
    try:
        cfg = TranscoderTrainingConfig(layers=layers, **fields)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return TranscoderTrainStarted(run_id=state.transcoder_training.start(cfg), status="queued")


@router.get("/runs", response_model=list[TranscoderRun], summary="Transcoder training runs, newest first")
def list_runs(state: StateDep) -> list[TranscoderRun]:
    return [_run(r) for r in state.transcoder_training.list()]


@router.get("/runs/{run_id}", response_model=TranscoderRun, responses=ERRORS, summary="One transcoder training run")
def get_run(run_id: str, state: StateDep) -> TranscoderRun:
    return _run(state.transcoder_training.get(run_id))


@router.post("/runs/{run_id}/cancel", response_model=TranscoderTrainStarted, status_code=202, responses=ERRORS,
             summary="Stop a transcoder run at its next step (nothing is registered)")
def cancel_run(run_id: str, state: StateDep) -> TranscoderTrainStarted:
    state.transcoder_training.cancel(run_id)
    return TranscoderTrainStarted(run_id=run_id, status="cancelling")


@router.get("", response_model=list[TranscoderSet], summary="Transcoder sets (trained and imported)")
def list_sets(state: StateDep) -> list[TranscoderSet]:
    return [TranscoderSet(**_set(r)) for r in state.transcoders.list()]


@router.post("/import", response_model=TranscoderSetDetail, status_code=201, responses=ERRORS,
             summary="Import a zipped circuit-tracer transcoder set (config.yaml + layer_i.safetensors) or SAELens "
                     "transcoder folder(s) (cfg.json + sae_weights.safetensors); safetensors only")
def import_set(file: UploadFile, state: StateDep, name: str | None = Form(None)) -> TranscoderSetDetail:
    data = file.file.read()
    default = (file.filename or "imported").rsplit("/", 1)[-1].removesuffix(".zip") or "imported"
    reg = state.transcoders.import_zip(data, name=name or default)
    return _detail(state, reg.set_id)


@router.get("/{set_id}", response_model=TranscoderSetDetail, responses=ERRORS,
            summary="One transcoder set with its members (each an SAE-registry entry whose features open as usual)")
def get_set(set_id: str, state: StateDep) -> TranscoderSetDetail:
    return _detail(state, set_id)


@router.get("/{set_id}/export", response_class=Response, responses={**ERRORS, 200: {
    "content": {"application/zip": {}}, "description": "Zip of the set."}},
    summary="Download a set: circuit-tracer's layout (ReLU/JumpReLU sets over layers 0..n-1) or SAELens folders")
def export_set(set_id: str, state: StateDep,
               format: Literal["circuit-tracer", "saelens"] = Query("circuit-tracer", description="Folder layout.")) -> Response:
    data = state.transcoders.export_circuit_tracer(set_id) if format == "circuit-tracer" else \
        state.transcoders.export_saelens(set_id)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{set_id}-{format}.zip"'})


@router.delete("/{set_id}", status_code=204, responses=ERRORS, response_class=Response,
               summary="Delete a set and its transcoders")
def delete_set(set_id: str, state: StateDep) -> Response:
    state.transcoders.delete(set_id)
    return Response(status_code=204)
