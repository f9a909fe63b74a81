"""Worker threads of long jobs (training runs, transcoder runs, behaviour searches): the cancel flag each one
polls, and the two moves every owner of such threads makes — wait for one, and interrupt all at shutdown."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol


class Cancel(threading.Event):
    """Set to stop a worker at its next step; ``reason`` says why."""

    reason = "cancelled"
    """'cancelled' (the user asked) or 'interrupted' (a shutdown: the job stays resumable)."""


class Worker(Protocol):
    thread: threading.Thread
    cancel: Cancel


class Handle(NamedTuple):
    """A running worker: its thread and its cancel flag (what ``join`` and ``interrupt_all`` take)."""

    thread: threading.Thread
    cancel: Cancel


class Stopped(Exception):
    """Raised inside a worker's work when it sees its cancel flag set; ``reason`` is the flag's."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def join(lock: Any, active: Mapping[str, Worker], key: str, timeout: float | None) -> None:
    """Wait up to ``timeout`` for the worker of ``key`` (at once when there is none)."""
    with lock:
        w = active.get(key)
    if w is not None:
        w.thread.join(timeout)


def interrupt_all(lock: Any, active: Mapping[str, Worker], timeout: float) -> None:
    """Mark every worker interrupted, then wait up to ``timeout`` for each to stop."""
    with lock:
        workers = list(active.values())
    for w in workers:
        w.cancel.reason = "interrupted"
        w.cancel.set()
    for w in workers:
        w.thread.join(timeout)
