"""``WS /ws``: one socket per client for training progress, analysis progress, job events and live
logits. Server -> client messages are JSON objects with a ``type`` field (see ``events``); client ->
server messages too, dispatched to handlers registered with ``ws_handler``.

Each client reads from its own bounded queue (oldest dropped first), so a slow or vanished client
never slows a producer; a sender task and a receiver task run per socket.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import WorkbenchError

log = logging.getLogger(__name__)
router = APIRouter()

Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Any, dict[str, Any], Send, dict[str, Any]], Awaitable[None]]
"""handler(state, message, send, session) — ``session`` is a per-socket dict for handler state."""
HANDLERS: dict[str, Handler] = {}


def ws_handler(msg_type: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[msg_type] = fn
        return fn
    return deco


@ws_handler("ping")
async def _ping(state: Any, msg: dict[str, Any], send: Send, session: dict[str, Any]) -> None:
    await send({"type": "pong", "model_status": state.model_status})


async def _authorized(ws: WebSocket) -> bool:
    checker = getattr(ws.app.state, "ws_auth", None)
    return True if checker is None else bool(checker(ws))


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    if not await _authorized(ws):
        await ws.close(code=4401, reason="missing or wrong API key: connect with ?token=<key>")
        return
    await ws.accept()
    state = ws.app.state.workbench
    sub = state.bus.subscribe()
    session: dict[str, Any] = {}
    send_lock = asyncio.Lock()

    async def send(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj))

    async def pump() -> None:
        while True:
            ev = await sub.get()
            await send(ev.to_dict())

    async def receive() -> None:
        while True:
            raw = await ws.receive_text()
            try:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    raise ValueError("message must be a JSON object")
            except ValueError as e:
                await send({"type": "error", "detail": f"bad message: {e}"})
                continue
            handler = HANDLERS.get(str(msg.get("type")))
            if handler is None:
                await send({"type": "error", "detail": f"unknown message type {msg.get('type')!r}; "
                                                       f"known: {sorted(HANDLERS)}"})
                continue
            try:
                await handler(state, msg, send, session)
            except WorkbenchError as e:
                await send({"type": "error", "detail": e.detail, "status": e.status_code})

    await send({"type": "hello", "model_status": state.model_status})
    tasks = [asyncio.create_task(pump()), asyncio.create_task(receive())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            exc = t.exception()
            if exc and not isinstance(exc, (WebSocketDisconnect, RuntimeError)):
                log.warning("websocket closed: %r", exc)
    finally:
        for t in tasks:
            t.cancel()
        for fn in session.get("_cleanup", []):
            fn()
        state.bus.unsubscribe(sub)
