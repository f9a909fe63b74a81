"""/api/training: start, list, inspect, cancel and resume SAE training runs (progress on WS /ws)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...errors import Invalid
from ...model.hook_names import expand
from ...store.runs import RunRecord
from ...training.config import TrainingConfig
from ...training.sweep import SweepSpec, legacy_members
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.training import (MemberResult, MetricPoint, RunDetail, RunSummary, TrainingRequest,
                                TrainingStarted)

router = APIRouter(prefix="/api/training", tags=["training"])


def _config(req: TrainingRequest) -> TrainingConfig:
    if req.hook_name is not None:
        hooks = [req.hook_name]
    else:
        layers = [req.layer] if req.layer is not None else list(req.layers or [])
        try:
            hooks = expand(layers, req.hook)
        except ValueError as e:
            raise Invalid(str(e)) from None
    fields = req.model_dump(exclude={"hook_name", "layer", "layers", "hook"})
    try:
        fields["sweep"] = SweepSpec.from_dict(fields.get("sweep"))
        return TrainingConfig(hook_names=hooks, **fields)
    except ValueError as e:
        raise Invalid(str(e)) from None


def _summary_fields(rec: RunRecord) -> dict[str, Any]:
    cfg = rec.config
    return {
        "id": rec.id, "model_id": rec.model_id, "status": rec.status,
        "hook_names": cfg.get("hook_names", []), "architecture": cfg.get("architecture", ""),
        "step": rec.step, "tokens_seen": rec.tokens_seen, "total_tokens": cfg.get("total_tokens", 0),
        "created_at": rec.created_at, "updated_at": rec.updated_at, "error": rec.error, "sae_ids": rec.sae_ids,
        "n_members": _n_members(cfg),
    }


def _n_members(cfg: dict[str, Any]) -> int:
    try:
        return len(TrainingConfig.from_dict(cfg).members)
    except (TypeError, ValueError):
        return len(cfg.get("hook_names", [])) or 1


@router.post("", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="Start training SAE(s) in a worker thread; 409 while another run trains")
def start_training(req: TrainingRequest, state: StateDep) -> TrainingStarted:
    run_id = state.training.start(_config(req))
    return TrainingStarted(run_id=run_id, status="queued", notes=state.training.notes(run_id))


@router.get("", response_model=list[RunSummary], summary="Training runs, newest first")
def list_runs(state: StateDep) -> list[RunSummary]:
    return [RunSummary(**_summary_fields(r)) for r in state.training.list()]


@router.get("/{run_id}", response_model=RunDetail, responses=ERRORS,
            summary="A run: status, config, latest and final metrics, metric history, SAE ids")
def get_run(run_id: str, state: StateDep) -> RunDetail:
    rec = state.training.get(run_id)
    hist = [MetricPoint(step=h.step, tokens=h.tokens, data=h.data) for h in state.training.history(run_id)]
    m = rec.metrics or {}
    return RunDetail(**_summary_fields(rec), config=rec.config, metrics=rec.metrics,
                     members=[MemberResult(**{k: v for k, v in p.items() if k in MemberResult.model_fields})
                              for p in legacy_members(rec.metrics, rec.config)],
                     train_tokens=m.get("train_tokens"), held_out_tokens=m.get("held_out_tokens"),
                     passes=m.get("passes"), notes=state.training.notes(run_id),
                     latest=hist[-1].data if hist else None, history=hist, checkpoint_path=rec.checkpoint_path)


@router.post("/{run_id}/cancel", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="Stop a run at its next step (checkpointed; resumable)")
def cancel_run(run_id: str, state: StateDep) -> TrainingStarted:
    state.training.cancel(run_id)
    return TrainingStarted(run_id=run_id, status="cancelling")


@router.post("/{run_id}/resume", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="Continue an interrupted, cancelled or failed run from its last checkpoint")
def resume_run(run_id: str, state: StateDep) -> TrainingStarted:
    return TrainingStarted(run_id=state.training.resume(run_id), status="queued")
