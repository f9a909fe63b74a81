"""Influence-based pruning, computed as circuit-tracer computes it.

``A`` = the adjacency with absolute values, each row normalised to sum 1 (a node's inputs as fractions).
With ``w`` = the logit probabilities on the logit nodes (0 elsewhere), the influence of every node on the
output is ``w (A + A^2 + A^3 + ...) = w ((I - A)^-1 - I)``, summed as a series that ends because the
graph is acyclic (``A`` is nilpotent). Nodes are kept, most influential first, until they hold
``node_threshold`` of the total influence (tokens and logits always stay). Edges of the kept subgraph
are scored ``A'[t, s] * (influence(t) + w(t))`` with ``A'`` the renormalised pruned matrix, and kept until
``edge_threshold`` of the total score. Then feature and error nodes without kept outgoing edges, and
feature nodes without kept incoming edges, are dropped, repeatedly until nothing changes.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import Invalid
from .graph import AttributionGraph


def normalize_matrix(matrix: Tensor) -> Tensor:
    """``|M|`` with rows scaled to sum 1 (all-zero rows stay zero)."""
    m = matrix.abs()
    return m / m.sum(dim=1, keepdim=True).clamp(min=1e-10)


def influence(normalized: Tensor, logit_weights: Tensor, max_iter: int = 1000) -> Tensor:
    """``w A + w A^2 + ...`` for ``normalized [n n]`` and ``logit_weights [n]``."""
    current = logit_weights @ normalized
    total = current.clone()
    it = 0
    while bool(current.any()):
        if it >= max_iter:
            raise Invalid(f"influence did not converge in {max_iter} iterations: the graph has a cycle")
        current = current @ normalized
        total += current
        it += 1
    return total


def node_influence(adjacency: Tensor, logit_weights: Tensor) -> Tensor:
    return influence(normalize_matrix(adjacency), logit_weights)


def edge_influence(pruned: Tensor, logit_weights: Tensor) -> Tensor:
    """``[n n]`` score of each edge: its share of its target's inputs times the target's total influence."""
    normalized = normalize_matrix(pruned)
    infl = influence(normalized, logit_weights) + logit_weights
    return normalized * infl[:, None]


def find_threshold(scores: Tensor, threshold: float) -> Tensor:
    """The score at which the largest scores first reach ``threshold`` of the total."""
    ordered = torch.sort(scores, descending=True).values
    cumulative = torch.cumsum(ordered, dim=0) / torch.sum(ordered)
    i = int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype)).item())
    return ordered[min(i, ordered.shape[0] - 1)]


def logit_weights(graph: AttributionGraph) -> Tensor:
    w = torch.zeros(graph.n_nodes, dtype=graph.adjacency.dtype)
    w[graph.logit_start:] = graph.logit_probabilities.to(w.dtype)
    return w


class PruneResult(NamedTuple):
    node_mask: Tensor
    """``[n_nodes]`` nodes kept."""
    edge_mask: Tensor
    """``[n_nodes n_nodes]`` edges kept (rows = targets)."""
    cumulative_scores: Tensor
    """``[n_nodes]`` share of total influence held by the nodes at least as influential as this one."""


def prune_graph(graph: AttributionGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> PruneResult:
    if not 0.0 <= node_threshold <= 1.0 or not 0.0 <= edge_threshold <= 1.0:
        raise Invalid("node_threshold and edge_threshold must be between 0 and 1")
    adj = graph.adjacency
    n_features, n_keep_tail = graph.n_features, graph.n_pos + graph.n_logits
    w = logit_weights(graph)
    infl = node_influence(adj, w)
    node_mask = infl >= find_threshold(infl, node_threshold)
    node_mask[-n_keep_tail:] = True  # tokens and logits stay

    pruned = adj.clone()
    pruned[~node_mask] = 0
    pruned[:, ~node_mask] = 0
    scores = edge_influence(pruned, w)
    edge_mask = scores >= find_threshold(scores.flatten(), edge_threshold)

    inner = slice(0, adj.shape[0] - n_keep_tail)  # features and errors
    old = node_mask.clone()
    node_mask[inner] &= edge_mask[:, inner].any(0)  # they must feed something
    node_mask[:n_features] &= edge_mask[:n_features].any(1)  # features must be fed
    while not torch.equal(node_mask, old):
        old.copy_(node_mask)
        edge_mask[~node_mask] = False
        edge_mask[:, ~node_mask] = False
        node_mask[inner] &= edge_mask[:, inner].any(0)
        node_mask[:n_features] &= edge_mask[:n_features].any(1)

    ordered, order = torch.sort(infl, descending=True)
    cumulative = torch.zeros_like(infl)
    cumulative[order] = torch.cumsum(ordered, dim=0) / torch.sum(ordered)
    return PruneResult(node_mask, edge_mask, cumulative)


def partial_influences(edge_rows: Tensor, logit_probs: Tensor, row_to_node: Tensor, max_iter: int = 128) -> Tensor:
    """Influence ``[n_nodes]`` on the logits through the rows computed so far (``edge_rows [rows n_nodes]``,
    row ``i`` belonging to node ``row_to_node[i]``; the logit nodes are the last columns): the ranking
    that picks which features get rows next."""
    normalized = edge_rows.abs()
    normalized = normalized / normalized.sum(dim=1, keepdim=True).clamp(min=1e-8)
    total = torch.zeros(edge_rows.shape[1], dtype=normalized.dtype)
    prod = torch.zeros(edge_rows.shape[1], dtype=normalized.dtype)
    prod[-logit_probs.shape[0]:] = logit_probs.to(prod.dtype)
    for _ in range(max_iter):
        prod = prod[row_to_node] @ normalized
        if not bool(prod.any()):
            break
        total += prod
    else:
        raise Invalid(f"influence did not converge in {max_iter} iterations")
    return total
