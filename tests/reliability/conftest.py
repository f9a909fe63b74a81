"""Fixtures for the reliability and security suite: apps with chosen settings, a real uvicorn server on
127.0.0.1 in a thread, and a helper that reads which routes exist (tests of routes other issues deliver
skip at runtime when the route is not there yet)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from interpretability_workbench.server.app import create_app
from interpretability_workbench.settings import Settings
from interpretability_workbench.state import WorkbenchState

API_KEY = "test-key-0123456789abcdef"


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., tuple[Any, WorkbenchState]]]:
    """make_app(**setting overrides) -> (app, state) with the tiny Llama loaded."""
    states: list[WorkbenchState] = []

    def make(**overrides: Any) -> tuple[Any, WorkbenchState]:
        s = settings.model_copy(update=overrides)
        st = WorkbenchState(s)
        st.load_model(s.model)
        states.append(st)
        return create_app(s, st, load_model=False), st

    yield make
    for st in states:
        shutdown = getattr(st, "shutdown", None)
        if shutdown:
            shutdown()
        st.close()


@pytest.fixture
def make_client(make_app) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        app, _ = make_app(**overrides)
        c = TestClient(app, raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def api_paths(app: Any) -> dict[str, set[str]]:
    """{path template: {methods}} from the app's OpenAPI schema."""
    return {p: {m.upper() for m in ops} for p, ops in app.openapi().get("paths", {}).items()}


def require_route(app: Any, method: str, path: str) -> None:
    """Skip (at runtime) when another issue's route is not in the schema yet."""
    if method.upper() not in api_paths(app).get(path, set()):
        pytest.skip(f"{method} {path} not available in this build")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                            ws_ping_interval=None)
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not t.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=15)


TINY_TRAINING = {
    "hook_name": "blocks.1.hook_resid_post", "hook_names": ["blocks.1.hook_resid_post"], "architecture": "topk", "d_sae": 128, "k": 8,
    "total_tokens": 2048, "batch_size": 256, "context_size": 32, "model_batch_size": 8,
    "buffer_tokens": 2048, "eval_tokens": 256, "ce_eval_contexts": 1, "checkpoint_every": 2,
    "analyze": False, "normalize": True,
}


def training_body(app: Any, **overrides: Any) -> dict[str, Any]:
    """A small training request for the tiny model, keeping only the fields POST /api/training declares."""
    spec = app.openapi()
    op = spec["paths"]["/api/training"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    props = set(schema.get("properties", {}))
    body = {**TINY_TRAINING, **overrides}
    return {k: v for k, v in body.items() if k in props}


def same_inference_answer(a: dict, b: dict) -> None:
    """Two /api/inference answers agree up to float32 rounding (batched vs alone): token lists may swap
    only where two probabilities tie to 1e-6."""
    assert (a["patch_ids"], a["n_tokens"], a["from_layer"]) == (b["patch_ids"], b["n_tokens"], b["from_layer"])
    assert a["kl"] == pytest.approx(b["kl"], rel=1e-3, abs=1e-7)
    for key in ("original", "patched"):
        pa, pb = [t["prob"] for t in a[key]], [t["prob"] for t in b[key]]
        assert pa == pytest.approx(pb, abs=1e-6)
        for i, (ta, tb) in enumerate(zip(a[key], b[key])):
            if ta["id"] != tb["id"]:  # only a near tie may swap places
                assert abs(pa[i] - pa[min(i + 1, len(pa) - 1)]) < 1e-6 or abs(pa[i] - pa[max(i - 1, 0)]) < 1e-6
