"""GPT-2 (LayerNorm, Conv1D, tied unembedding) and GPT-NeoX (parallel residual): the replacement model
reproduces the logits, and every edge equals the change measured by a forward with the patterns, norm
scales and MLPs held at their clean values (a forward substitution, independent of the backward pass)."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.circuits.attribution import attribute
from interpretability_workbench.circuits.intervene import validate_graph
from interpretability_workbench.circuits.replacement import active_features, record_prompt, replacement_logits
from interpretability_workbench.model.loader import load_model

from .conftest import PROMPT_IDS, make_transcoder


@pytest.fixture(scope="module", params=["gpt2", "neox"])
def family_lm(request, tiny_model_dirs):
    return load_model(str(tiny_model_dirs[request.param]), device="cpu", dtype="float32")


def test_family_graph_edges_match_frozen_forwards(family_lm):
    model = family_lm.model
    tcs = [make_transcoder(family_lm, layer, arch=arch, skip=layer == 1, seed=10 + layer)
           for layer, arch in enumerate(["topk", "jumprelu", "topk"])]
    rec = record_prompt(model, tcs, PROMPT_IDS)
    feats = active_features(rec, tcs, zero_first_position=False)
    with torch.no_grad():
        original = model(input_ids=PROMPT_IDS[None]).logits
    torch.testing.assert_close(rec.last_logits, original[0, -1], atol=1e-5, rtol=0)
    torch.testing.assert_close(replacement_logits(model, tcs, PROMPT_IDS[None], errors=feats.errors), original,
                               atol=1e-5, rtol=0)
    graph = attribute(model, tcs, PROMPT_IDS)
    assert graph.n_features > 10
    report = validate_graph(model, tcs, graph, n_edges=10, freeze="direct")
    assert max(abs(c.predicted) for c in report.checks) > 1e-3
    for c in report.checks:
        assert c.measured == pytest.approx(c.predicted, abs=1e-4)
