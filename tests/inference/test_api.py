"""REST and WebSocket surface of patches and inference on the tiny Llama."""
from __future__ import annotations

import io
import zipfile

import pytest
from fastapi.testclient import TestClient

from interpretability_workbench.model.hooks import forward_last_logits
from interpretability_workbench.model.tokenize import encode_prompt

from .conftest import PROMPTS, make_sae


def test_inference_original_vs_patched(client, state, steer_patch):
    r = client.post("/api/inference", json={"text": PROMPTS[0], "top_k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["patch_ids"] == [steer_patch]  # default: the enabled patches
    assert len(body["original"]) == 5 and len(body["patched"]) == 5
    assert body["kl"] > 0 and body["moved"] and body["from_layer"] == 1
    assert set(body["original"][0]) == {"token", "id", "prob", "logit"}
    r = client.post("/api/inference", json={"text": PROMPTS[0], "patch_ids": []})
    assert r.json()["kl"] == 0 and r.json()["original"] == r.json()["patched"]


def test_inference_errors(client, state):
    assert client.post("/api/inference", json={"text": "  "}).status_code == 422
    assert client.post("/api/inference", json={"text": "x " * 2000}).status_code == 422
    r = client.post("/api/inference", json={"text": "hello", "patch_ids": ["patch_nope"]})
    assert r.status_code == 404 and "patch_nope" in r.json()["detail"]
    assert client.post("/api/generate", json={"text": "hi", "max_new_tokens": 500}).status_code == 422
    assert client.patch("/api/patches/patch_nope", json={"strength": 1}).status_code == 404


def test_no_model_is_400(settings):
    from interpretability_workbench.server.app import create_app
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(settings)
    try:
        with TestClient(create_app(settings, st, load_model=False)) as c:
            r = c.post("/api/inference", json={"text": "hello"})
            assert r.status_code == 400 and "model" in r.json()["detail"]
            assert c.post("/api/generate", json={"text": "hello"}).status_code == 400
    finally:
        st.close()


def test_generate_greedy_and_seeded(client, steer_patch):
    body = {"text": PROMPTS[1], "max_new_tokens": 6}
    a = client.post("/api/generate", json=body).json()
    assert a == client.post("/api/generate", json=body).json()
    assert len(a["original_ids"]) == 6 and a["patch_ids"] == [steer_patch]
    s = {**body, "temperature": 1.0, "seed": 3}
    assert client.post("/api/generate", json=s).json() == client.post("/api/generate", json=s).json()


def test_patch_crud_export_import_evaluate(client, state):
    sid, _ = make_sae(state, layer=1)
    r = client.post("/api/patches", json={"sae_id": sid, "features": [1, 4], "mode": "ablate"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["applied"] and p["rank"] == 2 and p["exportable_as_peft"] and p["strength"] == 1.0
    assert [x["id"] for x in client.get("/api/patches").json()] == [p["id"]]
    r = client.patch(f"/api/patches/{p['id']}", json={"strength": 0.5, "enabled": False})
    assert r.json()["strength"] == 0.5 and r.json()["enabled"] is False
    assert client.post("/api/patches", json={"sae_id": sid, "features": [999], "mode": "ablate"}).status_code == 422
    assert client.post("/api/patches", json={"sae_id": "sae_nope", "features": [1], "mode": "steer"}).status_code == 404
    r = client.get(f"/api/patches/{p['id']}/export", params={"format": "peft"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert f"{p['id']}/adapter_config.json" in names and f"{p['id']}/adapter_model.safetensors" in names
    r2 = client.post("/api/patches/import", files={"file": ("a.zip", r.content, "application/zip")})
    assert r2.status_code == 201, r2.text
    assert r2.json()["mode"] == "adapter"
    native = client.get(f"/api/patches/{p['id']}/export", params={"format": "native"})
    r3 = client.post("/api/patches/import", files={"file": ("n.zip", native.content, "application/zip")})
    assert r3.status_code == 201 and r3.json()["mode"] == "ablate" and r3.json()["sae_id"] == sid
    bad = client.post("/api/patches/import", files={"file": ("x.zip", b"not a zip", "application/zip")})
    assert bad.status_code == 422
    client.patch(f"/api/patches/{p['id']}", json={"strength": 1.0})
    ev = client.post(f"/api/patches/{p['id']}/evaluate", json={"texts": PROMPTS[:2], "target_tokens": [" the", 5]})
    assert ev.status_code == 200, ev.text
    e = ev.json()
    assert len(e["results"]) == 2 and len(e["target_ids"]) == 2
    # independent computation: full forwards of the original and the patched model, summed target probability
    lm = state.lm
    the = lm.tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    assert e["target_ids"] == [the, 5]
    for text, res in zip(PROMPTS[:2], e["results"]):
        ids = encode_prompt(lm, text)
        with state.patches.using([]):
            before = forward_last_logits(lm.model, ids)[0].softmax(-1)[[the, 5]].sum()
        with state.patches.using([p["id"]]):
            after = forward_last_logits(lm.model, ids)[0].softmax(-1)[[the, 5]].sum()
        assert res["before"] == pytest.approx(float(before), abs=1e-6)
        assert res["after"] == pytest.approx(float(after), abs=1e-6)
    assert e["mean_before"] == pytest.approx(sum(r["before"] for r in e["results"]) / 2, abs=1e-9)
    assert client.delete(f"/api/patches/{p['id']}").status_code == 204
    assert client.get(f"/api/patches/{p['id']}").status_code == 404


def _next_logits(ws):
    while True:
        m = ws.receive_json()
        if m["type"] in ("logits", "error"):
            return m


def test_ws_live_logits(client, state, steer_patch):
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "subscribe_logits", "text": PROMPTS[0], "top_k": 5, "patch_ids": [steer_patch]})
        first = _next_logits(ws)
        assert first["type"] == "logits" and first["patch_ids"] == [steer_patch] and first["kl"] > 0
        ws.send_json({"type": "set_strength", "patch_id": steer_patch, "strength": 0.0})
        m = _next_logits(ws)
        assert m["type"] == "logits" and m["seq"] > first["seq"]
        assert m["kl"] == pytest.approx(0.0, abs=1e-9) and m["original"] == first["original"]
        assert state.patches.get(steer_patch).strength == 0.0  # live, in memory
        stored = {c["id"]: c["strength"] for c in state.patches.repo.list()}
        assert stored[steer_patch] != 0.0  # a slider tick does not write the database
        ws.send_json({"type": "commit_strength", "patch_id": steer_patch})
        ws.send_json({"type": "ping"})
        while ws.receive_json()["type"] != "pong":
            pass
        assert {c["id"]: c["strength"] for c in state.patches.repo.list()}[steer_patch] == 0.0
        ws.send_json({"type": "set_strength", "patch_id": "patch_nope", "strength": 1.0})
        err = _next_logits(ws)
        assert err["type"] == "error" and err["status"] == 404
        # a burst coalesces: the last strength wins
        for s in (1.0, 2.0, 3.0, 4.0):
            ws.send_json({"type": "set_strength", "patch_id": steer_patch, "strength": s})
        ws.send_json({"type": "set_prompt", "text": PROMPTS[2]})
        seen = _next_logits(ws)
        while seen["text"] != PROMPTS[2] or state.patches.get(steer_patch).strength != 4.0:
            seen = _next_logits(ws)
        assert seen["kl"] > 0 and seen["latency_ms"] >= 0
