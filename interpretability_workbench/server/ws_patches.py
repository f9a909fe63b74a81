"""Live logits over ``/ws`` (message models in ``schemas/ws.py``).

Client -> server: ``subscribe_logits {text, top_k, patch_ids}`` (patch_ids null: the enabled patches),
``set_strength {patch_id, strength}``, ``commit_strength {patch_id}``, ``set_prompt {text}``,
``unsubscribe_logits``. Server -> client: ``logits`` — the comparison (as ``POST /api/inference`` answers
it) plus ``seq``, ``text``, ``top_k`` and ``latency_ms`` from the newest message folded into it to the result.

Each socket has one worker task: messages only record the newest request and wake it, so a burst
coalesces (latest wins) and the receive loop never waits on torch. The worker keeps a LiveSession (the
original result and the prompt's resid_pre at the lowest patched block), so a strength change reruns only
the blocks at and above that block, for the last position's logits. Strength changes act on the live model
in memory; the stored strength is written once, when the client commits it (or PATCHes the patch) or when
the socket closes.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import WorkbenchError
from .schemas.inference import InferenceResponse
from .schemas.ws import (CommitStrengthMsg, ErrorMsg, LogitsMsg, SetPromptMsg, SetStrengthMsg, SubscribeLogitsMsg,
                         UnsubscribeLogitsMsg)
from .ws import Send, ws_handler

_KEY = "live_logits"


class LiveLogits:
    def __init__(self, state: Any, send: Send) -> None:
        self.state, self.send = state, send
        self.session = state.inference.session()
        self.text: str | None = None
        self.top_k = 10
        self.patch_ids: list[str] | None = None
        self.pending: dict[str, float] = {}
        self.touched: set[str] = set()
        self.requested_at = time.perf_counter()
        self.seq = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def kick(self) -> None:
        self.requested_at = time.perf_counter()
        self._wake.set()

    def close(self) -> None:
        self._task.cancel()
        if self.touched:  # persist what this socket moved and nobody committed
            self.state.patches.commit(sorted(self.touched))

    def _compute(self, strengths: dict[str, float], text: str | None, top_k: int, pids: list[str] | None) -> Any:
        for pid, s in strengths.items():
            self.state.patches.set_strength(pid, s)
        return None if text is None else self.session.compare(text, top_k, pids)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            strengths, self.pending = self.pending, {}
            text, top_k, pids, t0 = self.text, self.top_k, self.patch_ids, self.requested_at
            try:
                c = await asyncio.to_thread(self._compute, strengths, text, top_k, pids)
            except WorkbenchError as e:
                await self.send(ErrorMsg(detail=e.detail, status=e.status_code))
                continue
            except Exception as e:  # noqa: BLE001 - report, keep the socket alive
                await self.send(ErrorMsg(detail=f"{type(e).__name__}: {e}", status=500))
                continue
            if c is None or self._wake.is_set() and self.text != text:
                continue  # a newer prompt is already waiting
            self.seq += 1
            await self.send(LogitsMsg(**InferenceResponse.from_comparison(c).model_dump(), seq=self.seq, text=text,
                                      top_k=top_k, latency_ms=(time.perf_counter() - t0) * 1000))


def _live(state: Any, send: Send, session: dict[str, Any]) -> LiveLogits:
    live = session.get(_KEY)
    if live is None:
        live = session[_KEY] = LiveLogits(state, send)
        session.setdefault("_cleanup", []).append(live.close)
    return live


@ws_handler("subscribe_logits")
async def subscribe_logits(state: Any, msg: SubscribeLogitsMsg, send: Send, session: dict[str, Any]) -> None:
    live = _live(state, send, session)
    live.text, live.top_k, live.patch_ids = msg.text, msg.top_k, msg.patch_ids
    live.kick()


@ws_handler("set_prompt")
async def set_prompt(state: Any, msg: SetPromptMsg, send: Send, session: dict[str, Any]) -> None:
    live = _live(state, send, session)
    live.text = msg.text
    live.kick()


@ws_handler("set_strength")
async def set_strength(state: Any, msg: SetStrengthMsg, send: Send, session: dict[str, Any]) -> None:
    state.patches.get(msg.patch_id)  # 404 now, not later
    live = _live(state, send, session)
    live.pending[msg.patch_id] = msg.strength
    live.touched.add(msg.patch_id)
    live.kick()


@ws_handler("commit_strength")
async def commit_strength(state: Any, msg: CommitStrengthMsg, send: Send, session: dict[str, Any]) -> None:
    state.patches.get(msg.patch_id)
    live = session.get(_KEY)
    if live is not None and msg.patch_id in live.pending:  # not yet applied by the worker: apply it now
        await asyncio.to_thread(state.patches.set_strength, msg.patch_id, live.pending[msg.patch_id])
    await asyncio.to_thread(state.patches.commit, [msg.patch_id])
    if live is not None:
        live.touched.discard(msg.patch_id)


@ws_handler("unsubscribe_logits")
async def unsubscribe_logits(state: Any, msg: UnsubscribeLogitsMsg, send: Send, session: dict[str, Any]) -> None:
    live = session.get(_KEY)
    if live is not None:
        live.text = None
