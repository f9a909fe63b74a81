"""Attribution graphs on the tiny Llama with hand-built transcoders, checked against an independent
plain-torch implementation of the linearised replacement model (tests/circuits/conftest.py)."""
from __future__ import annotations

import pytest
import torch

from interpretability_workbench.circuits.attribution import AttributionOptions, attribute, logit_targets
from interpretability_workbench.circuits.replacement import (active_features, layer_transcoders, record_prompt,
                                                             replacement_logits)
from interpretability_workbench.errors import Invalid

from .conftest import PROMPT_IDS, Perturbation, make_transcoder, reference_clean, reference_linearized


def test_reference_model_matches_transformers(tiny_lm):
    clean = reference_clean(tiny_lm.model, PROMPT_IDS)
    with torch.no_grad():
        hf = tiny_lm.model(input_ids=PROMPT_IDS[None]).logits[0]
    torch.testing.assert_close(clean.logits, hf, atol=1e-5, rtol=1e-5)


def test_replacement_with_all_error_nodes_reproduces_the_logits(tiny_lm, transcoders):
    model = tiny_lm.model
    rec = record_prompt(model, transcoders, PROMPT_IDS)
    feats = active_features(rec, transcoders, zero_first_position=False)
    with torch.no_grad():
        original = model(input_ids=PROMPT_IDS[None]).logits
    # the recorded forward (patterns and norm scales detached, MLPs frozen) has the model's own values
    torch.testing.assert_close(rec.last_logits, original[0, -1], atol=1e-5, rtol=0)
    replaced = replacement_logits(model, transcoders, PROMPT_IDS[None], errors=feats.errors)
    torch.testing.assert_close(replaced, original, atol=1e-5, rtol=0)
    # the errors carry real information: without them the (random) transcoders change the output
    bare = replacement_logits(model, transcoders, PROMPT_IDS[None])
    assert float((bare - original).abs().max()) > 1e-2
    # and the error is exactly MLP output minus transcoder output, computed independently
    clean = reference_clean(model, PROMPT_IDS)
    for layer, tc in enumerate(transcoders):
        with torch.no_grad():
            expected = clean.mlp_out[layer] - tc(clean.x_in[layer]).y_hat
        torch.testing.assert_close(feats.errors[layer], expected, atol=1e-5, rtol=0)


def _reference_adjacency(model, graph, transcoders) -> torch.Tensor:
    """Every (target, source) entry by perturbing the source in the reference linearised model: adding the
    source's vector once more changes a linear readout by exactly the edge weight."""
    clean = reference_clean(model, PROMPT_IDS)
    n_layers, n_pos, d = graph.n_layers, graph.n_pos, clean.embeds.shape[-1]
    start = 1 if graph.zero_first_position else 0
    rows = graph.feature_rows().tolist()
    acts = graph.feature_activations()
    n_src = graph.logit_start
    pert = Perturbation(torch.zeros(n_src + 1, n_pos, d), torch.zeros(n_src + 1, n_layers, n_pos, d))
    for i, ((layer, pos, f), a) in enumerate(zip(rows, acts.tolist())):
        pert.mlp[i, layer, pos] = a * transcoders[layer].W_dec[f].detach()
    for layer, tc in enumerate(transcoders):
        with torch.no_grad():
            err = clean.mlp_out[layer] - (tc(clean.x_in[layer]).y_hat if tc is not None else 0)
        for pos in range(start, n_pos):
            pert.mlp[graph.error_index(layer, pos), layer, pos] = err[pos]
    for pos in range(n_pos):
        pert.embed[graph.token_start + pos, pos] = clean.embeds[pos]
    x_in, final = reference_linearized(model, clean, transcoders, pert)  # row n_src: no perturbation
    w_u = model.lm_head.weight.detach()
    readouts = []
    for layer, pos, f in rows:
        readouts.append(x_in[:, layer, pos] @ transcoders[layer].W_enc[:, f].detach())
    for tok in graph.logit_tokens:
        readouts.append(final[:, -1] @ (w_u[tok] - w_u.mean(0)))
    r = torch.stack(readouts, 0)  # [targets S+1]
    return r[:, :n_src] - r[:, n_src:]


def _target_rows(graph) -> list[int]:
    return list(range(graph.n_features)) + list(range(graph.logit_start, graph.n_nodes))


def test_every_edge_equals_the_finite_difference_in_the_linearised_model(tiny_lm, transcoders):
    model = tiny_lm.model
    graph = attribute(model, transcoders, PROMPT_IDS, options=AttributionOptions(batch_size=7))
    assert graph.n_features == graph.active_features.shape[0] > 20
    assert graph.n_logits >= 1
    expected = _reference_adjacency(model, graph, transcoders)
    got = graph.adjacency[_target_rows(graph)][:, :graph.logit_start]
    assert float(expected.abs().max()) > 0.05  # the check has substance
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    # structure: error and token rows are empty, no edges into logit columns, position 0 is a constant
    assert not graph.adjacency[graph.error_start:graph.logit_start].any()
    assert not graph.adjacency[:, graph.logit_start:].any()
    assert int(graph.feature_rows()[:, 1].min()) >= 1
    # causality: a feature at position p receives nothing from later positions
    rows = graph.feature_rows()
    later = rows[None, :, 1] > rows[:, None, 1]
    assert not graph.adjacency[:graph.n_features, :graph.n_features][later].any()


