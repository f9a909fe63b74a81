"""What the Circuits page draws: the pruned graph as plain JSON values.

Nodes keep their index in the full graph (``node``), so a pruned view at any threshold names the same node
the same way, and every REST call about a node (intervene, send to the Patch console) takes that index.
Feature nodes carry the SAE-registry id of their layer's transcoder (``sae_id``) and its label, so the page
can fetch top contexts and open the feature page.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from .graph import AttributionGraph
from .prune import PruneResult, logit_weights, node_influence

LabelLookup = Callable[[str, list[int]], Mapping[int, str | None]]
"""``labels(sae_id, feature_indices) -> {index: label}``."""


def _token(graph: AttributionGraph, pos: int) -> str:
    return graph.prompt_tokens[pos] if pos < len(graph.prompt_tokens) else str(graph.input_ids[pos])


def graph_view(graph: AttributionGraph, pruned: PruneResult, member_ids: Mapping[int, str], labels: LabelLookup,
               *, max_edges: int = 2000) -> dict[str, Any]:
    """Nodes and edges kept by ``pruned`` (tokens and logits always), the ``max_edges`` strongest edges."""
    kept = pruned.node_mask.nonzero().flatten().tolist()
    infl = node_influence(graph.adjacency, logit_weights(graph))
    cumulative = pruned.cumulative_scores
    feats_by_layer: dict[int, list[int]] = {}
    nodes: list[dict[str, Any]] = []
    for i in kept:
        ref = graph.node(i)
        n: dict[str, Any] = {"node": i, "kind": ref.kind, "layer": ref.layer, "pos": ref.pos, "feature": None,
                             "token": None, "activation": None, "probability": None, "influence": float(infl[i]),
                             "cumulative": float(cumulative[i]), "label": None, "sae_id": None}
        if ref.kind == "feature":
            n.update(feature=ref.index, activation=float(graph.activation_values[graph.selected_features[i]]),
                     sae_id=member_ids.get(ref.layer), token=_token(graph, ref.pos))
            feats_by_layer.setdefault(ref.layer, []).append(ref.index)
        elif ref.kind == "error":
            n.update(token=_token(graph, ref.pos))
        elif ref.kind == "token":
            n.update(token=_token(graph, ref.pos), feature=ref.index)
        else:
            k = i - graph.logit_start
            n.update(token=graph.logit_strings[k] if k < len(graph.logit_strings) else str(ref.index),
                     feature=ref.index, probability=float(graph.logit_probabilities[k]))
        nodes.append(n)
    names: dict[tuple[int, int], str | None] = {}
    for layer, idx in feats_by_layer.items():
        sid = member_ids.get(layer)
        if sid is not None:
            for f, lab in labels(sid, sorted(set(idx))).items():
                names[(layer, f)] = lab
    for n in nodes:
        if n["kind"] == "feature":
            n["label"] = names.get((n["layer"], n["feature"]))
    dst, src = pruned.edge_mask.nonzero(as_tuple=True)
    w = graph.adjacency[dst, src]
    if w.numel() > max_edges:
        top = w.abs().topk(max_edges).indices
        dst, src, w = dst[top], src[top], w[top]
    keep = set(kept)
    edges = [{"source": s, "target": t, "weight": float(x)}
             for s, t, x in zip(src.tolist(), dst.tolist(), w.tolist()) if s in keep and t in keep]
    return {"n_layers": graph.n_layers, "prompt_tokens": [_token(graph, p) for p in range(graph.n_pos)],
            "input_ids": graph.input_ids, "n_nodes_total": graph.n_nodes, "n_features_total": graph.n_features,
            "nodes": nodes, "edges": edges}


def predicted_logit_changes(graph: AttributionGraph, changes: Mapping[int, float]) -> torch.Tensor:
    """Direct effect on every logit node ``[n_logits]`` of changing feature nodes' activations by the given
    amounts ``{node: new - old}`` (edges are linear in the source's activation)."""
    out = torch.zeros(graph.n_logits)
    acts = graph.feature_activations()
    for node, delta in changes.items():
        a = float(acts[node])
        if a != 0.0:
            out += graph.adjacency[graph.logit_start:, node] * (delta / a)
    return out
