"""A WebSocket client that vanishes mid-stream (no close frame) affects no one else: the others receive
every event, and training (when the training API exists) runs to completion."""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack

import httpx
from websockets.sync.client import connect

from interpretability_workbench.events import TrainingDone, TrainingProgress

from .conftest import live_server, require_route, training_body


def _recv_until(ws, pred, timeout: float = 60.0) -> list[dict]:
    got, deadline = [], time.time() + timeout
    while time.time() < deadline:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.time())))
        got.append(msg)
        if pred(msg):
            return got
    raise TimeoutError("expected message never arrived")


def _vanish(ws) -> None:
    ws.socket.shutdown(socket.SHUT_RDWR)  # no close handshake: the peer just disappears
    ws.socket.close()


def test_vanishing_ws_client_does_not_affect_others(make_app) -> None:
    app, state = make_app()
    with live_server(app) as base, ExitStack() as stack:
        url = base.replace("http", "ws") + "/ws"
        clients = [stack.enter_context(connect(url, ping_interval=None, max_queue=None)) for _ in range(3)]
        for c in clients:
            assert json.loads(c.recv(timeout=10))["type"] == "hello"
        n = 200  # below the per-client queue bound, so "nothing lost" is exact

        def produce() -> None:
            for i in range(n):
                state.bus.publish(TrainingProgress(run_id="fake", total_tokens=n, step=i, tokens_per_s=1.0))
                if i == n // 4:
                    _vanish(clients[2])
                time.sleep(0.002)
            state.bus.publish(TrainingDone(run_id="fake", sae_ids=[]))
        t = threading.Thread(target=produce)
        t.start()
        for c in clients[:2]:
            msgs = _recv_until(c, lambda m: m["type"] == "training_done")
            seqs = [m["step"] for m in msgs if m["type"] == "training_progress"]
            assert seqs == list(range(n))  # nothing lost, nothing reordered
        t.join()
        deadline = time.time() + 10
        while state.bus.n_subscribers != 2 and time.time() < deadline:
            time.sleep(0.05)
        assert state.bus.n_subscribers == 2  # the vanished socket was cleaned up
        assert httpx.get(base + "/api/health").status_code == 200


def test_training_survives_a_vanishing_client(make_app) -> None:
    app, state = make_app()
    require_route(app, "POST", "/api/training")
    with live_server(app) as base, ExitStack() as stack:
        url = base.replace("http", "ws") + "/ws"
        clients = [stack.enter_context(connect(url, ping_interval=None, max_queue=None)) for _ in range(3)]
        r = httpx.post(base + "/api/training", json=training_body(app), timeout=30)
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"] if "run_id" in r.json() else r.json()["id"]
        progress = lambda m: m["type"] == "training_progress" and m.get("run_id") == run_id  # noqa: E731
        _recv_until(clients[2], progress)
        _vanish(clients[2])
        done = lambda m: m["type"] in ("training_done", "training_failed") and m.get("run_id") == run_id  # noqa: E731
        for c in clients[:2]:
            msgs = _recv_until(c, done, timeout=240)
            assert msgs[-1]["type"] == "training_done", msgs[-1]
            assert any(progress(m) for m in msgs)
        run = httpx.get(f"{base}/api/training/{run_id}", timeout=10).json()
        assert run["status"] == "done", run
