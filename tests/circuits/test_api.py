"""REST: transcoder sets (import a SAELens zip, list, members in /api/saes, export both layouts, train), and
circuits (POST -> job events on the socket -> GET with thresholds -> intervene -> send a node to the Patch
console -> export -> delete), with the error codes."""
from __future__ import annotations

import io
import time
import zipfile

import pytest

PROMPT = "The quick brown fox jumps over the lazy dog because"


@pytest.fixture
def set_id(client, state, transcoders):
    reg = state.transcoders.register_set(transcoders, name="hand-built")
    zipped = state.transcoders.export_saelens(reg.set_id)
    r = client.post("/api/transcoders/import", files={"file": ("hand.zip", zipped, "application/zip")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["layers"] == [0, 1, 2] and len(body["members"]) == 3 and body["source"] == "imported"
    return body["id"]


def _wait(client, cid, timeout=600):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = client.get(f"/api/circuits/{cid}").json()
        if r["status"] not in ("queued", "running"):
            return r
        time.sleep(0.2)
    raise AssertionError("circuit did not finish")


def test_transcoder_sets_over_rest(client, set_id):
    sets = client.get("/api/transcoders").json()
    assert [s["id"] for s in sets][-1] == set_id
    detail = client.get(f"/api/transcoders/{set_id}").json()
    saes = {s["id"]: s for s in client.get("/api/saes").json()}
    for m in detail["members"]:
        assert saes[m["sae_id"]]["kind"] == "transcoder" and saes[m["sae_id"]]["set_id"] == set_id
        assert m["hook_name"] == f"blocks.{m['layer']}.ln2.hook_normalized"
    r = client.get(f"/api/transcoders/{set_id}/export", params={"format": "saelens"})
    assert r.status_code == 200 and sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())[:2] == [
        "layer_0/cfg.json", "layer_0/sae_weights.safetensors"]
    assert client.get(f"/api/transcoders/{set_id}/export").status_code == 422  # TopK: not circuit-tracer's
    assert client.get("/api/transcoders/tcs_nope").status_code == 404
    bad = client.post("/api/transcoders/import", files={"file": ("x.zip", b"not a zip", "application/zip")})
    assert bad.status_code == 422
    assert client.post("/api/transcoders/train", json={"layers": [0], "all": True}).status_code == 422
    assert client.post("/api/transcoders/train", json={"layers": [9]}).status_code == 422


def test_train_over_rest(client):
    r = client.post("/api/transcoders/train", json={"all": True, "d_tc": 64, "k": 4, "total_tokens": 2048,
                                                    "batch_size": 512, "context_size": 64, "eval_contexts": 2})
    assert r.status_code == 202, r.text
    rid = r.json()["run_id"]
    assert client.post("/api/transcoders/train", json={"layers": [0]}).status_code == 409
    t0 = time.time()
    while time.time() - t0 < 600:
        run = client.get(f"/api/transcoders/runs/{rid}").json()
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.3)
    assert run["status"] == "done", run
    assert run["config"]["kind"] == "transcoders" and run["metrics"]["set_id"]
    s = client.get(f"/api/transcoders/{run['metrics']['set_id']}").json()
    assert s["layers"] == [0, 1, 2] and s["run_id"] == rid and "ce_loss_recovered" in s["metrics"]
    assert [x["id"] for x in client.get("/api/transcoders/runs").json()] == [rid]
    assert client.get("/api/transcoders/runs/run_nope").status_code == 404


def test_circuit_flow(client, set_id):
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        r = client.post("/api/circuits", json={"prompt": PROMPT, "set_id": set_id, "batch_size": 16,
                                               "validate_edges": 6, "validate_freeze": "direct"})
        assert r.status_code == 202, r.text
        cid = r.json()["id"]
        seen = []
        while True:
            msg = ws.receive_json()
            if msg.get("type") == "job" and msg["job_id"] == cid:
                seen.append(msg)
                if msg["status"] in ("done", "failed", "cancelled"):
                    break
    assert seen[-1]["status"] == "done" and seen[-1]["kind"] == "circuit"
    assert any(m["status"] == "running" and m["total"] > 0 for m in seen)
    c = _wait(client, cid)
    s = c["summary"]
    assert c["status"] == "done" and c["prompt"] == PROMPT and c["settings"]["set_id"] == set_id
    assert 0 <= s["replacement_score"] <= 1 and 0 <= s["completeness_score"] <= 1
    assert s["validation"]["pearson"] == pytest.approx(1.0, abs=1e-3)
    tight = client.get(f"/api/circuits/{cid}", params={"node_threshold": 0.5}).json()["graph"]
    loose = client.get(f"/api/circuits/{cid}", params={"node_threshold": 0.95}).json()["graph"]
    assert len(tight["nodes"]) <= len(loose["nodes"]) and tight["node_threshold"] == 0.5
    feats = [n for n in loose["nodes"] if n["kind"] == "feature"]
    assert feats and all(n["sae_id"] for n in feats)
    f = max(feats, key=lambda n: n["activation"])
    iv = client.post(f"/api/circuits/{cid}/intervene", json={"nodes": [{"node": f["node"], "value": 0}]})
    assert iv.status_code == 200, iv.text
    body = iv.json()
    assert len(body["before"]) == 10 and body["interventions"][0]["feature"] == f["feature"]
    tok = next(n for n in loose["nodes"] if n["kind"] == "token")
    assert client.post(f"/api/circuits/{cid}/intervene", json={"nodes": [{"node": tok["node"]}]}).status_code == 422
    p = client.post(f"/api/circuits/{cid}/nodes/{f['node']}/patch", json={"mode": "clamp", "value": 0})
    assert p.status_code == 201, p.text
    patch = p.json()["patch"]
    assert patch["mode"] == "clamp" and patch["applied"] and patch["sae_id"] == f["sae_id"]
    assert patch["target_modules"] == [f"model.layers.{f['layer']}.mlp"]
    assert patch["id"] in [x["id"] for x in client.get("/api/patches").json()]
    ct = client.get(f"/api/circuits/{cid}/export").json()
    assert ct["metadata"]["slug"] == cid and ct["nodes"] and "links" in ct
    wb = client.get(f"/api/circuits/{cid}/export", params={"format": "workbench"}).json()
    assert wb["prompt"] == PROMPT and len(wb["adjacency"]) == s["n_nodes"]
    assert [x["id"] for x in client.get("/api/circuits").json()] == [cid]
    assert client.post("/api/circuits", json={"prompt": PROMPT, "set_id": "tcs_nope"}).status_code == 404
    long_target = client.post("/api/circuits", json={"prompt": PROMPT, "set_id": set_id, "target": " quick brown fox jumps"})
    assert long_target.status_code == 422 and "single token" in long_target.text
    assert all(lg["before"] >= 0 and lg["after"] >= 0 for lg in body["logit_nodes"])
    assert client.post(f"/api/circuits/{cid}/cancel").status_code == 409
    assert client.delete(f"/api/circuits/{cid}").status_code == 204
    assert client.get(f"/api/circuits/{cid}").status_code == 404
