"""Example selection: stored windows -> activating examples, decile split, negatives from a context pool
(checked against dense SAE activations computed independently through Hugging Face's hidden states)."""
from __future__ import annotations

import random

import pytest
import torch

from interpretability_workbench.features.explain import (
    ContextPool,
    Example,
    FeatureExamples,
    examples_from_row,
    feature_rng,
    gather_feature_examples,
    hard_negative_examples,
    non_activating_examples,
    pick_negatives,
    split_activating,
)
from interpretability_workbench.features.explain.examples import by_decile, decile

from .synth import word_feature


@pytest.fixture(scope="module")
def dense_acts(tiny_lm, tiny_sae, tiny_pool):
    """``[n ctx d_sae]`` activations of the pool's contexts, through HF's ``output_hidden_states`` and
    ``sae.encode`` (not the workbench's hooks or sparse encoder); position 0 zeroed."""
    with torch.no_grad():
        out = tiny_lm.model(tiny_pool.ids, output_hidden_states=True)
        x = out.hidden_states[2]  # after block 1 = blocks.1.hook_resid_post
        acts = tiny_sae.encode(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:2], -1)
    acts[:, 0] = 0
    return acts


def test_pool_matches_dense_activations(tiny_pool: ContextPool, dense_acts):
    n, T, d = dense_acts.shape
    assert (n, T, d) == (16, 32, tiny_pool.d_sae)
    for f in range(d):
        tok, val = tiny_pool.active(f)
        dense = dense_acts[:, :, f].reshape(-1)
        expect = dense.nonzero().squeeze(1)
        assert torch.equal(tok, expect), f
        torch.testing.assert_close(val, dense[expect], atol=1e-4, rtol=1e-4)
    row, start, w, f = 3, 5, 9, int(dense_acts[3, 5:14].sum(0).argmax())
    torch.testing.assert_close(torch.tensor(tiny_pool.window_activations(f, row, start, w)),
                               dense_acts[row, start:start + w, f], atol=1e-4, rtol=1e-4)
    assert tiny_pool.silent(f, row, start, w) is False


def test_pool_from_dense_equals_built_pool(tiny_pool: ContextPool, dense_acts, tiny_vocab):
    other = ContextPool.from_dense(tiny_pool.ids, dense_acts, tiny_vocab, tiny_pool.context_index)
    for f in (0, 7, 30):
        assert torch.equal(other.active(f)[0], tiny_pool.active(f)[0])


def test_examples_from_row_dedups_and_keeps_windows(tiny_analysis):
    row = next(r for r in tiny_analysis.rows if r["data_json"]["top_contexts"])
    data = row["data_json"]
    exs = examples_from_row(data)
    windows = data["top_contexts"] + [e for b in data["quantiles"] for e in b["examples"]]
    keys = {(w["context"], w["position"]) for w in windows if max(w["activations"]) > 0}
    assert len(exs) == len(keys) and len({(e.context, e.tokens[0], e.start) for e in exs}) <= len(keys)
    first = data["top_contexts"][0]
    assert exs[0].tokens == first["tokens"] and exs[0].activations == first["activations"]
    assert exs[0].start == first["start"] and exs[0].context == first["context"]


def test_decile_boundaries():
    def ex(v: float) -> Example:
        return Example([" a", " b"], [0.0, v])

    assert [decile(ex(v), 10.0) for v in (10.0, 9.99, 9.0, 1.01, 1.0, 0.5, 12.0)] == [9, 9, 8, 1, 0, 0, 9]
    assert [len(b) for b in by_decile([ex(10), ex(10), ex(0.1)], 10.0)] == [1] + [0] * 8 + [2]


def test_split_is_disjoint_covers_deciles_and_is_seeded():
    fe = word_feature(0, " cat", n_activating=20)  # peaks at 0.5, 1.0, ... 10: two examples per decile
    split = split_activating(fe.activating, fe.max_activation, n_explain=50, n_score=50, rng=random.Random(1))
    ids = lambda exs: {id(e) for e in exs}
    assert not ids(split.explain) & ids(split.score)
    assert ids(split.explain) | ids(split.score) == ids(fe.activating)
    for part in split:
        assert sorted(decile(e, 10.0) for e in part) == list(range(10))  # every decile, once each
    assert [e.max for e in split.explain] == sorted((e.max for e in split.explain), reverse=True)
    again = split_activating(fe.activating, fe.max_activation, n_explain=50, n_score=50, rng=random.Random(1))
    assert [e.tokens for e in again.explain] == [e.tokens for e in split.explain]


