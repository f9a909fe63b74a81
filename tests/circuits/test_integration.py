"""The embedded default model (SmolLM2-135M: 30 layers, grouped-query attention, tied unembedding) with
random transcoders on every layer."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.circuits.attribution import AttributionOptions, attribute
from interpretability_workbench.circuits.intervene import validate_graph
from interpretability_workbench.circuits.prune import prune_graph
from interpretability_workbench.circuits.replacement import active_features, record_prompt, replacement_logits
from interpretability_workbench.circuits.scores import graph_scores
from interpretability_workbench.circuits.transcoder import Transcoder, TranscoderConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_default_model_graph(default_lm):
    model = default_lm.model
    tcs = []
    for layer in range(default_lm.n_layers):
        tc = Transcoder(TranscoderConfig(d_in=default_lm.d_model, d_tc=512, k=4, layer=layer, skip=layer % 2 == 1))
        tc.reset_parameters(seed=layer)
        with torch.no_grad():
            tc.W_dec.mul_(0.05)
            if tc.W_skip is not None:
                tc.W_skip.normal_(std=1e-3)
        tcs.append(tc)
    ids = default_lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"][0]
    rec = record_prompt(model, tcs, ids)
    feats = active_features(rec, tcs, zero_first_position=False)
    with torch.no_grad():
        original = model(input_ids=ids[None]).logits
    torch.testing.assert_close(replacement_logits(model, tcs, ids[None], errors=feats.errors), original,
                               atol=2e-4, rtol=1e-4)
    graph = attribute(model, tcs, ids, tokenizer=default_lm.tokenizer,
                      options=AttributionOptions(max_feature_nodes=64, batch_size=32))
    assert graph.n_features == 64 and graph.extra["n_active_features"] > 64
    assert graph.logit_strings and abs(float(graph.logit_probabilities.sum())) <= 1.0
    report = validate_graph(model, tcs, graph, n_edges=6, freeze="direct")
    for c in report.checks:
        assert c.measured == pytest.approx(c.predicted, abs=1e-3, rel=1e-3)
    scores = graph_scores(graph)
    assert 0.0 <= scores.replacement <= 1.0 and 0.0 <= scores.completeness <= 1.0
    assert prune_graph(graph).node_mask[-graph.n_logits:].all()
