"""Graph JSON for circuit-tracer's local viewer and Neuronpedia's graph viewer.

The schema is circuit-tracer's ``frontend.graph_models.Model`` (what ``create_graph_files`` writes and its
``serve`` reads): ``{metadata, qParams, nodes, links}`` with

- ``metadata``: slug, scan, transcoder_list, prompt_tokens, prompt, node_threshold, schema_version;
- ``qParams``: pinnedIds, supernodes, linkType, clickedId, sg_pos;
- ``nodes``: node_id, feature, layer (a string), ctx_idx, feature_type, token_prob, is_target_logit,
  run_idx, reverse_ctx_idx, jsNodeId, clerp, influence, activation. Ids and types by kind —
  feature ``{layer}_{feature}_{pos}`` ("cross layer transcoder", ``feature`` = Cantor pairing of layer and
  index), error ``0_{layer}_{pos}`` ("mlp reconstruction error"), token ``E_{token}_{pos}`` ("embedding",
  layer "E"), logit ``{n_layers+1}_{token}_{pos}`` ("logit", clerp ``Output "tok" (p=0.123)``);
- ``links``: source, target (node ids), weight.

circuit-tracer's error id ``0_{layer}_{pos}`` equals the id of feature ``layer`` at layer 0 and position
``pos``; viewers key nodes by id, so such an error node gets the id ``0_{layer}_{pos}_err`` here.

Only the pruned graph is written: kept nodes that have a kept edge, plus every token and logit node.
``write_graph_files`` lays the files out for the viewer: ``{slug}.json`` and ``graph-metadata.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import Invalid
from ..store.artifacts import atomic_write_bytes
from .graph import AttributionGraph
from .prune import PruneResult, prune_graph

SCHEMA_VERSION = 1
METADATA_FILE = "graph-metadata.json"


def cantor_pairing(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _node(graph: AttributionGraph, i: int, influence: float) -> dict[str, Any]:
    ref = graph.node(i)
    base = {"token_prob": 0.0, "is_target_logit": False, "run_idx": 0, "reverse_ctx_idx": 0, "clerp": "",
            "influence": influence, "activation": None}
    if ref.kind == "feature":
        act = float(graph.activation_values[graph.selected_features[i]])
        return {**base, "node_id": f"{ref.layer}_{ref.index}_{ref.pos}", "feature": cantor_pairing(ref.layer, ref.index),
                "layer": str(ref.layer), "ctx_idx": ref.pos, "feature_type": "cross layer transcoder",
                "jsNodeId": f"{ref.layer}_{ref.index}-0", "activation": act}
    if ref.kind == "error":
        return {**base, "node_id": f"0_{ref.layer}_{ref.pos}", "feature": -1, "layer": str(ref.layer),
                "ctx_idx": ref.pos, "feature_type": "mlp reconstruction error", "jsNodeId": f"{ref.layer}_{ref.pos}-0"}
    if ref.kind == "token":
        return {**base, "node_id": f"E_{ref.index}_{ref.pos}", "feature": ref.pos, "layer": "E", "ctx_idx": ref.pos,
                "feature_type": "embedding", "jsNodeId": f"E_{ref.index}-{ref.pos}"}
    k = i - graph.logit_start
    prob = float(graph.logit_probabilities[k])
    token = graph.logit_strings[k] if k < len(graph.logit_strings) else str(ref.index)
    layer = str(graph.n_layers + 1)
    return {**base, "node_id": f"{layer}_{ref.index}_{ref.pos}", "feature": ref.index, "layer": layer,
            "ctx_idx": ref.pos, "feature_type": "logit", "token_prob": prob, "is_target_logit": k == 0,
            "jsNodeId": f"L_{ref.index}-{ref.pos}", "clerp": f'Output "{token}" (p={prob:.3f})', "influence": None}


def to_circuit_tracer_json(graph: AttributionGraph, *, slug: str, prune: PruneResult | None = None,
                           node_threshold: float = 0.8, edge_threshold: float = 0.98, scan: str | None = None,
                           prompt: str | None = None) -> dict[str, Any]:
    """The pruned graph as circuit-tracer's / Neuronpedia's graph JSON (a plain dict)."""
    if not slug or any(c in slug for c in "/\\") or slug.startswith("."):
        raise Invalid(f"slug {slug!r} must be a plain file name")
    scan = scan or graph.scan
    if not scan:
        raise Invalid("give a scan (the transcoder set's identifier): viewers use it to find feature pages")
    pr = prune if prune is not None else prune_graph(graph, node_threshold, edge_threshold)
    tokens = graph.prompt_tokens or [str(t) for t in graph.input_ids]
    scores = pr.cumulative_scores.tolist()
    kept = pr.node_mask.nonzero().flatten().tolist()
    nodes = {i: _node(graph, i, float(scores[i])) for i in kept}
    feature_ids = {n["node_id"] for n in nodes.values() if n["feature_type"] == "cross layer transcoder"}
    for n in nodes.values():
        if n["feature_type"] == "mlp reconstruction error" and n["node_id"] in feature_ids:
            n["node_id"] += "_err"
    dst, src = pr.edge_mask.nonzero(as_tuple=True)
    weights = graph.adjacency[dst, src].tolist()
    links = [{"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": w}
             for s, t, w in zip(src.tolist(), dst.tolist(), weights) if s in nodes and t in nodes]
    connected = {e["source"] for e in links} | {e["target"] for e in links}
    used = [n for n in nodes.values() if n["node_id"] in connected or n["feature_type"] in ("embedding", "logit")]
    return {
        "metadata": {"slug": slug, "scan": scan, "transcoder_list": [], "prompt_tokens": tokens,
                     "prompt": prompt if prompt is not None else "".join(graph.prompt_tokens),
                     "node_threshold": node_threshold, "schema_version": SCHEMA_VERSION},
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": used,
        "links": links,
    }


def write_graph_files(payload: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``{slug}.json`` and add its metadata to ``graph-metadata.json`` (the viewer's index)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = payload["metadata"]["slug"]
    path = out_dir / f"{slug}.json"
    atomic_write_bytes(path, json.dumps(payload).encode())
    index_path = out_dir / METADATA_FILE
    index = {"graphs": []}
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError:
            raise Invalid(f"{index_path} is not valid JSON; move it away and export again") from None
    index["graphs"] = [g for g in index.get("graphs", []) if g.get("slug") != slug] + [payload["metadata"]]
    atomic_write_bytes(index_path, json.dumps(index, indent=2).encode())
    return path


def to_workbench_json(graph: AttributionGraph, prune: PruneResult | None = None) -> dict[str, Any]:
    """The workbench's own JSON: the full graph (``AttributionGraph.to_dict``) plus, when given, the
    pruning masks as node indices and (target, source) pairs."""
    out = graph.to_dict()
    if prune is not None:
        out["pruned"] = {
            "nodes": prune.node_mask.nonzero().flatten().tolist(),
            "edges": prune.edge_mask.nonzero().tolist(),
            "cumulative_scores": prune.cumulative_scores.tolist(),
        }
    return out

