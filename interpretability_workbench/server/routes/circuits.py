"""/api/circuits: prompt attribution graphs over transcoders (background jobs; progress as WS job events)."""
from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Query, Response

from ...circuits.service import CircuitSettings, NodeSetting
from ...errors import Invalid
from ...store.circuits import CircuitRecord
from ..deps import StateDep
from ..routes.patches import to_wire
from ..schemas.circuits import (Circuit, CircuitDetail, CircuitRequest, CircuitStarted, InterveneRequest,
                                InterveneResponse, NodePatchRequest, NodePatchResponse)
from ..schemas.common import ERRORS

router = APIRouter(prefix="/api/circuits", tags=["circuits"])


def _fields(rec: CircuitRecord) -> dict[str, Any]:
    return {"id": rec.id, "model_id": rec.model_id, "set_id": rec.set_id, "prompt": rec.prompt, "status": rec.status,
            "settings": rec.settings, "summary": rec.summary or None, "error": rec.error,
            "created_at": rec.created_at, "updated_at": rec.updated_at}


@router.post("", response_model=CircuitStarted, status_code=202, responses=ERRORS,
             summary="Trace a prompt's attribution graph in the background (progress: WS job events, kind circuit)")
def start(req: CircuitRequest, state: StateDep) -> CircuitStarted:
    try:
        settings = CircuitSettings(**req.model_dump(exclude={"prompt"}))
    except ValueError as e:
        raise Invalid(str(e)) from None
    rec = state.circuits.start(req.prompt, settings)
    return CircuitStarted(id=rec.id, status=rec.status)


@router.get("", response_model=list[Circuit], summary="Traced circuits, newest first")
def list_circuits(state: StateDep) -> list[Circuit]:
    return [Circuit(**_fields(r)) for r in state.circuits.list()]


@router.get("/{circuit_id}", response_model=CircuitDetail, responses=ERRORS,
            summary="A circuit: prompt, settings, scores, edge check and (when done) its graph pruned at the given thresholds")
def get_circuit(circuit_id: str, state: StateDep,
                node_threshold: float | None = Query(None, ge=0, le=1, description="Node share kept (default: the stored one)."),
                edge_threshold: float | None = Query(None, ge=0, le=1, description="Edge share kept (default: the stored one)."),
                max_edges: int = Query(2000, ge=1, le=50_000, description="Strongest edges returned.")) -> CircuitDetail:
    rec = state.circuits.get(circuit_id)
    view = state.circuits.view(circuit_id, node_threshold, edge_threshold, max_edges)
    return CircuitDetail(**_fields(rec), graph=view["graph"])


@router.post("/{circuit_id}/cancel", response_model=CircuitStarted, status_code=202, responses=ERRORS,
             summary="Stop a tracing job between backward batches")
def cancel(circuit_id: str, state: StateDep) -> CircuitStarted:
    state.circuits.cancel(circuit_id)
    return CircuitStarted(id=circuit_id, status="cancelling")


@router.delete("/{circuit_id}", status_code=204, response_class=Response, responses=ERRORS,
               summary="Delete a circuit and its graph")
def delete(circuit_id: str, state: StateDep) -> Response:
    state.circuits.delete(circuit_id)
    return Response(status_code=204)


@router.post("/{circuit_id}/intervene", response_model=InterveneResponse, responses=ERRORS,
             summary="Set feature nodes (one, or a supernode's members together) in the real model: the next-token "
                     "distribution before and after, and the graph's prediction for its logit nodes")
def intervene(circuit_id: str, req: InterveneRequest, state: StateDep) -> InterveneResponse:
    out = state.circuits.intervene(circuit_id, [NodeSetting(n.node, n.value) for n in req.nodes], top_k=req.top_k)
    return InterveneResponse(**out)


@router.post("/{circuit_id}/nodes/{node}/patch", response_model=NodePatchResponse, status_code=201, responses=ERRORS,
             summary="Send a feature node to the Patch console: a clamp (exact transcoder feature edit) or steer patch")
def node_patch(circuit_id: str, node: int, req: NodePatchRequest, state: StateDep) -> NodePatchResponse:
    cfg, exact, note = state.circuits.send_to_patch(circuit_id, node, mode=req.mode, value=req.value, name=req.name)
    return NodePatchResponse(patch=to_wire(state, cfg), exact=exact, note=note)


@router.get("/{circuit_id}/export", response_model=dict[str, Any], responses=ERRORS,
            summary="The graph as JSON: circuit-tracer's / Neuronpedia's graph file, or the workbench's full graph")
def export(circuit_id: str, state: StateDep, response: Response,
           format: Literal["circuit-tracer", "workbench"] = Query("circuit-tracer", description="JSON layout."),
           node_threshold: float | None = Query(None, ge=0, le=1, description="Node share kept."),
           edge_threshold: float | None = Query(None, ge=0, le=1, description="Edge share kept.")) -> dict[str, Any]:
    out = state.circuits.export(circuit_id, format, node_threshold, edge_threshold)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{circuit_id}-{format}")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}.json"'
    return out