@pytest.mark.parametrize("buckets", [2, 3, 8])
def test_recordings_cut_by_position_give_the_same_rows(tiny_lm, transcoders, buckets):
    """Rows of targets at early positions backpropagated through a recording of the prompt's prefix only
    (causal attention: nothing later matters) equal those through the whole prompt."""
    one = attribute(tiny_lm.model, transcoders, PROMPT_IDS, options=AttributionOptions(batch_size=6, position_buckets=1))
    cut = attribute(tiny_lm.model, transcoders, PROMPT_IDS,
                    options=AttributionOptions(batch_size=6, position_buckets=buckets))
    assert float(one.adjacency.abs().max()) > 0.05
    torch.testing.assert_close(cut.adjacency, one.adjacency, atol=2e-5, rtol=1e-4)


def test_without_position_zeroing_every_position_has_nodes(tiny_lm, transcoders):
    graph = attribute(tiny_lm.model, transcoders, PROMPT_IDS,
                      options=AttributionOptions(zero_first_position=False, batch_size=64))
    assert int(graph.feature_rows()[:, 1].min()) == 0
    expected = _reference_adjacency(tiny_lm.model, graph, transcoders)
    torch.testing.assert_close(graph.adjacency[_target_rows(graph)][:, :graph.logit_start], expected,
                               atol=1e-4, rtol=0)


def test_max_feature_nodes_keeps_the_most_influential_rows_unchanged(tiny_lm, transcoders):
    model = tiny_lm.model
    full = attribute(model, transcoders, PROMPT_IDS, options=AttributionOptions(batch_size=5))
    part = attribute(model, transcoders, PROMPT_IDS,
                     options=AttributionOptions(batch_size=5, max_feature_nodes=12, update_interval=1))
    assert part.n_features == 12 and part.active_features.shape[0] == full.n_features
    sel = part.selected_features
    keep = torch.cat([sel, torch.arange(full.n_features, full.n_nodes)])
    torch.testing.assert_close(part.adjacency[:12], full.adjacency[sel][:, keep])
    torch.testing.assert_close(part.adjacency[-part.n_logits:], full.adjacency[-full.n_logits:][:, keep])


def test_logit_targets_follow_cumulative_probability():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.16, 0.03, 0.01]))
    unembed = torch.randn(5, 3)
    t = logit_targets(logits, unembed, max_n_logits=10, desired_prob=0.95)
    assert t.tokens.tolist() == [0, 1, 2]  # 0.5 + 0.3 + 0.16 reaches 0.95
    torch.testing.assert_close(t.vectors, unembed[[0, 1, 2]] - unembed.mean(0))
    assert logit_targets(logits, unembed, max_n_logits=2).tokens.tolist() == [0, 1]
    assert logit_targets(logits, unembed, desired_prob=0.5).tokens.tolist() == [0]
    # a named target joins after the most probable ones, with its own probability; one already there is not repeated
    t = logit_targets(logits, unembed, desired_prob=0.5, extra=[4, 0])
    assert t.tokens.tolist() == [0, 4]
    torch.testing.assert_close(t.probabilities, torch.tensor([0.5, 0.01]))
    torch.testing.assert_close(t.vectors, unembed[[0, 4]] - unembed.mean(0))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        logit_targets(logits, unembed, extra=[5])


def test_transcoders_are_checked_against_the_model(tiny_lm, transcoders):
    model = tiny_lm.model
    with pytest.raises(Invalid, match="trained on layer 1"):
        layer_transcoders(model, {0: transcoders[1]})
    with pytest.raises(Invalid, match="layers 0..2"):
        layer_transcoders(model, {5: make_transcoder(tiny_lm, 5)})
    with pytest.raises(Invalid, match="no transcoders"):
        layer_transcoders(model, [None, None, None])


def test_a_missing_transcoder_makes_the_whole_mlp_an_error_node(tiny_lm, transcoders):
    tcs = [transcoders[0], None, transcoders[2]]
    graph = attribute(tiny_lm.model, tcs, PROMPT_IDS)
    assert set(graph.feature_rows()[:, 0].tolist()) == {0, 2}
    expected = _reference_adjacency(tiny_lm.model, graph, tcs)
    torch.testing.assert_close(graph.adjacency[_target_rows(graph)][:, :graph.logit_start], expected,
                               atol=1e-4, rtol=0)
