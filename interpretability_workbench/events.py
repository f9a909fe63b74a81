"""Typed events and an in-process pub/sub bus.

Producers (training threads, analysis jobs, inference) call ``publish`` from any thread; it never
blocks. Each asyncio subscriber owns a bounded queue: when a client reads slowly its oldest events
are dropped, so a slow or vanished WebSocket can never slow down or break the producer.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# event types (the WebSocket messages carry these in "type")
TRAINING_PROGRESS = "training_progress"
TRAINING_DONE = "training_done"
TRAINING_FAILED = "training_failed"
TRAINING_CANCELLED = "training_cancelled"
ANALYSIS_PROGRESS = "analysis_progress"
ANALYSIS_DONE = "analysis_done"
JOB = "job"
MODEL_LOADED = "model_loaded"
LOGITS = "logits"


@dataclass
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "ts": self.ts, **self.data}


class Subscription:
    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def _put(self, ev: Event) -> None:  # runs on the subscriber's loop
        if self.queue.full():
            try:
                self.queue.get_nowait()
                self.dropped += 1
            except asyncio.QueueEmpty:  # pragma: no cover
                pass
        self.queue.put_nowait(ev)

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self, max_queue: int = 256) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._callbacks: list[Callable[[Event], None]] = []
        self.max_queue = max_queue
        self.published = 0

    def subscribe(self) -> Subscription:
        """Subscribe from inside a running event loop."""
        sub = Subscription(asyncio.get_running_loop(), self.max_queue)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def add_callback(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Synchronous listener (CLI progress printing); returns a function that removes it."""
        with self._lock:
            self._callbacks.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._callbacks:
                    self._callbacks.remove(fn)
        return remove

    def publish(self, type_: str, **data: Any) -> Event:
        ev = Event(type_, data)
        with self._lock:
            subs = list(self._subs)
            cbs = list(self._callbacks)
            self.published += 1
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, ev)
            except RuntimeError:  # loop closed: the subscriber is gone
                self.unsubscribe(sub)
        for cb in cbs:
            try:
                cb(ev)
            except Exception:  # noqa: BLE001 - a listener must never break the producer
                pass
        return ev

    @property
    def n_subscribers(self) -> int:
        with self._lock:
            return len(self._subs)
