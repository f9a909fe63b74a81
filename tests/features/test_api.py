"""REST: paging, sorting, search, PATCH persistence, errors, export, per-text activations."""
from __future__ import annotations

import json

import torch

from interpretability_workbench.model.hooks import run_with_cache

from .conftest import HOOK, N_TOKENS


def test_paging_sorting_and_search(client, analysed):
    sae_id, sae = analysed
    base = f"/api/saes/{sae_id}/features"
    page = client.get(base, params={"offset": 10, "limit": 7}).json()
    assert page["total"] == sae.cfg.d_sae and page["offset"] == 10 and page["limit"] == 7
    assert [f["index"] for f in page["items"]] == list(range(10, 17))
    dens = client.get(base, params={"sort": "-density", "limit": 500}).json()["items"]
    assert [f["density"] for f in dens] == sorted((f["density"] for f in dens), reverse=True)
    mx = client.get(base, params={"sort": "max_activation", "limit": 500}).json()["items"]
    assert [f["max_activation"] for f in mx] == sorted(f["max_activation"] for f in mx)
    # token search: every hit has the token among its top contexts' peaks
    tok = dens[0]["top_tokens"][0]
    hits = client.get(base, params={"q": f"token:{tok}", "limit": 500}).json()
    assert hits["total"] >= 1 and dens[0]["index"] in [f["index"] for f in hits["items"]]
    for f in hits["items"]:
        detail = client.get(f"{base}/{f['index']}").json()
        assert tok.strip().lower() in [t["key"] for t in detail["top_token_counts"]]
    assert client.get(base, params={"sort": "bogus"}).status_code == 422
    assert client.get(base, params={"q": "token:"}).status_code == 422


def test_patch_persists_and_is_searchable(client, state, analysed):
    sae_id, _ = analysed
    url = f"/api/saes/{sae_id}/features/7"
    auto = client.get(url).json()["auto_label"]
    r = client.patch(url, json={"label": "zebra crossings", "notes": "looks like %_ stuff", "starred": True})
    assert r.status_code == 200
    body = r.json()
    assert body["label"] == "zebra crossings" and body["user_label"] == "zebra crossings"
    assert body["auto_label"] == auto and body["starred"] and body["notes"] == "looks like %_ stuff"
    # re-analysis keeps the user's edits
    state.features.analyze(sae_id, n_tokens=N_TOKENS)
    again = client.get(url).json()
    assert again["label"] == "zebra crossings" and again["starred"] and again["auto_label"] == auto
    found = client.get(f"/api/saes/{sae_id}/features", params={"q": "ZEBRA"}).json()
    assert [f["index"] for f in found["items"]] == [7]
    assert client.get(f"/api/saes/{sae_id}/features", params={"q": "%_"}).json()["total"] == 1
    assert [f["index"] for f in client.get(f"/api/saes/{sae_id}/features",
                                           params={"q": "is:starred"}).json()["items"]] == [7]
    # an empty label restores the automatic one
    assert client.patch(url, json={"label": ""}).json()["label"] == auto


def test_not_found_and_bad_requests(client, state, make_sae, analysed):
    sae_id, sae = analysed
    assert client.get("/api/saes/nope/features").status_code == 404
    assert client.get(f"/api/saes/{sae_id}/features/{sae.cfg.d_sae}").status_code == 404
    assert client.patch(f"/api/saes/{sae_id}/features/-1", json={"label": "x"}).status_code == 404
    assert client.post("/api/saes/nope/analysis").status_code == 404
    assert client.get("/api/saes/nope/analysis").status_code == 404
    fresh_id, _ = make_sae(seed=3)
    r = client.get(f"/api/saes/{fresh_id}/features/0")
    assert r.status_code == 404 and "analysis" in r.json()["detail"]
    assert client.get(f"/api/saes/{fresh_id}/analysis").json()["status"] == "none"
    other_id, _ = make_sae(model_id="someone/else")
    r = client.post(f"/api/saes/{other_id}/analysis")
    assert r.status_code == 400 and "someone/else" in r.json()["detail"]
    wide_id, _ = make_sae(d_in=32)
    assert client.post(f"/api/saes/{wide_id}/activations", json={"text": "hi"}).status_code == 400
    lm, state.model.lm = state.model.lm, None
    try:
        assert client.post(f"/api/saes/{sae_id}/analysis").status_code == 400
    finally:
        state.model.lm = lm


def test_background_analysis_conflict_and_status(client, state, make_sae):
    sae_id, _ = make_sae(seed=5)
    with state.model_lock:  # the worker blocks on its first forward
        r = client.post(f"/api/saes/{sae_id}/analysis", json={"n_tokens": 630})
        assert r.status_code == 202 and r.json()["status"] == "running"
        r2 = client.post(f"/api/saes/{sae_id}/analysis")
        assert r2.status_code == 409
    state.features.wait(sae_id, timeout=60)
    st = client.get(f"/api/saes/{sae_id}/analysis").json()
    # special tokens (EOS between documents) are read but not counted
    assert st["status"] == "done" and st["n_tokens"] + st["summary"]["excluded_tokens"] == 630
    assert st["summary"]["d_sae"] == 128
    state.features.forget(sae_id)
    assert client.get(f"/api/saes/{sae_id}/analysis").json()["status"] == "none"
    assert client.get(f"/api/saes/{sae_id}/features").json()["total"] == 0


def test_export_json_lines(client, analysed):
    sae_id, sae = analysed
    r = client.get(f"/api/saes/{sae_id}/features/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [row["index"] for row in rows] == list(range(sae.cfg.d_sae))
    row = next(x for x in rows if x["activations"])
    assert row["layer"] == HOOK and len(row["pos_str"]) == 10 and row["maxActApprox"] == row["activations"][0]["maxValue"]
    assert len(row["freq_hist_data_bar_heights"]) == len(row["freq_hist_data_bar_values"])


def test_text_activations_match_fresh_encode(client, state, analysed):
    sae_id, sae = analysed
    text = "Return the number of items in the container."
    r = client.post(f"/api/saes/{sae_id}/activations", json={"text": text, "top_k": 4})
    assert r.status_code == 200
    body = r.json()
    lm = state.lm
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]
    ids = torch.cat([torch.tensor([[lm.tokenizer.bos_token_id]]), ids], dim=1)
    f = sae.encode(run_with_cache(lm.model, ids, [HOOK]).cache[HOOK][0, 1:].float())  # [pos d_sae]
    assert body["token_ids"] == ids[0, 1:].tolist() and body["bos_excluded"]
    for p, feats in enumerate(body["per_token"]):
        top = f[p].topk(4)
        assert [e["index"] for e in feats] == top.indices.tolist()
        torch.testing.assert_close(torch.tensor([e["value"] for e in feats]), top.values, atol=1e-5, rtol=0)
    for feat in body["features"]:
        torch.testing.assert_close(torch.tensor(feat["activations"]), f[:, feat["index"]], atol=1e-5, rtol=0)
    chosen = client.post(f"/api/saes/{sae_id}/activations", json={"text": text, "features": [3, 1]}).json()
    assert [x["index"] for x in chosen["features"]] == [3, 1]
    assert client.post(f"/api/saes/{sae_id}/activations", json={"text": "  "}).status_code == 422
    assert client.post(f"/api/saes/{sae_id}/activations", json={"text": "x", "features": [999]}).status_code == 422
