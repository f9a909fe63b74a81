"""Features a researcher can read: special tokens never examples, whitespace features flagged and filtered, a
consistency sort score, labels that say what they are, byte pieces shown as <0xNN>, the analysis budget."""
from __future__ import annotations

import math

import torch

from interpretability_workbench.activations.corpus import load_texts, make_contexts
from interpretability_workbench.features.labels import auto_label, consistency, is_degenerate, whitespace_marks
from interpretability_workbench.features.service import excluded_token_ids
from interpretability_workbench.model.token_text import piece_bytes, render_bytes, token_texts
from interpretability_workbench.store.features import AnalysedFeature

from .conftest import N_TOKENS


# token text -----------------------------------------------------------------------------------
def test_render_bytes_keeps_whole_characters_and_marks_partial_bytes():
    assert render_bytes("a“b".encode()) == "a“b"
    assert render_bytes(b"\xe2\x80") == "<0xE2><0x80>"
    assert render_bytes(b" \xc3") == " <0xC3>"
    assert render_bytes(b"\xbcn") == "<0xBC>n"
    assert render_bytes(b"x\xff\xe2\x80\x9cy") == "x<0xFF>“y"
    assert piece_bytes("<0xe2>") == b"\xe2"
    assert piece_bytes("ĠâĢľ") == " “".encode()
    assert piece_bytes("▁hello") is None  # not a byte-level piece


def test_token_texts_show_byte_pieces_exactly(state):
    tok = state.lm.tokenizer
    text = "x “quoted” ünï 🙂"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    shown = token_texts(tok, ids)
    assert all("\ufffd" not in s for s in shown)
    # the pieces' bytes, read back from the <0xNN> marks, are the text's bytes
    out = b""
    for s in shown:
        parts = s.split("<0x")
        out += parts[0].encode()
        for p in parts[1:]:
            out += bytes([int(p[:2], 16)]) + p[3:].encode()
    assert out == text.encode()
    assert any("<0x" in s for s in shown)  # the tiny vocabulary splits these characters into bytes
    plain = [i for i, s in zip(ids, shown) if "<0x" not in s]
    assert [tok.decode([i]) for i in plain] == [s for s in shown if "<0x" not in s]


# labels, degenerate, consistency ------------------------------------------------------------------
def test_labels_say_what_they_are():
    assert auto_label([" return"] * 6 + [" def"] * 4) == "top token: 'return'"
    assert auto_label(["(", "[", "{", "(", "["]) == "top tokens: '(' '[' '{'"
    assert auto_label([" ", "\n", "  "], [" def", " class"]) == "promotes: 'def' 'class'"
    assert auto_label([]) == "dead"
    assert whitespace_marks("\n\t ") == "↵⇥␣" and whitespace_marks(" " * 9) == "␣" * 6 + "…"


def test_degenerate_and_consistency():
    assert is_degenerate([" ", "\n\n", "  "]) and is_degenerate([" ", "x"]) and not is_degenerate([" ", "x", "y"])
    assert not is_degenerate([])
    assert consistency([" ", "\n"]) == 0.0 and consistency([]) == 0.0
    assert consistency([" return"] * 10) == 1.0
    assert consistency([f"w{i}" for i in range(10)]) == 0.0  # no two top contexts agree
    # half whitespace, the other half two words evenly over 8 peaks: 0.5 × (1 − ln 2 / ln 8) = 1/3
    assert math.isclose(consistency([" "] * 4 + ["a", "b", "a", "b"]), 0.5 * (1 - math.log(2) / math.log(8)), abs_tol=1e-4)
    # keys: case and surrounding spaces do not make tokens distinct
    assert consistency([" Return", "return", "RETURN "]) == 1.0
    assert consistency(["x"]) == 1.0


