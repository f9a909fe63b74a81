"""Live logits over ``/ws``.

Client -> server:
  ``{type: "subscribe_logits", text, top_k?, patch_ids?}``  (patch_ids null/absent: the enabled patches)
  ``{type: "set_strength", patch_id, strength}``
  ``{type: "set_prompt", text}``
  ``{type: "unsubscribe_logits"}``
Server -> client:
  ``{type: "logits", seq, text, patch_ids, top_k, original, patched, moved, kl, from_layer, n_tokens,
  latency_ms}`` — latency from the newest message folded into it to the result.

Each socket has one worker task: messages only record the newest request and wake it, so a burst
coalesces (latest wins) and the receive loop never waits on torch. The worker keeps a LiveSession (the
original result and the prompt's resid_pre at the lowest patched block), so a strength change reruns only
the blocks at and above that block, for the last position's logits.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from ..errors import Invalid, WorkbenchError
from ..inference.engine import LiveSession
from .ws import Send, ws_handler

_KEY = "live_logits"


class LiveLogits:
    def __init__(self, state: Any, send: Send) -> None:
        self.state, self.send = state, send
        self.session = LiveSession(state)
        self.text: str | None = None
        self.top_k = 10
        self.patch_ids: list[str] | None = None
        self.pending: dict[str, float] = {}
        self.requested_at = time.perf_counter()
        self.seq = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def kick(self) -> None:
        self.requested_at = time.perf_counter()
        self._wake.set()

    def close(self) -> None:
        self._task.cancel()

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
                await self.send({"type": "error", "detail": e.detail, "status": e.status_code})
                continue
            except Exception as e:  # noqa: BLE001 - report, keep the socket alive
                await self.send({"type": "error", "detail": f"{type(e).__name__}: {e}", "status": 500})
                continue
            if c is None or self._wake.is_set() and self.text != text:
                continue  # a newer prompt is already waiting
            self.seq += 1
            await self.send({
                "type": "logits", "seq": self.seq, "text": text, "top_k": top_k, "patch_ids": c.patch_ids,
                "original": [t.to_dict() for t in c.original], "patched": [t.to_dict() for t in c.patched],
                "moved": [m.to_dict() for m in c.moved], "kl": c.kl, "from_layer": c.from_layer,
                "n_tokens": c.n_tokens, "compute_ms": c.latency_ms,
                "latency_ms": (time.perf_counter() - t0) * 1000})


def _live(state: Any, send: Send, session: dict[str, Any]) -> LiveLogits:
    live = session.get(_KEY)
    if live is None:
        live = session[_KEY] = LiveLogits(state, send)
        session.setdefault("_cleanup", []).append(live.close)
    return live


def _text(msg: dict[str, Any]) -> str:
    text = msg.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("text is empty; give a prompt of at least one token")
    return text


@ws_handler("subscribe_logits")
async def subscribe_logits(state: Any, msg: dict[str, Any], send: Send, session: dict[str, Any]) -> None:
    text = _text(msg)
    top_k = msg.get("top_k", 10)
    if not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise Invalid("top_k must be an integer in 1..100")
    pids = msg.get("patch_ids")
    if pids is not None and (not isinstance(pids, list) or not all(isinstance(p, str) for p in pids)):
        raise Invalid("patch_ids must be a list of patch ids or null")
    live = _live(state, send, session)
    live.text, live.top_k, live.patch_ids = text, top_k, pids
    live.kick()


@ws_handler("set_prompt")
async def set_prompt(state: Any, msg: dict[str, Any], send: Send, session: dict[str, Any]) -> None:
    live = _live(state, send, session)
    live.text = _text(msg)
    live.kick()


@ws_handler("set_strength")
async def set_strength(state: Any, msg: dict[str, Any], send: Send, session: dict[str, Any]) -> None:
    pid, strength = msg.get("patch_id"), msg.get("strength")
    if not isinstance(pid, str):
        raise Invalid("patch_id must be a string")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or strength != strength:
        raise Invalid("strength must be a number")
    state.patches.get(pid)  # 404 now, not later
    live = _live(state, send, session)
    live.pending[pid] = float(strength)
    live.kick()


@ws_handler("unsubscribe_logits")
async def unsubscribe_logits(state: Any, msg: dict[str, Any], send: Send, session: dict[str, Any]) -> None:
    live = session.get(_KEY)
    if live is not None:
        live.text = None
