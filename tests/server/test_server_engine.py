import io
import json

import pytest

from interpretability_workbench.errors import NoModelError
from interpretability_workbench.events import JobProgress


def test_health_and_model(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["model_status"] == "ready"
    m = client.get("/api/model").json()
    assert m["status"] == "ready" and m["family"] == "llama" and m["n_layers"] == 3 and m["d_model"] == 64
    assert m["vocab_size"] == 512 and m["device"] == "cpu" and m["dtype"] == "float32"
    assert "blocks.0.hook_resid_pre" in m["hook_points"] and m["memory_bytes"] > 0


def test_load_another_model_and_bad_names(client, tiny_model_dirs):
    r = client.post("/api/model", json={"name": str(tiny_model_dirs["gpt2"])})
    assert r.status_code == 200, r.text
    assert r.json()["family"] == "gpt2"
    r = client.post("/api/model", json={"name": "/nonexistent/folder.gguf"})
    assert r.status_code == 400 and "does not exist" in r.json()["detail"]
    # the previous model is still loaded
    assert client.get("/api/model").json()["family"] == "gpt2"
    r = client.post("/api/model", json={"name": ""})
    assert r.status_code == 422 and "name" in r.json()["detail"]


def test_corpora_upload_and_list(client, state):
    body = "\n\n".join(f"document number {i} talks about sparse autoencoders" for i in range(20))
    r = client.post("/api/corpora", files={"file": ("notes.txt", io.BytesIO(body.encode()), "text/plain")})
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["name"] == "notes.txt" and c["status"] == "counting"  # tokens are counted in the background
    assert state.corpora.wait_counts(120)
    listed = client.get("/api/corpora").json()
    assert [x["id"] for x in listed] == ["default", c["id"]]
    c = listed[1]
    assert c["status"] == "ready" and c["n_docs"] == 20 and c["n_tokens"] > 100
    jl = "\n".join(json.dumps({"text": "hello world"}) for _ in range(3))
    assert client.post("/api/corpora", files={"file": ("a.jsonl", io.BytesIO(jl.encode()))}).status_code == 201


def test_corpora_rejects_bad_uploads(client, state):
    r = client.post("/api/corpora", files={"file": ("x.exe", io.BytesIO(b"MZ"))})
    assert r.status_code == 422 and "unsupported corpus file" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("empty.txt", io.BytesIO(b""))})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("blank.txt", io.BytesIO(b"\n\n  \n"))})
    assert r.status_code == 422 and "no text" in r.json()["detail"]
    r = client.post("/api/corpora", files={"file": ("../../evil.txt", io.BytesIO(b"some text here"))})
    assert r.status_code == 201 and r.json()["name"] == "evil.txt"
    stored = list(state.settings.corpora_dir.iterdir())
    assert all(p.parent == state.settings.corpora_dir for p in stored)


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").json()
    assert "/api/model" in spec["paths"] and "/api/corpora" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_no_model_loaded_gives_400(settings):
    from fastapi.testclient import TestClient

    from interpretability_workbench.server.app import create_app
    from interpretability_workbench.state import WorkbenchState

    st = WorkbenchState(settings)
    with TestClient(create_app(settings, st, load_model=False)) as c:
        assert c.get("/api/model").json()["status"] == "none"
        r = c.post("/api/inference", json={"text": "hello"})
        assert r.status_code == 400 and "POST /api/model" in r.json()["detail"]
    st.close()
    with pytest.raises(NoModelError) as e:
        st.require_model()
    assert e.value.status_code == 400 and "POST /api/model" in e.value.detail


def test_websocket_hello_ping_and_events(client, state):
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        ws.send_json({"type": "nope"})
        assert "unknown message type" in ws.receive_json()["detail"]
        state.bus.publish(JobProgress(job_id="job_1", kind="demo", status="running", done=1, total=2))
        ev = ws.receive_json()
        assert ev["type"] == "job" and ev["kind"] == "demo" and ev["done"] == 1 and ev["total"] == 2
