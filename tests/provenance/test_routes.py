"""GET /api/provenance and /api/provenance/export, and the CLI."""
from __future__ import annotations

import json

import pytest

from .conftest import PROMPT


def test_graph_over_rest(client, pair):
    r = client.get("/api/provenance", params={"sae_id": pair.id_b, "feature": pair.B, "depth": 1,
                                              "prompt": PROMPT, "top_k": 3, "validate": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"nodes", "edges", "validation", "downstream_logits"} <= set(body)
    assert body["nodes"][0]["kind"] == "target" and body["target"] == f"L1/{pair.B}"
    edge = next(e for e in body["edges"] if e["source"] == f"L0/{pair.A}")
    assert edge["virtual_weight"] == pytest.approx(0.25, rel=1e-5)
    v = body["validation"]
    assert len(v["edges"]) == 3 and v["correlation"] == pytest.approx(1.0, abs=1e-3)
    assert {"positive", "negative"} == set(body["downstream_logits"])
    # no prompt: weights only, no validation
    r = client.get("/api/provenance", params={"sae_id": pair.id_b, "feature": pair.B, "depth": 1})
    assert r.status_code == 200 and r.json()["validation"] is None


def test_export_is_a_json_download(client, pair):
    r = client.get("/api/provenance/export", params={"sae_id": pair.id_b, "feature": pair.B, "depth": 1})
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment;")
    assert f"provenance-{pair.id_b}-{pair.B}.json" in r.headers["content-disposition"]
    assert json.loads(r.content)["target"] == f"L1/{pair.B}"


def test_error_codes(client, state, pair):
    get = lambda **q: client.get("/api/provenance", params=q)  # noqa: E731
    assert get(sae_id="sae_nope", feature=0).status_code == 404
    r = get(sae_id=pair.id_b, feature=8)
    assert r.status_code == 422 and "out of range" in r.json()["detail"]
    assert get(sae_id=pair.id_b, feature=0, depth=0).status_code == 422
    assert get(sae_id=pair.id_b, feature=0, prompt="   ").status_code == 422
    r = get(sae_id=pair.id_a, feature=0)  # nothing registered below layer 0
    assert r.status_code == 400 and "below layer 0" in r.json()["detail"]
    lm, state.model.lm = state.model.lm, None
    try:
        assert get(sae_id=pair.id_b, feature=0).status_code == 400
    finally:
        state.model.lm = lm


def test_openapi_documents_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/provenance" in paths and "/api/provenance/export" in paths


def test_cli(state, pair, monkeypatch, capsys):
    from interpretability_workbench.cli import main

    monkeypatch.setenv("IWB_HOME", str(state.settings.home))
    args = ["provenance", "--sae", pair.id_b, "--feature", str(pair.B), "--depth", "1", "--prompt", PROMPT,
            "--model", state.settings.model, "--device", "cpu", "--dtype", "float32"]
    assert main([*args, "--json"]) == 0
    g = json.loads(capsys.readouterr().out)
    assert g["target"] == f"L1/{pair.B}" and g["validation"]["edges"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"L0/{pair.A}" in out and "predicted vs actual" in out


def test_upstream_lists_sae_per_layer_and_what_to_train(client, state, stack):
    """The feature page asks before tracing: which SAEs sit below, which layers lack one, a training body."""
    top = client.get("/api/provenance/upstream", params={"sae_id": stack[2], "depth": 2}).json()
    assert [a["layer"] for a in top["available"]] == [1, 0] and top["available"][0]["sae_id"] == stack[1]
    assert top["missing_layers"] == [] and top["suggested_layers"] == []
    low = client.get("/api/provenance/upstream", params={"sae_id": stack[0], "depth": 2}).json()
    assert low["available"] == [] and low["suggested_layers"] == [] and low["layer"] == 0
    state.saes.delete(stack[1])
    gap = client.get("/api/provenance/upstream", params={"sae_id": stack[2], "depth": 2}).json()
    assert [a["layer"] for a in gap["available"]] == [0]
    assert gap["missing_layers"] == [1] and gap["suggested_layers"] == [1]
    assert gap["train"] == {"layers": [1], "hook": "resid_post", "d_sae": 32, "architecture": "topk", "k": 8}
    # the body trains: the training route accepts it as it is (plus the token budget)
    from interpretability_workbench.server.schemas.training import TrainingRequest

    TrainingRequest(**gap["train"], total_tokens=1000)
    assert client.get("/api/provenance/upstream", params={"sae_id": "sae_nope"}).status_code == 404
