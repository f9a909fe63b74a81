"""Influence, pruning and graph scores on a hand-built graph whose influences are worked out by hand,
and (when circuit-tracer is importable) equality with circuit-tracer's own functions on a real graph."""
from __future__ import annotations

import importlib

import pytest
import torch

from interpretability_workbench.circuits.attribution import AttributionOptions, attribute
from interpretability_workbench.circuits.graph import AttributionGraph
from interpretability_workbench.circuits.prune import logit_weights, node_influence, normalize_matrix, prune_graph
from interpretability_workbench.circuits.scores import graph_scores
from interpretability_workbench.errors import Invalid

from .conftest import PROMPT_IDS


def circuit_tracer_module(name: str):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not installable next to transformers 5
        return None


# nodes: F0 (L0, pos1), F1 (L1, pos1), F2 (L1, pos1, feature 9); errors (layer, pos) for 2x2; T0, T1; L0, L1
F0, F1, F2 = 0, 1, 2
E00, E01, E10, E11 = 3, 4, 5, 6
T0, T1 = 7, 8
LA, LB = 9, 10


def hand_graph() -> AttributionGraph:
    adj = torch.zeros(11, 11)
    adj[LA, F1], adj[LA, E11] = 3.0, -1.0  # signs do not matter: influence uses |A|
    adj[LB, F2], adj[LB, T1] = 1.0, 1.0
    adj[F1, F0], adj[F1, T1] = 2.0, -2.0
    adj[F2, T0] = 1.0
    adj[F0, T1] = 0.5
    return AttributionGraph(
        input_ids=[0, 5], n_layers=2,
        active_features=torch.tensor([[0, 1, 3], [1, 1, 4], [1, 1, 9]]), activation_values=torch.tensor([1.0, 2.0, 0.5]),
        selected_features=torch.arange(3), adjacency=adj, logit_tokens=[11, 12],
        logit_probabilities=torch.tensor([0.7, 0.3]), scan="hand")


# wA: F1 .525, E11 .175, F2 .15, T1 .15; wA^2: F0 .2625, T1 .2625, T0 .15; wA^3: T1 .2625
EXPECTED = {F1: 0.525, E11: 0.175, F2: 0.15, T1: 0.675, F0: 0.2625, T0: 0.15}


def test_influence_matches_the_worked_example_and_the_closed_form():
    g = hand_graph()
    w = logit_weights(g)
    infl = node_influence(g.adjacency, w)
    expected = torch.zeros(11)
    for i, v in EXPECTED.items():
        expected[i] = v
    torch.testing.assert_close(infl, expected)
    a = normalize_matrix(g.adjacency)
    closed = w @ (torch.linalg.inv(torch.eye(11) - a) - torch.eye(11))
    torch.testing.assert_close(infl, closed, atol=1e-6, rtol=0)


def test_pruning_keeps_the_influential_nodes():
    g = hand_graph()
    # total 1.9375; sorted T1 .675, F1 .525, F0 .2625, E11 .175 -> 0.845 >= 0.8 at E11: F2 (.15) goes
    r = prune_graph(g, node_threshold=0.8, edge_threshold=0.98)
    assert r.node_mask.tolist() == [True, True, False, False, False, False, True, True, True, True, True]
    assert not r.edge_mask[:, F2].any() and not r.edge_mask[F2].any()
    assert r.edge_mask[LA, F1] and r.edge_mask[F1, F0] and r.edge_mask[F0, T1]
    assert r.cumulative_scores[T1] == pytest.approx(0.675 / 1.9375)
    assert r.cumulative_scores[E11] == pytest.approx(1.6375 / 1.9375)
    # a tighter threshold keeps T1 and F1 only (0.619 >= 0.5): F0 is dropped, F1 still has an input (T1)
    r = prune_graph(g, node_threshold=0.5, edge_threshold=0.98)
    assert r.node_mask[:3].tolist() == [False, True, False] and not r.node_mask[E11]
    assert r.node_mask[T0:].all()
    # a harsh edge threshold: every kept feature still has a kept input and a kept output
    r = prune_graph(g, node_threshold=0.8, edge_threshold=0.3)
    assert 1 <= int(r.edge_mask.sum()) < 6
    for i in range(3):
        if r.node_mask[i]:
            assert r.edge_mask[i].any() and r.edge_mask[:, i].any()
    assert r.node_mask[T0:].all()  # tokens and logits always stay
    with pytest.raises(Invalid):
        prune_graph(g, node_threshold=1.5)


def test_scores_match_the_worked_example():
    s = graph_scores(hand_graph())
    assert s.replacement == pytest.approx(0.825 / 1.0)  # tokens .825, errors .175
    # completeness: LA's inputs are 1/4 error; everything else error-free; weights infl + w
    assert s.completeness == pytest.approx((2.9375 - 0.25 * 0.7) / 2.9375)


def test_a_perfect_reconstruction_scores_one():
    g = hand_graph()
    g.adjacency[LA, E11] = 0.0
    s = graph_scores(g)
    assert s.replacement == pytest.approx(1.0) and s.completeness == pytest.approx(1.0)


def test_same_masks_and_scores_as_circuit_tracer(tiny_lm, transcoders):
    ct_graph = circuit_tracer_module("circuit_tracer.graph")
    if ct_graph is None:
        pytest.skip("circuit-tracer is not importable here (it pins transformers<=4.57)")
    from circuit_tracer.attribution.targets import LogitTarget
    from circuit_tracer.utils.tl_nnsight_mapping import UnifiedConfig

    g = attribute(tiny_lm.model, transcoders, PROMPT_IDS, options=AttributionOptions(max_feature_nodes=30))
    cfg = UnifiedConfig(n_layers=g.n_layers, d_model=tiny_lm.d_model, d_head=16, n_heads=4, d_mlp=128,
                        d_vocab=tiny_lm.vocab_size, tokenizer_name="none", model_name="tiny",
                        original_architecture="LlamaForCausalLM")
    theirs = ct_graph.Graph(input_string="", input_tokens=torch.tensor(g.input_ids), active_features=g.active_features,
                            adjacency_matrix=g.adjacency, cfg=cfg, selected_features=g.selected_features,
                            activation_values=g.activation_values,
                            logit_targets=[LogitTarget("", t) for t in g.logit_tokens],
                            logit_probabilities=g.logit_probabilities, scan="tiny")
    for nt, et in [(0.8, 0.98), (0.5, 0.9)]:
        ours = prune_graph(g, nt, et)
        ref = ct_graph.prune_graph(theirs, nt, et)
        assert torch.equal(ours.node_mask, ref.node_mask) and torch.equal(ours.edge_mask, ref.edge_mask)
        torch.testing.assert_close(ours.cumulative_scores, ref.cumulative_scores)
    rep, comp = ct_graph.compute_graph_scores(theirs)
    s = graph_scores(g)
    assert s.replacement == pytest.approx(rep, abs=1e-6) and s.completeness == pytest.approx(comp, abs=1e-6)
