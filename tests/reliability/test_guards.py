"""The inference admission queue (compute, wait fairly, or 503 + Retry-After) and the timeout (504) guard,
driven through a fake slow ASGI app (tests may use fakes): the real inference routes are too fast on a tiny
model to fill the queue deterministically. ``test_queue.py`` drives the real routes."""
from __future__ import annotations

import asyncio
import json

from interpretability_workbench.server.metrics import Metrics
from interpretability_workbench.server.middleware import ProductionMiddleware
from interpretability_workbench.settings import Settings


def _fake_app(release: asyncio.Event, started: list):
    async def app(scope, receive, send):
        started.append(dict(scope["headers"]).get(b"x-tag", b"").decode() or 1)
        await release.wait()
        body = json.dumps({"ok": True}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app


async def _call(mw, path: str, method: str = "POST", peer: str = "127.0.0.1", tag: str = "") -> tuple[int, dict, dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(msg):
        sent.append(msg)
    scope = {"type": "http", "method": method, "path": path, "headers": [(b"x-tag", tag.encode())],
             "query_string": b"", "client": (peer, 1)}
    await mw(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(body)


def test_without_a_queue_the_bound_rejects_at_once(tmp_path) -> None:
    async def main() -> None:
        release, started = asyncio.Event(), []
        s = Settings(home=tmp_path, max_concurrent_inference=2, max_queued=0)
        mw = ProductionMiddleware(_fake_app(release, started), s, Metrics())
        busy = [asyncio.create_task(_call(mw, "/api/inference")) for _ in range(2)]
        while len(started) < 2:
            await asyncio.sleep(0.01)
        status, headers, body = await _call(mw, "/api/generate")
        assert status == 503 and headers["retry-after"] == "1"
        assert "IWB_MAX_CONCURRENT_INFERENCE" in body["detail"] and "IWB_MAX_QUEUED=0" in body["detail"]
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
        assert mw.in_flight == 1  # the work goes on (a thread cannot be stopped) and keeps its slot
        release.set()
        for _ in range(50):  # ...until it really ends
            if mw.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert mw.in_flight == 0 and started
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
            assert mw.in_flight == 1  # the thread still holds the slot...
            r2 = await c.post("/api/inference")
            # ...so a second request waits in the queue until its deadline, then is refused (never started)
            assert r2.status_code == 503 and int(r2.headers["retry-after"]) >= 1
            assert "IWB_REQUEST_TIMEOUT_S" in r2.json()["detail"] and not finished.is_set()
            release.set()
            for _ in range(200):
                if mw.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert finished.is_set() and mw.in_flight == 0
    asyncio.run(main())


def test_requests_beyond_the_bound_wait_in_the_queue_and_are_answered(tmp_path) -> None:
    async def main() -> None:
        release, started = asyncio.Event(), []
        s = Settings(home=tmp_path, max_concurrent_inference=2, max_queued=3)
        mw = ProductionMiddleware(_fake_app(release, started), s, Metrics())
        calls = [asyncio.create_task(_call(mw, "/api/inference", tag=str(i))) for i in range(5)]
        while len(started) < 2 or mw.queue.queued < 3:
            await asyncio.sleep(0.01)
        assert mw.in_flight == 2 and started == ["0", "1"]
        status, headers, body = await _call(mw, "/api/inference")  # the sixth: beyond the queue
        assert status == 503 and int(headers["retry-after"]) >= 1
        assert "IWB_MAX_QUEUED=3" in body["detail"] and "queue is full" in body["detail"]
        release.set()
        assert [(await t)[0] for t in calls] == [200] * 5
        assert started == ["0", "1", "2", "3", "4"] and mw.in_flight == 0 and mw.queue.queued == 0
    asyncio.run(main())


def test_queue_is_fair_between_clients(tmp_path) -> None:
    """Client A queues three requests, then B one: B's runs after A's next one, not after all of A's."""
    async def main() -> None:
        gates: dict[str, asyncio.Event] = {}
        started: list[str] = []

        async def app(scope, receive, send):
            tag = dict(scope["headers"])[b"x-tag"].decode()
            started.append(tag)
            gates[tag] = asyncio.Event()
            await gates[tag].wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        mw = ProductionMiddleware(app, Settings(home=tmp_path, max_concurrent_inference=1, max_queued=8), Metrics())
        tasks = [asyncio.create_task(_call(mw, "/api/inference", peer="10.0.0.1", tag="a0"))]
        while started != ["a0"]:
            await asyncio.sleep(0.005)
        for tag in ("a1", "a2", "a3"):
            tasks.append(asyncio.create_task(_call(mw, "/api/inference", peer="10.0.0.1", tag=tag)))
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(_call(mw, "/api/inference", peer="10.0.0.2", tag="b0")))
        while mw.queue.queued < 4:
            await asyncio.sleep(0.005)
        for _ in range(4):  # finish the running request; the next one in turn starts
            gates[started[-1]].set()
            n = len(started)
            while len(started) == n:
                await asyncio.sleep(0.005)
        gates[started[-1]].set()
        assert [(await t)[0] for t in tasks] == [200] * 5
        assert started == ["a0", "a1", "b0", "a2", "a3"]
    asyncio.run(main())


def test_a_request_still_waiting_at_its_deadline_gets_503_and_retry_after(tmp_path) -> None:
    async def main() -> None:
        release, started = asyncio.Event(), []

        async def stubborn(scope, receive, send):  # like a thread: holds its slot until it really ends
            started.append(dict(scope["headers"])[b"x-tag"].decode())
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    continue

        s = Settings(home=tmp_path, max_concurrent_inference=1, max_queued=4, request_timeout_s=0.3)
        mw = ProductionMiddleware(stubborn, s, Metrics())
        busy = asyncio.create_task(_call(mw, "/api/inference", tag="long"))
        while not started:
            await asyncio.sleep(0.005)
        status, headers, body = await _call(mw, "/api/inference", tag="late")
        assert status == 503 and int(headers["retry-after"]) >= 1 and "IWB_REQUEST_TIMEOUT_S" in body["detail"]
        assert started == ["long"] and mw.queue.queued == 0  # it never started and left the queue
        assert (await busy)[0] == 504  # the admitted one ran out of time while computing
        assert mw.in_flight == 1
        release.set()
        for _ in range(100):
            if mw.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert mw.in_flight == 0
    asyncio.run(main())