# analysis: excluded positions ---------------------------------------------------------------------
def test_special_tokens_are_never_counted_or_peaks(state, analysed):
    sae_id, _ = analysed
    lm = state.lm
    excluded = excluded_token_ids(lm.tokenizer)
    assert lm.tokenizer.eos_token_id in excluded and lm.tokenizer.bos_token_id in excluded
    contexts = state.features.analysis_contexts(lm, analysed[1], n_tokens=N_TOKENS)
    n_special = int(torch.isin(contexts[:, 1:], torch.tensor(excluded)).sum())
    assert n_special > 0  # documents are separated by EOS: the test can fail
    summary = state.features.status(sae_id)["summary"]
    assert summary["excluded_tokens"] == n_special
    assert summary["n_tokens"] == contexts[:, 1:].numel() - n_special
    for row in state.features.repo.iter_rows(sae_id):
        for c in row.data["top_contexts"]:
            assert c["token_ids"][c["position"] - c["start"]] not in excluded
            for tid, a in zip(c["token_ids"], c["activations"]):
                if tid in excluded:
                    assert a == 0.0
        for b in row.data["quantiles"]:
            for ex in b["examples"]:
                assert int(contexts[ex["context"], ex["position"]]) not in excluded
        assert all(t["id"] not in excluded for t in row.top_tokens)


def test_rows_carry_consistency_and_degenerate_from_their_peaks(state, analysed):
    sae_id, _ = analysed
    vocab = state.features.vocab(state.lm)
    for row in list(state.features.repo.iter_rows(sae_id))[:40]:
        peaks = [vocab[c["token_ids"][c["position"] - c["start"]]] for c in row.data["top_contexts"]]
        assert row.consistency == consistency(peaks)
        assert row.degenerate == is_degenerate(peaks)


def test_hide_degenerate_filter_and_consistency_sort(client, state, make_sae):
    sae_id, _ = make_sae(seed=3, d_sae=16)
    rows = []
    for i in range(16):
        degen = i % 3 == 0
        # consistency ties (i // 2) are broken by density, the commoner first
        rows.append(AnalysedFeature(i, "x", 0.01 * i, 1.0, 0.5, [], {}, consistency=0.0 if degen else (i // 2) / 8,
                                    degenerate=degen))
    state.features.repo.upsert_analysed(sae_id, rows)
    base = f"/api/saes/{sae_id}/features"
    every = client.get(base, params={"limit": 500}).json()
    assert every["total"] == 16
    kept = client.get(base, params={"limit": 500, "hide_degenerate": True, "sort": "-consistency"}).json()
    assert kept["total"] == 10
    assert [f["index"] for f in kept["items"]] == [i for i in range(15, -1, -1) if i % 3]
    assert all(f["degenerate"] is False and f["consistency"] == (f["index"] // 2) / 8 for f in kept["items"])


def test_consistency_ties_show_each_top_token_once_before_repeats(client, state, make_sae):
    sae_id, _ = make_sae(seed=4, d_sae=16)
    tokens = [".", ".", ".", "the", ".", "was", "the", ","]
    rows = [AnalysedFeature(i, "x", 0.1 - 0.01 * i, 1.0, 0.5, [{"token": t, "id": i, "count": 5, "key": t}], {},
                            consistency=1.0, degenerate=False) for i, t in enumerate(tokens)]
    rows.append(AnalysedFeature(8, "x", 0.5, 1.0, 0.5, [{"token": "x", "id": 8, "count": 3, "key": "x"}], {},
                                consistency=0.5, degenerate=False))
    state.features.repo.upsert_analysed(sae_id, rows)
    got = client.get(f"/api/saes/{sae_id}/features", params={"sort": "-consistency", "limit": 50}).json()["items"]
    # densest feature of each token first ('.', 'the', 'was', ','), then each token's second ('.', 'the'), then
    # the third and fourth '.', then lower scores
    assert [f["index"] for f in got] == [0, 3, 5, 7, 1, 6, 2, 4, 8]
    page = client.get(f"/api/saes/{sae_id}/features", params={"sort": "-consistency", "limit": 3, "offset": 3}).json()
    assert [f["index"] for f in page["items"]] == [7, 1, 6]


# analysis budget ----------------------------------------------------------------------------------
def test_default_budget_is_the_whole_corpus_and_configurable(state, make_sae):
    lm = state.lm
    _, sae = make_sae(seed=5, d_sae=8)
    whole = make_contexts(lm.tokenizer, load_texts(None), sae.cfg.context_size)
    assert torch.equal(state.features.analysis_contexts(lm, sae), whole)
    first = state.features.analysis_contexts(lm, sae, n_tokens=630)
    assert torch.equal(first, whole[: 630 // (sae.cfg.context_size - 1)])
    old = state.features.analysis_tokens
    try:
        state.features.analysis_tokens = 5 * (sae.cfg.context_size - 1)
        assert torch.equal(state.features.analysis_contexts(lm, sae), whole[:5])
    finally:
        state.features.analysis_tokens = old
