"""The analysis reports what a fresh forward through the model and the SAE computes."""
from __future__ import annotations

import torch

from interpretability_workbench.events import AnalysisDone, AnalysisProgress
from interpretability_workbench.features.labels import clean_token
from interpretability_workbench.features.service import excluded_token_ids
from interpretability_workbench.model.hook_map import arch_for, get_module
from interpretability_workbench.model.hooks import run_with_cache

from .conftest import HOOK, N_TOKENS


def _fresh(lm, sae, contexts: torch.Tensor) -> torch.Tensor:
    """Feature activations ``[n_ctx pos d_sae]`` from a fresh forward and encode (position 0 and special
    tokens -> zeros: excluded positions)."""
    res = run_with_cache(lm.model, contexts, [sae.cfg.hook_name])
    f = sae.encode(res.cache[sae.cfg.hook_name].float())
    f[:, 0] = 0
    f[torch.isin(contexts, torch.tensor(excluded_token_ids(lm.tokenizer)))] = 0
    return f


def test_top_contexts_match_fresh_computation(state, analysed):
    sae_id, sae = analysed
    lm = state.lm
    contexts = state.features.analysis_contexts(lm, sae, n_tokens=N_TOKENS)
    rows = sorted(state.features.repo.iter_rows(sae_id), key=lambda r: -(r.density or 0))[:3]
    assert len(rows) == 3
    fresh_all = _fresh(lm, sae, contexts)
    for row in rows:
        f = row.idx
        tops = row.data["top_contexts"]
        assert tops and tops[0]["max"] == row.max_act
        assert [t["max"] for t in tops] == sorted((t["max"] for t in tops), reverse=True)
        for t in tops:
            fresh = fresh_all[t["context"], :, f]
            assert abs(float(fresh.max()) - t["max"]) < 1e-4
            assert abs(float(fresh[t["position"]]) - t["max"]) < 1e-4
            window = fresh[t["start"]: t["start"] + len(t["activations"])]
            torch.testing.assert_close(window, torch.tensor(t["activations"]), atol=1e-4, rtol=0)
            assert t["token_ids"] == contexts[t["context"], t["start"]: t["start"] + len(t["token_ids"])].tolist()
        for bucket in row.data["quantiles"]:
            for ex in bucket["examples"]:
                assert bucket["lo"] < ex["max"] <= bucket["hi"] + 1e-6
                assert abs(float(fresh_all[ex["context"], ex["position"], f]) - ex["max"]) < 1e-4


def test_density_histogram_and_coactivation_are_consistent(state, analysed):
    sae_id, sae = analysed
    status = state.features.status(sae_id)
    assert status["status"] == "done"
    n_tok = status["n_tokens"]
    assert n_tok + status["summary"]["excluded_tokens"] == N_TOKENS
    assert abs(status["summary"]["mean_l0"] - sae.cfg.k) < 1e-6  # topk with random weights: always k active
    for row in list(state.features.repo.iter_rows(sae_id))[:20]:
        hist = row.data["histogram"]
        assert sum(hist["counts"]) == round(row.density * n_tok)
        assert len(hist["edges"]) == len(hist["counts"]) + 1 or not hist["counts"]
        for c in row.data["coactive"] or []:
            assert c["index"] != row.idx and 0 < c["score"] <= 1


