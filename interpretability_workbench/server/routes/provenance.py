"""/api/provenance: a feature's provenance graph (plain ``def`` routes: torch runs in the threadpool)."""
from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from ...provenance.types import GraphOptions
from ..deps import StateDep
from ..schemas.common import ERRORS
from ..schemas.provenance import ProvenanceResponse, ProvenanceUpstream, UpstreamSAEOut, UpstreamTrainRequest

router = APIRouter(prefix="/api/provenance", tags=["provenance"])


class _Params:
    """The query both routes take."""

    def __init__(
        self,
        sae_id: Annotated[str, Query(description="Target SAE id.")],
        feature: Annotated[int, Query(ge=0, description="Target feature index.")],
        depth: Annotated[int, Query(ge=1, le=12, description="Upstream SAE layers to traverse.")] = 2,
        prompt: Annotated[str | None, Query(description="Prompt for attribution and validation; "
                                                        "without it edges are virtual weights.")] = None,
        top_k: Annotated[int, Query(ge=1, le=100, description="Incoming edges kept per node.")] = 5,
        threshold: Annotated[float, Query(ge=0, description="Drop edges with |weight| at or below this.")] = 0.0,
        max_nodes: Annotated[int, Query(ge=1, le=500, description="Feature-node budget.")] = 50,
        max_edges: Annotated[int, Query(ge=0, le=5000, description="Feature-edge budget.")] = 200,
        validate: Annotated[int, Query(ge=0, le=100, description="Strongest edges to check by ablation.")] = 8,
        n_logits: Annotated[int, Query(ge=0, le=50, description="Top ± tokens of the direct logit effect.")] = 5,
        upstream: Annotated[str | None, Query(description="Comma-separated upstream SAE ids (default: the "
                                                          "nearest registered SAE per lower layer).")] = None,
    ) -> None:
        self.sae_id, self.feature, self.depth, self.prompt = sae_id, feature, depth, prompt
        self.upstream = [s.strip() for s in (upstream or "").split(",") if s.strip()] or None
        self.options = GraphOptions(top_k=top_k, threshold=threshold, max_nodes=max_nodes, max_edges=max_edges,
                                    validate=validate, n_logits=n_logits)


def _build(state: StateDep, p: _Params) -> ProvenanceResponse:
    g = state.provenance.build(p.sae_id, p.feature, depth=p.depth, prompt=p.prompt, upstream=p.upstream,
                               options=p.options)
    return ProvenanceResponse(**g.to_dict())


@router.get("/upstream", response_model=ProvenanceUpstream, responses=ERRORS,
            summary="Which SAEs a provenance graph of this SAE's features would trace through, which layers lack "
                    "one, and a training request for them")
def upstream(state: StateDep,
             sae_id: Annotated[str, Query(description="Target SAE id.")],
             depth: Annotated[int, Query(ge=1, le=12, description="Upstream layers wanted.")] = 2) -> ProvenanceUpstream:
    u = state.provenance.upstream(sae_id, depth)
    return ProvenanceUpstream(sae_id=u.sae_id, layer=u.layer, hook=u.hook,
                              available=[UpstreamSAEOut(**a._asdict()) for a in u.available],
                              missing_layers=u.missing_layers, suggested_layers=u.suggested_layers,
                              train=UpstreamTrainRequest(**u.train))


@router.get("", response_model=ProvenanceResponse, responses=ERRORS,
            summary="Provenance graph of a feature: upstream features (virtual weights, prompt attribution), "
                    "ablation-checked edges, downstream logits")
def provenance(state: StateDep, p: Annotated[_Params, Depends()]) -> ProvenanceResponse:
    return _build(state, p)


@router.get("/export", response_model=ProvenanceResponse, responses=ERRORS,
            summary="The same graph as a downloadable JSON file")
def export(state: StateDep, p: Annotated[_Params, Depends()], response: Response) -> ProvenanceResponse:
    g = _build(state, p)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"provenance-{p.sae_id}-{p.feature}")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}.json"'
    return g
