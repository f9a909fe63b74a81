"""REST and WebSocket: 202 + run id, 409 on a second training, run detail, and progress delivered to two
WebSocket clients while a third disconnects abruptly — training completes."""
from __future__ import annotations

import time


def _body(**kw):
    base = dict(layer=1, hook="resid_post", d_sae=128, k=8, total_tokens=8192, batch_size=512, context_size=64,
                checkpoint_every=0, eval_tokens=1024, ce_eval_contexts=2, lr=3e-3, analyze=False, accelerator="cpu")
    base.update(kw)
    return base


def _wait_done(client, run_id, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = client.get(f"/api/training/{run_id}").json()
        if r["status"] not in ("queued", "running"):
            return r
        time.sleep(0.2)
    raise AssertionError("run did not finish")


def test_rest_409_and_ws_progress_with_a_dropped_client(client, state):
    with client.websocket_connect("/ws") as c1, client.websocket_connect("/ws") as c2:
        c3_cm = client.websocket_connect("/ws")
        c3 = c3_cm.__enter__()
        _run(client, c1, c2, c3, c3_cm)


def _run(client, c1, c2, c3, c3_cm):
    for c in (c1, c2, c3):
        assert c.receive_json()["type"] == "hello"
    r = client.post("/api/training", json=_body())
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    c3_cm.__exit__(None, None, None)  # abrupt: never reads a single progress message
    second = client.post("/api/training", json=_body(layers=[0, 1], layer=None))
    assert second.status_code == 409 and "one training at a time" in second.json()["detail"]
    got = {1: [], 2: []}
    for i, c in ((1, c1), (2, c2)):
        while True:
            msg = c.receive_json()
            if msg.get("run_id") == run_id:
                got[i].append(msg)
                if msg["type"] in ("training_done", "training_failed", "training_cancelled"):
                    break
    for msgs in got.values():
        assert msgs[-1]["type"] == "training_done", msgs[-1]
        assert any(m["type"] == "training_progress" and m["step"] > 0 for m in msgs)
    detail = _wait_done(client, run_id)
    assert detail["status"] == "done" and detail["sae_ids"] and detail["history"]
    (member,) = detail["members"]
    assert member["held_out_fvu"] < 1 and member["ce_loss_recovered"] is not None
    assert member["sae_id"] == detail["sae_ids"][0] and "held_out_fvu" not in detail["metrics"]
    assert detail["train_tokens"] == 8192 and detail["held_out_tokens"] == 1024 and detail["passes"] == 1
    assert [r["id"] for r in client.get("/api/training").json()] == [run_id]
    sae = client.get(f"/api/saes/{detail['sae_ids'][0]}").json()
    assert sae["hook_name"] == "blocks.1.hook_resid_post" and sae["run_id"] == run_id
    assert client.post(f"/api/training/{run_id}/cancel").status_code == 409
    assert client.post(f"/api/training/{run_id}/resume").status_code == 409


def test_rest_validation(client):
    assert client.post("/api/training", json=_body(layer=99)).status_code == 422
    assert client.post("/api/training", json=_body(hook_name="blocks.0.hook_resid_post")).status_code == 422  # two specs
    assert client.post("/api/training", json=_body(k=500, d_sae=128)).status_code == 422
    assert client.post("/api/training", json=_body(corpus="nope")).status_code == 404
    assert client.get("/api/training/run_missing").status_code == 404
    assert client.post("/api/training/run_missing/cancel").status_code == 404
