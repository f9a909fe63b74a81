"""``WS /ws``: one socket per client for training progress, analysis progress, job events and live
logits. Every frame is a JSON object with a ``type``; both directions are typed by the discriminated unions
in ``schemas/ws.py`` (listed in the OpenAPI document). Client messages are parsed into their model and
dispatched to the handler registered for their type with ``ws_handler``.

Each client reads from its own bounded queue (oldest dropped first), so a slow or vanished client
never slows a producer; a sender task and a receiver task run per socket.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from ..errors import WorkbenchError
from ..events import Event
from .schemas.ws import EVENT_MESSAGES, ErrorMsg, HelloMsg, PingMsg, PongMsg, client_message

log = logging.getLogger(__name__)
router = APIRouter()

Send = Callable[[BaseModel], Awaitable[None]]
Handler = Callable[[Any, Any, Send, dict[str, Any]], Awaitable[None]]
"""handler(state, message model, send, session) — ``session`` is a per-socket dict for handler state."""
HANDLERS: dict[str, Handler] = {}


def ws_handler(msg_type: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        HANDLERS[msg_type] = fn
        return fn
    return deco


@ws_handler("ping")
async def _ping(state: Any, msg: PingMsg, send: Send, session: dict[str, Any]) -> None:
    await send(PongMsg(model_status=state.model.status))


def event_message(ev: Event) -> BaseModel:
    """The wire model of a bus event (validated: a producer that drifts from the schema fails loudly here)."""
    return EVENT_MESSAGES[ev.type].model_validate(ev.to_dict())


def _parse(raw: str) -> BaseModel | ErrorMsg:
    try:
        obj = json.loads(raw)
    except ValueError as e:
        return ErrorMsg(detail=f"bad message: {e}", status=400)
    if not isinstance(obj, dict):
        return ErrorMsg(detail="bad message: message must be a JSON object", status=400)
    if obj.get("type") not in HANDLERS:
        return ErrorMsg(detail=f"unknown message type {obj.get('type')!r}; known: {sorted(HANDLERS)}", status=400)
    try:
        return client_message.validate_python(obj)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err.get("loc", ())[1:])
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return ErrorMsg(detail=f"bad {obj.get('type')} message: " + "; ".join(parts), status=422)


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

    async def send(msg: BaseModel) -> None:
        async with send_lock:
            await ws.send_text(msg.model_dump_json())

    async def pump() -> None:
        while True:
            ev = await sub.get()
            await send(event_message(ev))

    async def receive() -> None:
        while True:
            msg = _parse(await ws.receive_text())
            if isinstance(msg, ErrorMsg):
                await send(msg)
                continue
            try:
                await HANDLERS[msg.type](state, msg, send, session)  # type: ignore[attr-defined]
            except WorkbenchError as e:
                await send(ErrorMsg(detail=e.detail, status=e.status_code))

    await send(HelloMsg(model_status=state.model.status))
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
