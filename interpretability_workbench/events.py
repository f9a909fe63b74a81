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
class MemberProgress:
    """One SAE's live numbers inside a training progress event (a run trains one SAE per hook, or a sweep
    grid per hook)."""

    index: int
    """Position of the SAE in the run (as in the run's final ``members``)."""
    hook_name: str
    architecture: str
    d_sae: int
    k: int
    """Active latents per token (topk, batchtopk)."""
    l1_coefficient: float
    """L1 weight (standard)."""
    mse: float | None = None
    fvu: float | None = None
    l0: float | None = None
    aux: float | None = None
    """AuxK loss (topk), the L1 term (standard), 0 otherwise."""
    dead_fraction: float | None = None
    lr: float | None = None


TRAINING_PHASES = ("starting", "preparing", "filling buffer", "training", "evaluating held-out",
                   "evaluating CE loss", "saving")
"""Phases of a run in order; the buffer is refilled between training steps, so the two alternate."""
AGGREGATE_RULE = "mean_over_members"


@dataclass
class TrainingProgress(Event):
    """A training run's latest snapshot (published at most every ``progress_interval_s``, and by a heartbeat
    at that rate in every phase). Per-SAE numbers are in ``members``; ``mse``/``fvu``/``l0``/
    ``dead_fraction`` at the top are their aggregate by the rule named in ``aggregate``."""

    type: ClassVar[str] = "training_progress"
    run_id: str
    total_tokens: int
    """Token budget of the run."""
    total_steps: int = 0
    step: int = 0
    tokens: int = 0
    """Training tokens consumed so far."""
    tokens_read: int = 0
    """Activations produced by the model (or read from a trace) so far; ahead of ``tokens`` by the block
    being served."""
    passes: int = 1
    """Passes over the training documents the reader has started (1: the corpus is not repeated so far)."""
    phase: str = "starting"
    """One of ``TRAINING_PHASES``."""
    phase_done: int = 0
    """Units of the current phase done."""
    phase_total: int = 0
    """Units of the current phase (0 when unknown)."""
    phase_unit: str = ""
    """What the phase counts: contexts, steps, batches, forwards, SAEs."""
    tokens_per_s: float | None = None
    eta_s: float | None = None
    """Seconds left for the whole run (training, evaluation, saving) at the rates measured so far."""
    peak_memory_bytes: int = 0
    world_size: int = 1
    aggregate: str = AGGREGATE_RULE
    """How the top-level mse/fvu/l0/dead_fraction combine the members: the arithmetic mean over them."""
    mse: float | None = None
    fvu: float | None = None
    l0: float | None = None
    dead_fraction: float | None = None
    members: list[MemberProgress] = field(default_factory=list)


@dataclass
class TrainingDone(Event):
    type: ClassVar[str] = "training_done"
    run_id: str
    sae_ids: list[str]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per member (SAE): index, hook_name, architecture, d_sae, k, l1_coefficient, sae_id, held_out_fvu,
    explained_variance, l0, dead_fraction, ce_loss_recovered, kl_with_sae."""
    train_tokens: int = 0
    """Activations trained on (all processes)."""
    held_out_tokens: int = 0
    """Held-out activations the metrics were measured on."""
    passes: int = 1
    """Passes over the training data (corpus or trace) the run started; 1: no data was repeated."""


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
