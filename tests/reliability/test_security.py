"""API key, CORS, body limit, rate limit, bind check, metrics and access logs on the real app."""
from __future__ import annotations

import json
import logging

import pytest
from starlette.websockets import WebSocketDisconnect

from interpretability_workbench.events import TrainingDone, TrainingProgress
from interpretability_workbench.server.security import BindError, check_bind

from .conftest import API_KEY


def test_no_key_needed_on_loopback_without_key(make_client) -> None:
    c = make_client()
    assert c.get("/api/model").status_code == 200
    with c.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"


def test_api_key_required_when_set(make_client) -> None:
    c = make_client(api_key=API_KEY)
    r = c.get("/api/model")
    assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
    assert c.get("/api/model", headers={"X-API-Key": "wrong"}).status_code == 401
    assert c.get("/api/model", headers={"X-API-Key": API_KEY}).status_code == 200
    assert c.get("/api/model", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert c.post("/api/corpora", files={"file": ("a.txt", b"hello")}).status_code == 401
    assert c.get("/api/metrics").status_code == 401
    text = c.get("/api/metrics", headers={"X-API-Key": API_KEY}).text
    assert 'route="/api/model",status="401"' in text  # refused before routing, still labelled by template
    assert 'iwb_requests_rejected_total{reason="401"}' in text
    # liveness stays open for probes and healthchecks
    assert c.get("/api/health").status_code == 200


def test_websocket_needs_token_when_key_set(make_client) -> None:
    c = make_client(api_key=API_KEY)
    with pytest.raises(WebSocketDisconnect):
        with c.websocket_connect("/ws") as ws:
            ws.receive_json()
    with pytest.raises(WebSocketDisconnect):
        with c.websocket_connect("/ws?token=nope") as ws:
            ws.receive_json()
    with c.websocket_connect(f"/ws?token={API_KEY}") as ws:
        assert ws.receive_json()["type"] == "hello"
    c.cookies.set("iwb_token", API_KEY)
    with c.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"


def test_non_loopback_bind_requires_key(settings, capsys) -> None:
    with pytest.raises(BindError) as e:
        check_bind(settings.model_copy(update={"host": "0.0.0.0", "api_key": None}))
    assert e.value.code == 2 and "IWB_API_KEY" in str(e.value)
    assert "IWB_API_KEY" in capsys.readouterr().out
    check_bind(settings.model_copy(update={"host": "0.0.0.0", "api_key": API_KEY}))
    check_bind(settings.model_copy(update={"host": "127.0.0.1", "api_key": None}))


def test_non_loopback_host_enforces_key(make_client) -> None:
    c = make_client(host="0.0.0.0", api_key=API_KEY)
    assert c.get("/api/corpora").status_code == 401
    assert c.get("/api/corpora", headers={"X-API-Key": API_KEY}).status_code == 200


def test_cors_explicit_origins_only(make_client, settings) -> None:
    c = make_client(cors_origins=["https://lab.example.org"])
    ok = c.get("/api/health", headers={"Origin": "https://lab.example.org"})
    assert ok.headers["access-control-allow-origin"] == "https://lab.example.org"
    assert ok.headers["access-control-allow-credentials"] == "true"
    bad = c.get("/api/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in bad.headers
    pre = c.options("/api/corpora", headers={"Origin": "https://lab.example.org",
                                             "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "X-API-Key"})
    assert pre.status_code == 200
    with pytest.raises(ValueError, match="explicit origins"):
        check_bind(settings.model_copy(update={"cors_origins": ["*"]}))


def test_body_limit_declared_and_streamed(make_client, tmp_path) -> None:
    c = make_client(max_body_bytes=1000, max_corpus_bytes=2000)
    r = c.post("/api/model", content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "IWB_MAX_BODY_BYTES" in r.json()["detail"]
    # corpus uploads stream to disk under their own limit (IWB_MAX_CORPUS_BYTES), not the body limit
    r = c.post("/api/corpora", files={"file": ("big.txt", b"x" * 1_000_000)})
    assert r.status_code == 413 and "IWB_MAX_CORPUS_BYTES" in r.json()["detail"]
    assert c.post("/api/corpora", files={"file": ("mid.txt", b"x " * 700)}).status_code == 201

    def chunks():  # no Content-Length: the middleware counts the stream
        for _ in range(10):
            yield b"y" * 500
    r = c.post("/api/model", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert c.post("/api/corpora", files={"file": ("ok.txt", b"small text")}).status_code == 201


def test_rate_limit_429_with_retry_after(make_client) -> None:
    c = make_client(rate_limit="2/minute")
    codes = [c.post("/api/inference", json={"text": "hi"}).status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2]
    r = c.post("/api/inference", json={"text": "hi"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "IWB_RATE_LIMIT" in r.json()["detail"]
    # cheap routes are never limited
    assert all(c.get("/api/health").status_code == 200 for _ in range(5))
    # made-up keys (no key configured) do not buy a fresh bucket
    codes = [c.post("/api/generate", json={"text": "hi"}, headers={"X-API-Key": f"junk{i}"}).status_code
             for i in range(3)]
    assert codes[2] == 429, codes


def test_over_long_prompt_is_422(make_client) -> None:
    c = make_client(max_prompt_tokens=8)
    from .conftest import require_route
    require_route(c.app, "POST", "/api/inference")
    r = c.post("/api/inference", json={"text": "word " * 200})
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_metrics_prometheus_text(make_client) -> None:
    c = make_client()
    c.get("/api/health")
    c.get("/api/model")
    c.get("/api/nope")
    c.app.state.workbench.bus.publish(TrainingProgress(run_id="r", total_tokens=100, tokens_per_s=1234.5, step=3))
    text = c.get("/api/metrics").text
    assert 'iwb_http_requests_total{method="GET",route="/api/health",status="200"} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "iwb_http_request_duration_seconds_bucket" in text
    assert "iwb_training_tokens_per_second 1234.5" in text
    assert "iwb_models_loaded 1.0" in text
    assert "iwb_inference_latency_seconds" in text
    c.app.state.workbench.bus.publish(TrainingDone(run_id="r", sae_ids=[]))
    assert "iwb_training_tokens_per_second 0.0" in c.get("/api/metrics").text


def test_access_log_has_method_path_status_latency(make_client, caplog) -> None:
    c = make_client()
    with caplog.at_level(logging.INFO, logger="interpretability_workbench.access"):
        c.get("/api/model")
    rec = [r for r in caplog.records if r.name == "interpretability_workbench.access"][-1]
    assert (rec.method, rec.path, rec.route, rec.status) == ("GET", "/api/model", "/api/model", 200)
    assert rec.latency_ms >= 0
    from interpretability_workbench.server.middleware import JsonFormatter
    line = json.loads(JsonFormatter().format(rec))
    assert line["msg"] == "request" and line["status"] == 200 and "latency_ms" in line


def test_cli_refuses_public_bind_without_key(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "IWB_API_KEY"}
    env.update(IWB_HOME=str(tmp_path), IWB_MODEL="none")
    p = subprocess.run([sys.executable, "-m", "interpretability_workbench", "ui", "--host", "0.0.0.0"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "IWB_API_KEY" in p.stdout + p.stderr
