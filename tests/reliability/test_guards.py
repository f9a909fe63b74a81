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
        for _ in range(50):  # the cancelled coroutine hands its permit back on its way out
            if mw.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert mw.in_flight == 0
    asyncio.run(main())


def test_timeout_answers_while_a_sync_route_thread_still_runs(tmp_path) -> None:
    """A plain `def` route runs in a thread that cannot be interrupted: the 504 must not wait for it, and
    its inference permit is held until the thread really ends."""
    import threading

    import httpx
    from fastapi import FastAPI

    release = threading.Event()
    finished = threading.Event()
    inner = FastAPI()

    @inner.post("/api/inference")
    def slow() -> dict:
        release.wait(30)
        finished.set()
        return {"ok": True}

    s = Settings(home=tmp_path, request_timeout_s=0.3, max_concurrent_inference=1)
    mw = ProductionMiddleware(inner, s, Metrics())

    async def main() -> None:
        transport = httpx.ASGITransport(app=mw)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/api/inference")
            assert r.status_code == 504 and not release.is_set()  # answered while the thread still runs
            assert mw.in_flight == 1  # the thread still holds the permit...
            r2 = await c.post("/api/inference")
            assert r2.status_code == 503  # ...so a second request is refused, not queued behind it
            release.set()
            for _ in range(200):
                if mw.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert finished.is_set() and mw.in_flight == 0
    asyncio.run(main())
