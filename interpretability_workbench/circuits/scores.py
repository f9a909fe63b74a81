"""How much of a graph's computation its features explain (circuit-tracer's ``compute_graph_scores``,
the definitions of Anthropic's "Circuit Tracing" methods paper).

With ``A`` the row-normalised absolute adjacency and ``infl`` the node influences on the logits
(``prune.influence``):

- **replacement score** = influence of the token nodes / (influence of token nodes + of error nodes):
  the share of the end-to-end token -> logit influence that passes through features only. Strict: any
  error on a path counts against it.
- **completeness score** = sum over nodes of (1 - share of the node's inputs coming from error nodes),
  weighted by ``infl + w`` (w = logit probabilities): partial credit for nodes mostly explained by
  features and tokens.

Both are 1 when the transcoders reconstruct every MLP exactly.
"""
from __future__ import annotations

from typing import NamedTuple

from .graph import AttributionGraph
from .prune import influence, logit_weights, normalize_matrix


class GraphScores(NamedTuple):
    replacement: float
    """Share of token-to-logit influence through features rather than error nodes (0..1)."""
    completeness: float
    """Influence-weighted share of node inputs that do not come from error nodes (0..1)."""


def graph_scores(graph: AttributionGraph) -> GraphScores:
    w = logit_weights(graph)
    normalized = normalize_matrix(graph.adjacency)
    infl = influence(normalized, w)
    errors = slice(graph.error_start, graph.token_start)
    token_infl = infl[graph.token_start:graph.logit_start].sum()
    error_infl = infl[errors].sum()
    denom = token_infl + error_infl
    replacement = float(token_infl / denom) if float(denom) > 0 else 0.0
    non_error = 1 - normalized[:, errors].sum(dim=-1)
    out_infl = infl + w
    completeness = float((non_error * out_infl).sum() / out_infl.sum())
    return GraphScores(replacement, completeness)
