"""Typed events and an in-process pub/sub bus.

Each event is a dataclass whose ``type`` names it on the WebSocket (``server/schemas/ws.py`` holds the
wire twin of every event, and a test keeps the two in step). Producers (training threads, analysis jobs,
the model loader) call ``publish(event)`` from any thread; it never blocks. Each asyncio subscriber owns a
bounded queue: when a client reads slowly its oldest events are dropped, so a slow or vanished WebSocket
can never slow down or break the producer. Synchronous callbacks (``add_callback``) serve the CLI's
progress lines, the metrics exporter and the composition root's cross-service reactions.
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Event:
    """Base of every event; ``ts`` is the unix time it was made."""

    type: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass
class HookProgress:
    """One hook's live numbers inside a training progress event."""

    hook_name: str
    mse: float | None = None
    fvu: float | None = None
    l0: float | None = None
    aux: float | None = None
    """AuxK loss (topk), 0 otherwise."""
    dead_fraction: float | None = None


@dataclass
class TrainingProgress(Event):
    """A training run's latest snapshot (published at most every ``progress_interval_s``)."""

    type: ClassVar[str] = "training_progress"
    run_id: str
    total_tokens: int
    """Token budget of the run."""
    step: int = 0
    tokens: int = 0
    """Training tokens consumed so far."""
    tokens_read: int = 0
    """Activations produced by the model so far (ahead of ``tokens`` while the shuffle buffer fills)."""
    mse: float | None = None
    fvu: float | None = None
    l0: float | None = None
    dead_fraction: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    lr: float | None = None
    peak_memory_bytes: int = 0
    phase: str = "starting"
    """starting | filling buffer | training | evaluating."""
    world_size: int = 1
    per_hook: list[HookProgress] = field(default_factory=list)


@dataclass
class TrainingDone(Event):
    type: ClassVar[str] = "training_done"
    run_id: str
    sae_ids: list[str]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per hook: hook_name, sae_id, held_out_fvu, explained_variance, l0, dead_fraction, ce_loss_recovered,
    kl_with_sae, peak_memory_bytes."""


@dataclass
class TrainingFailed(Event):
    type: ClassVar[str] = "training_failed"
    run_id: str
    error: str


@dataclass
class TrainingCancelled(Event):
    type: ClassVar[str] = "training_cancelled"
    run_id: str
    step: int = 0
    tokens: int = 0
    reason: str = "cancelled"
    """cancelled (by the user) or interrupted (server shutdown)."""


@dataclass
class AnalysisProgress(Event):
    type: ClassVar[str] = "analysis_progress"
    sae_id: str
    phase: str
    """activations | windows | weights | saving."""
    done: int
    total: int


@dataclass
class AnalysisDone(Event):
    type: ClassVar[str] = "analysis_done"
    sae_id: str
    status: str
    """done | failed | cancelled."""
    error: str | None = None
    n_features: int = 0
    n_tokens: int = 0
    seconds: float = 0.0


@dataclass
class ModelLoaded(Event):
    type: ClassVar[str] = "model_loaded"
    model: dict[str, Any]
    """The model's description (as ``GET /api/model`` reports it)."""


@dataclass
class JobProgress(Event):
    """Progress of a background job that is not a training run or an analysis."""

    type: ClassVar[str] = "job"
    job_id: str
    kind: str
    status: str
    """queued | running | done | failed | cancelled | interrupted."""
    done: int = 0
    total: int = 0
    detail: str | None = None


@dataclass
class BehaviourCandidate(Event):
    """A behaviour-removal search evaluated one candidate (``job`` events carry the job's status)."""

    type: ClassVar[str] = "behaviour_candidate"
    job_id: str
    index: int
    """Evaluation order within the job."""
    stage: str
    """screen | refine | prune | combine."""
    edits: list[dict[str, Any]]
    """One per SAE: sae_id, hook_name, layer, mode, strength, features."""
    search: dict[str, Any]
    """Metrics on the search split (n_positive, n_negative, target_before, target_after, target_ratio,
    kl_mean, kl_max, max_target_change)."""
    held_out: dict[str, Any]
    """The same metrics on the held-out split."""
    feasible: bool
    """Within the budget on the search split."""
    objective: float
    budget_use: float
    best_index: int | None = None
    """The best within-budget candidate so far."""


EVENT_TYPES: tuple[type[Event], ...] = (TrainingProgress, TrainingDone, TrainingFailed, TrainingCancelled,
                                        AnalysisProgress, AnalysisDone, ModelLoaded, JobProgress,
                                        BehaviourCandidate)
"""Every event the bus carries (each has a wire twin in ``server/schemas/ws.py``)."""


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


Publish = Callable[[Event], Event]
"""What producers get: a function that publishes one event (``EventBus.publish``)."""


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
        """Synchronous listener (CLI progress, metrics, cross-service reactions); returns its remover."""
        with self._lock:
            self._callbacks.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._callbacks:
                    self._callbacks.remove(fn)
        return remove

    def on(self, kind: type[Event], fn: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every published event of class ``kind``; returns its remover."""
        def filtered(ev: Event) -> None:
            if isinstance(ev, kind):
                fn(ev)
        return self.add_callback(filtered)

    def publish(self, ev: Event) -> Event:
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
