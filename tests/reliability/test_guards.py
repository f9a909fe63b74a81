"""The concurrency (503) and timeout (504) guards, driven through a fake slow ASGI app (tests may use
fakes): the real inference routes are too fast on a tiny model to fill the semaphore deterministically."""
from __future__ import annotations

import asyncio
import json

from interpretability_workbench.server.metrics import Metrics
from interpretability_workbench.server.middleware import ProductionMiddleware
from interpretability_workbench.settings import Settings


def _fake_app(release: asyncio.Event, started: list[int]):
    async def app(scope, receive, send):
        started.append(1)
        await release.wait()
        body = json.dumps({"ok": True}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app


async def _call(mw, path: str, method: str = "POST") -> tuple[int, dict, dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(msg):
        sent.append(msg)
    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
             "client": ("127.0.0.1", 1)}
    await mw(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body)


def test_inference_concurrency_rejects_at_once_when_full(tmp_path) -> None:
    async def main() -> None:
        release, started = asyncio.Event(), []
        s = Settings(home=tmp_path, max_concurrent_inference=2)
        mw = ProductionMiddleware(_fake_app(release, started), s, Metrics())
        busy = [asyncio.create_task(_call(mw, "/api/inference")) for _ in range(2)]
        while len(started) < 2:
            await asyncio.sleep(0.01)
        status, headers, body = await _call(mw, "/api/generate")
        assert status == 503 and headers["retry-after"] == "1"
        assert "IWB_MAX_CONCURRENT_INFERENCE" in body["detail"]
        # other routes are not held back by the inference bound
        get = asyncio.create_task(_call(mw, "/api/model", "GET"))
        await asyncio.sleep(0.05)
        release.set()
        assert (await get)[0] == 200
        assert [(await t)[0] for t in busy] == [200, 200]
        assert mw.in_flight == 0
        assert (await _call(mw, "/api/inference"))[0] == 200
    asyncio.run(main())


def test_request_timeout_504(tmp_path) -> None:
    async def main() -> None:
        release, started = asyncio.Event(), []
        s = Settings(home=tmp_path, request_timeout_s=0.2)
        mw = ProductionMiddleware(_fake_app(release, started), s, Metrics())
        status, _, body = await _call(mw, "/api/provenance")
        assert status == 504 and "IWB_REQUEST_TIMEOUT_S" in body["detail"]
        assert mw.in_flight == 0  # the permit came back
    asyncio.run(main())
