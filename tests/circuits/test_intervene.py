"""Interventions on the model versus the graph's predictions."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.circuits.attribution import attribute
from interpretability_workbench.circuits.intervene import (Intervention, Target, intervention_effects,
                                                           strongest_edges, validate_graph)
from interpretability_workbench.circuits.prune import prune_graph
from interpretability_workbench.errors import Invalid

from .conftest import PROMPT_IDS


@pytest.fixture
def graph(tiny_lm, transcoders):
    return attribute(tiny_lm.model, transcoders, PROMPT_IDS)


def test_direct_interventions_reproduce_the_edges(tiny_lm, transcoders, graph):
    report = validate_graph(tiny_lm.model, transcoders, graph, n_edges=12, freeze="direct", batch_size=5)
    assert len(report.checks) == 12
    for c in report.checks:
        assert c.measured == pytest.approx(c.predicted, abs=1e-4)
        assert graph.node(c.source).kind == "feature" and graph.node(c.target).kind in ("feature", "logit")
    assert report.pearson == pytest.approx(1.0, abs=1e-4) and report.sign_agreement == 1.0


def test_steering_scales_the_effect_linearly_in_the_linearised_model(tiny_lm, transcoders, graph):
    (t, s), = strongest_edges(graph, 1)
    src, tgt = graph.node(s), graph.node(t)
    a = float(graph.activation_values[graph.selected_features[s]])
    target = Target("logit" if tgt.kind == "logit" else "feature", tgt.layer, tgt.pos, tgt.index)
    ivs = [Intervention(src.layer, src.pos, src.index, v) for v in (0.0, 2 * a, 3 * a)]
    got = intervention_effects(tiny_lm.model, transcoders, PROMPT_IDS, ivs, [target], freeze="direct")[:, 0]
    w = float(graph.adjacency[t, s])
    torch.testing.assert_close(got, torch.tensor([-w, w, 2 * w]), atol=1e-4, rtol=1e-4)


def test_ablating_a_strong_edge_moves_the_real_model_as_predicted(tiny_lm, transcoders, graph):
    for freeze in ("none", "attention"):
        report = validate_graph(tiny_lm.model, transcoders, graph, n_edges=8, freeze=freeze,
                                prune=prune_graph(graph))
        strongest = report.checks[0]
        assert abs(strongest.predicted) == pytest.approx(float(graph.adjacency[strongest.target, strongest.source].abs()))
        assert strongest.measured * strongest.predicted > 0  # same direction in the real model
        assert report.sign_agreement is not None and report.sign_agreement >= 0.75
        assert report.pearson is not None and report.pearson > 0.5


def test_interventions_are_checked(tiny_lm, transcoders):
    with pytest.raises(Invalid, match="outside"):
        intervention_effects(tiny_lm.model, transcoders, PROMPT_IDS, [Intervention(0, 99, 0, 0.0)], [])
    with pytest.raises(Invalid, match="freeze"):
        intervention_effects(tiny_lm.model, transcoders, PROMPT_IDS, [], [], freeze="all")  # type: ignore[arg-type]
    with pytest.raises(Invalid, match="kind"):
        intervention_effects(tiny_lm.model, transcoders, PROMPT_IDS, [], [Target("error", 0, 1, 0)])
