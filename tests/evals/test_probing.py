"""k-sparse probing: a planted separable direction and a latent aligned with it; random labels stay at chance;
the token tasks are labelled as the text says; the full pipeline on the tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from interpretability_workbench.activations.corpus import load_texts
from interpretability_workbench.errors import BadRequest
from interpretability_workbench.evals.probes import encode_live, stratified_split
from interpretability_workbench.evals.sparse_probing import SparseProbingConfig, probe_task, sparse_probing
from interpretability_workbench.evals.tasks import (build_token_tasks, first_letter_prompts, first_letter_words,
                                                    sample_balanced)
from interpretability_workbench.sae.config import SAEConfig
from interpretability_workbench.sae.model import SparseAutoencoder


def planted_sae(d: int, v: torch.Tensor, d_sae: int = 64, k: int = 4) -> SparseAutoencoder:
    """Random TopK SAE whose latent 7 reads and writes ``v`` (with a large gain so it is always selected
    when ``x . v > 0``)."""
    sae = SparseAutoencoder(SAEConfig(d_in=d, d_sae=d_sae, k=k, apply_b_dec_to_input=False))
    sae.reset_parameters(seed=2)
    with torch.no_grad():
        sae.W_dec[7] = v
        sae.W_enc[:, 7] = 10 * v
    return sae


def test_planted_direction_is_found_by_one_latent() -> None:
    g = torch.Generator().manual_seed(0)
    d, n = 32, 600
    v = torch.randn(d, generator=g)
    v /= v.norm()
    y = np.repeat([1, 0], n // 2)
    x = torch.randn(n, d, generator=g)
    x -= (x @ v)[:, None] * v  # remove the v component, then plant a clear margin along v
    x += torch.from_numpy(np.where(y == 1, 1.0, -1.0)).float()[:, None] * (0.5 + torch.rand(n, 1, generator=g)) * v
    r = probe_task("planted", x, y, planted_sae(d, v), ks=(1, 2, 5))
    assert r.raw_accuracy > 0.98
    assert r.top_latents[0] == 7 and r.k_accuracy[1] > 0.98
    assert all(0.0 <= a <= 1.0 for a in r.k_accuracy.values())
    assert r.n_train + r.n_test == n and r.n_test == 120
    assert r.to_dict()["k_accuracy"]["1"] == r.k_accuracy[1]


def test_random_labels_stay_near_chance() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(800, 32, generator=g)
    y = np.random.default_rng(1).permutation(np.repeat([1, 0], 400))
    v = torch.randn(32, generator=g)
    r = probe_task("noise", x, y, planted_sae(32, v / v.norm()), ks=(1, 5))
    assert abs(r.raw_accuracy - 0.5) < 0.12 and abs(r.k_accuracy[1] - 0.5) < 0.12


def test_encode_live_matches_dense_encoding() -> None:
    sae = planted_sae(16, torch.nn.functional.normalize(torch.randn(16), dim=0))
    x = torch.randn(300, 16)
    live = encode_live(sae, x, batch=64)
    with torch.no_grad():
        dense = sae.encode(x).double()
    assert live.z.shape[1] == int((dense > 0).any(0).sum())
    torch.testing.assert_close(torch.from_numpy(live.z), dense[:, torch.from_numpy(live.latents)])
    dead = [i for i in range(64) if i not in set(live.latents.tolist())]
    assert float(dense[:, dead].abs().sum()) == 0.0


def test_stratified_split_keeps_every_label_in_both_parts() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 2)
    s = stratified_split(labels, 0.3, seed=0)
    assert sorted(np.concatenate([s.train, s.test]).tolist()) == list(range(15))
    for lab in (0, 1, 2):
        assert (labels[s.test] == lab).any() and (labels[s.train] == lab).any()
    assert np.array_equal(stratified_split(labels, 0.3, seed=0).test, s.test)


def test_token_task_labels(tiny_tokenizer_dir) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    text = "Call the function (with Some args) here.\n>>> print(x)\nDone now"
    data = build_token_tasks(tok, [text], context_size=128)
    ids = data.input_ids[0][data.attention_mask[0].bool()].tolist()
    assert ids[0] == tok.bos_token_id
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    def visible(a: int, b: int) -> int:  # a token's first character that is not a space (its start if none)
        c = a
        while c < b and text[c] == " ":
            c += 1
        return c if c < b else a

    def line_of(c: int) -> str:  # the line holding character c (a newline ends its line)
        start = text.rfind("\n", 0, c) + 1
        end = text.find("\n", start)
        return text[start: end if end >= 0 else len(text)]
    for name, expect in (
        ("inside_parentheses", lambda a, b: int(text[:a].count("(") > text[:a].count(")"))),
        ("doctest_code", lambda a, b: int(line_of(visible(a, b)).lstrip().startswith(">>>"))),
    ):
        got = data.labels[name][0, 1: len(ids)].tolist()
        want = [expect(*o) for o in offsets]
        assert got == want, name
    cap = data.labels["capitalized_word"][0, 1: len(ids)].tolist()
    pieces = [text[a:b] for a, b in offsets]
    for piece, lab in zip(pieces, cap):
        w = piece.lstrip()
        if lab == 1:
            assert w[:1].isupper()
        elif lab == 0:
            assert w[:1].islower()
        else:
            assert not w[:1].isalpha() or piece[:1].isalpha()  # unlabelled: no word start in this token
    words = [p.strip() for p, lab in zip(pieces, cap) if lab == 1]
    assert any(w.startswith("C") for w in words) and any(w.startswith("S") for w in words)
    assert int(data.labels["inside_parentheses"][0, 0]) == -1  # BOS/position 0 never labelled
    with pytest.raises(BadRequest):
        build_token_tasks(tok, [text], tasks=("nope",))


def test_sample_balanced() -> None:
    lab = torch.tensor([[-1, 1, 0, 0, 0, 1, 0], [-1, 0, 0, 1, -1, -1, -1]], dtype=torch.int8)
    s = sample_balanced(lab, 10, seed=0)
    assert (s.y == 1).sum() == (s.y == 0).sum() == 3
    assert all(int(lab[d, p]) == y for d, p, y in zip(s.doc.tolist(), s.pos.tolist(), s.y.tolist()))


def test_first_letter_words_and_prompts(tiny_tokenizer_dir) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    w = first_letter_words(tok)
    assert len(w.words) > 20
    for word, tid, letter in zip(w.words, w.token_ids, w.letters):
        assert word[0] == " " and word[1:].isalpha() and tok.decode([tid]) == word
        assert "abcdefghijklmnopqrstuvwxyz"[letter] == word[1].lower()
    capped = first_letter_words(tok, max_per_letter=2)
    assert np.bincount(capped.letters).max() <= 2
    pr = first_letter_prompts(tok, w, n_examples=3)
    assert len(pr.kept) > 0.8 * len(w.words)
    for row, mask, pos, i in zip(pr.input_ids, pr.attention_mask, pr.positions, pr.kept):
        assert int(row[int(pos)]) == w.token_ids[i]  # the activation is read on the word's own token
        text = tok.decode(row[1: int(mask.sum())])
        assert text.count("has the first letter:") == 4 and text.endswith(w.words[i] + " has the first letter:")


def test_sparse_probing_on_the_tiny_model(tiny_lm) -> None:
    texts = load_texts(None)[-200:]
    sae = SparseAutoencoder(SAEConfig(d_in=tiny_lm.d_model, d_sae=256, k=8, hook_name="blocks.1.hook_resid_post"))
    sae.reset_parameters(seed=0)
    cfg = SparseProbingConfig(max_docs=200, max_per_class=150, ks=(1, 2, 5, 10))
    res = sparse_probing(tiny_lm, sae, texts, cfg)
    assert {t.task for t in res.tasks} | set(res.skipped) == set(cfg.tasks)
    assert len(res.tasks) == 3
    for t in res.tasks:
        assert 0.0 <= t.raw_accuracy <= 1.0 and 0.0 <= t.sae_all_accuracy <= 1.0
        assert set(t.k_accuracy) == {1, 2, 5, 10} and all(0.0 <= a <= 1.0 for a in t.k_accuracy.values())
        assert len(t.top_latents) == 10 and len(set(t.top_latents)) == 10 and t.n_test > 0
    caps = next(t for t in res.tasks if t.task == "capitalized_word")
    assert caps.raw_accuracy > 0.6  # token identity is in the residual stream, even of a random model
    d = res.to_dict()
    assert set(d["mean_k_accuracy"]) == {"1", "2", "5", "10"}