def test_planted_feature_found_on_its_token_with_exact_logit_effects(state, make_sae):
    lm = state.lm
    probe = make_sae(d_sae=8)[1]
    contexts = state.features.analysis_contexts(lm, probe, n_tokens=N_TOKENS)
    res = run_with_cache(lm.model, contexts, [HOOK])
    x = res.cache[HOOK][:, 1:].reshape(-1, lm.d_model)
    toks = contexts[:, 1:].reshape(-1)
    kept = ~torch.isin(toks, torch.tensor(excluded_token_ids(lm.tokenizer)))  # special tokens are not counted
    target = int(torch.bincount(toks[kept]).argmax())  # the most frequent token
    is_t = toks == target
    direction = x[is_t].mean(0) - x[~is_t].mean(0)
    direction /= direction.norm()
    proj = x @ direction
    bias = -float(proj[~is_t].max()) - 1e-3  # fires only where the residual looks like the target token's
    assert int((proj[is_t] + bias > 0).sum()) >= 10

    def plant(sae):
        sae.W_enc.zero_()
        sae.W_enc[:, 3] = direction
        sae.b_enc.fill_(-1e3)
        sae.b_enc[3] = bias
        sae.W_dec[3] = direction

    sae_id, sae = make_sae(architecture="standard", d_sae=16, edit=plant)
    events = []
    remove = state.bus.add_callback(events.append)
    state.features.analyze(sae_id, n_tokens=N_TOKENS)
    remove()
    assert any(isinstance(e, AnalysisProgress) and e.sae_id == sae_id for e in events)
    assert [e.status for e in events if isinstance(e, AnalysisDone)] == ["done"]

    detail = state.features.get_feature(sae_id, 3)
    assert detail["top_token_counts"][0]["id"] == target
    assert all(t["token_ids"][t["position"] - t["start"]] == target for t in detail["top_contexts"])
    peak = state.features.vocab(lm)[target]
    if peak.strip():
        assert detail["auto_label"] == f"top token: '{clean_token(peak)}'"
    else:  # whitespace peaks: the label names the tokens the feature promotes instead
        shown = [clean_token(t["token"]) for t in detail["top_positive_logits"][:3]]
        assert detail["auto_label"] == ("promotes: " + " ".join(f"'{t}'" for t in shown))[:47] + (
            "…" if len("promotes: " + " ".join(f"'{t}'" for t in shown)) > 48 else "")
        assert detail["degenerate"] is True and detail["consistency"] == 0.0
    assert abs(detail["density"] - float((proj + bias > 0)[kept].float().mean())) < 1e-6
    # logit effects: W_dec[3] through the final RMSNorm's weight and the unembedding, computed here
    spec = arch_for(lm.model)
    w_norm = get_module(lm.model, spec.final_norm).weight.detach()
    w_u = get_module(lm.model, spec.unembed).weight.detach()
    expected = (sae.W_dec[3].detach() * w_norm) @ w_u.T
    top = expected.topk(10)
    assert [t["id"] for t in detail["top_positive_logits"]] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([t["value"] for t in detail["top_positive_logits"]]), top.values,
                               atol=1e-5, rtol=1e-5)
    bottom = expected.topk(10, largest=False)
    assert [t["id"] for t in detail["top_negative_logits"]] == bottom.indices.tolist()
    assert sum(detail["logit_histogram"]["counts"]) == w_u.shape[0]
    # the other features never fire: dead, labelled so
    dead = state.features.get_feature(sae_id, 0)
    assert dead["density"] == 0 and dead["auto_label"] == "dead" and dead["top_contexts"] == []
    if peak.strip():  # a whitespace token has no search key
        found = state.features.list_features(sae_id, q=f"token:{peak}")
        assert [f["index"] for f in found["items"]] == [3]
    else:
        hidden = state.features.list_features(sae_id, hide_degenerate=True, limit=500)["items"]
        assert 3 not in [f["index"] for f in hidden]


def test_decoder_neighbours_are_cosine_nearest(state, make_sae):
    def twin(sae):
        sae.W_dec[5] = sae.W_dec[2] * 2.0 + 0.01 * sae.W_dec[7]

    sae_id, sae = make_sae(d_sae=32, edit=twin)
    state.features.analyze(sae_id, n_tokens=630)
    d = state.features.get_feature(sae_id, 2)
    assert d["neighbours"][0]["index"] == 5 and d["neighbours"][0]["score"] > 0.99
    w = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)
    cos = (w @ w.T)[2]
    cos[2] = -2
    assert [n["index"] for n in d["neighbours"]] == cos.topk(len(d["neighbours"])).indices.tolist()


def test_windows_identical_when_the_sparse_cache_overflows(state, make_sae):
    from interpretability_workbench.features.analysis import AnalysisConfig, run_analysis

    lm = state.lm
    _, sae = make_sae(architecture="standard", d_sae=32, seed=2)
    contexts = state.features.analysis_contexts(lm, sae, n_tokens=630)
    vocab = state.features.vocab(lm)
    kept = run_analysis(lm, sae, contexts, vocab, AnalysisConfig())
    spilled = run_analysis(lm, sae, contexts, vocab, AnalysisConfig(cache_bytes=1))  # re-forwards the examples
    for a, b in zip(kept.rows, spilled.rows):
        ta, tb = a["data_json"]["top_contexts"], b["data_json"]["top_contexts"]
        assert [t["context"] for t in ta] == [t["context"] for t in tb]
        for x, y in zip(ta, tb):
            torch.testing.assert_close(torch.tensor(x["activations"]), torch.tensor(y["activations"]), atol=1e-4, rtol=0)