def test_split_caps_take_one_per_decile_highest_first():
    fe = word_feature(0, " cat", n_activating=40)  # four per decile
    split = split_activating(fe.activating, 10.0, n_explain=3, n_score=12, rng=random.Random(0))
    assert sorted(decile(e, 10.0) for e in split.explain) == [7, 8, 9]
    assert sorted(decile(e, 10.0) for e in split.score) == sorted(list(range(10)) + [8, 9])  # a round, then 9, 8


def test_split_shares_singleton_deciles():
    fe = word_feature(0, " cat", n_activating=5)  # deciles 1, 3, 5, 7, 9: one each
    split = split_activating(fe.activating, 10.0, n_explain=10, n_score=10, rng=random.Random(0))
    assert (len(split.explain), len(split.score)) == (3, 2)


def test_pick_negatives_mixes_hard_and_random():
    fe = word_feature(0, " cat", n_random=8, n_traps=2)
    negs = pick_negatives(fe, 6, random.Random(0))
    assert sum(any(t == " cats" for t in e.tokens) for e in negs) == 2 and len(negs) == 6
    assert len(pick_negatives(fe, 20, random.Random(0))) == 10  # all there are
    only_hard = FeatureExamples(0, 1.0, [], [], fe.hard_negatives)
    assert len(pick_negatives(only_hard, 2, random.Random(0))) == 2  # hard ones fill in for random ones


def test_feature_examples_validation():
    with pytest.raises(ValueError, match="non-zero"):
        FeatureExamples(0, 1.0, [], non_activating=[Example([" a"], [0.5])])
    with pytest.raises(ValueError, match="no positive"):
        FeatureExamples(0, 1.0, [Example([" a"], [0.0])])
    with pytest.raises(ValueError, match="activations"):
        Example([" a", " b"], [1.0])
    assert FeatureExamples(0, 1.0, [Example([" a"], [3.0])]).max_activation == 3.0


def test_non_activating_windows_are_silent(tiny_pool: ContextPool, dense_acts):
    f = int((dense_acts > 0).sum((0, 1)).argmax())  # the busiest feature: silence is hardest to find
    exs = non_activating_examples(tiny_pool, f, 8, 10, random.Random(0))
    assert exs and len({(e.context, e.start) for e in exs}) == len(exs)
    for e in exs:
        row = int((tiny_pool.context_index == e.context).nonzero())
        assert e.start >= 1 and len(e.tokens) == 10
        assert float(dense_acts[row, e.start:e.start + 10, f].abs().sum()) == 0.0
        assert e.tokens == [tiny_pool.vocab[i] for i in tiny_pool.ids[row, e.start:e.start + 10].tolist()]
    again = non_activating_examples(tiny_pool, f, 8, 10, random.Random(0))
    assert [(e.context, e.start) for e in again] == [(e.context, e.start) for e in exs]


def test_hard_negatives_come_from_coactive_features(tiny_pool: ContextPool, dense_acts):
    on = (dense_acts > 0).reshape(-1, dense_acts.shape[2]).float()  # [tokens d_sae]
    f = 5
    together = on[on[:, f] > 0].sum(0)
    together[f] = 0
    co = together.topk(4).indices.tolist()  # the features firing most often with f
    exs = hard_negative_examples(tiny_pool, f, co, 10, before=4, after=3, rng=random.Random(0))
    assert exs
    for e in exs:
        row = int((tiny_pool.context_index == e.context).nonzero())
        win = dense_acts[row, e.start:e.start + 8]
        assert float(win[:, f].abs().sum()) == 0.0  # this feature is silent throughout
        assert bool((win[:, co] > 0).any())  # a co-activating feature fires in it


def test_gather_from_stored_rows(tiny_analysis, tiny_pool, dense_acts):
    row = max(tiny_analysis.rows, key=lambda r: len(r["data_json"]["top_contexts"]))
    fe = gather_feature_examples(row["idx"], row["data_json"], row["max_act"], tiny_pool, n_non_activating=6,
                                 n_hard_negatives=6, window_before=6, window_after=3, seed=2)
    assert fe.index == row["idx"] and fe.activating == examples_from_row(row["data_json"])
    assert fe.non_activating and fe.hard_negatives
    width = len(fe.activating[0].tokens)
    assert all(len(e.tokens) == width for e in fe.non_activating + fe.hard_negatives)
    again = gather_feature_examples(row["idx"], row["data_json"], row["max_act"], tiny_pool, n_non_activating=6,
                                    n_hard_negatives=6, window_before=6, window_after=3, seed=2)
    assert again == fe
    assert feature_rng(2, 1, "x").random() == feature_rng(2, 1, "x").random() != feature_rng(2, 2, "x").random()
