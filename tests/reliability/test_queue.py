"""Many clients on one server (a real uvicorn on 127.0.0.1, the tiny Llama): a burst of concurrent
``/api/inference`` requests within the queue bound all answer 200 with the results of the same requests made
one at a time; beyond the queue the answer is 503 with ``Retry-After``."""
from __future__ import annotations

import asyncio

import httpx
from patches.conftest import make_sae  # tests/ is on sys.path via the root conftest

from .conftest import live_server, same_inference_answer

TEXTS = ["Return the number of items in the list", "def read(path):\n    return open(path).read()",
         "The module provides a class for parsing", "Open the file and read every line of it, then close it",
         "Compute the sum", "A list of the names of every file in the folder, sorted by size"]


def test_sixty_concurrent_requests_within_the_queue_all_answer_like_sequential_ones(make_app):
    app, state = make_app(rate_limit="100000/minute", max_concurrent_inference=4, max_queued=64)
    sid1, _ = make_sae(state, layer=1)
    sid2, _ = make_sae(state, layer=2, seed=1)
    steer = state.patches.create(sae_id=sid1, features=[2], mode="steer", strength=6.0).id
    clamp = state.patches.create(sae_id=sid2, features=[4], mode="clamp", strength=1.0).id
    sets = [[], [steer], [clamp], None]  # None: the enabled patches (both)
    bodies = [{"text": TEXTS[i % len(TEXTS)], "top_k": 5, "patch_ids": sets[i % len(sets)]} for i in range(60)]
    before = state.inference.batch_stats()

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            return list(await asyncio.gather(*(c.post("/api/inference", json=b) for b in bodies)))

    with live_server(app) as base:
        concurrent = asyncio.run(burst(base))
        stats = state.inference.batch_stats()
        with httpx.Client(base_url=base, timeout=120) as c:
            sequential = [c.post("/api/inference", json=b) for b in bodies]
    assert [r.status_code for r in concurrent] == [200] * 60, [r.text for r in concurrent if r.status_code != 200]
    assert [r.status_code for r in sequential] == [200] * 60
    for a, b in zip(concurrent, sequential):
        same_inference_answer(a.json(), b.json())
    assert stats.requests - before.requests == 60 and stats.largest > 1  # they really ran in batches


def test_beyond_the_queue_is_503_with_retry_after(make_app):
    app, state = make_app(rate_limit="100000/minute", max_concurrent_inference=1, max_queued=1)

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            tasks = [asyncio.create_task(c.post("/api/inference", json={"text": TEXTS[i], "top_k": 3}))
                     for i in range(6)]
            try:
                while sum(t.done() for t in tasks) < 4:  # one computes (held below), one waits, four are refused
                    await asyncio.sleep(0.01)
            finally:
                state.model.lock.release()
            return [await t for t in tasks]

    with live_server(app) as base:
        state.model.lock.acquire()  # the first request cannot finish until the refusals are in
        got = asyncio.run(burst(base))
    codes = sorted(r.status_code for r in got)
    assert codes == [200, 200, 503, 503, 503, 503]
    for r in got:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1 and "IWB_MAX_QUEUED=1" in r.json()["detail"]
