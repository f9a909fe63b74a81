"""Progress of one run: the latest snapshot, named phases with their own done/total, and an ETA for the
whole pipeline from the rates measured so far. A heartbeat thread publishes ``training_progress`` every
``interval_s`` whatever the phase, so the stream of events never stops while the buffer fills or the
evaluation runs; the counters inside move as each model batch, step or evaluation forward completes."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..events import MemberProgress, Publish, TrainingProgress


@dataclass
class WorkPlan:
    """What is left after training, in model-forward tokens, for the ETA."""

    held_out_tokens: int
    """Rows of the held-out evaluation (recording forwards)."""
    ce_forward_tokens: int
    """Tokens of the CE-loss forwards: contexts x context_size x (1 clean + 2 per SAE)."""


class Progress:
    """Thread-safe snapshot of a run, published as ``training_progress``."""

    def __init__(self, publish: Publish, run_id: str, total_tokens: int, *, total_steps: int, start_tokens: int = 0,
                 start_step: int = 0, interval_s: float = 0.5, plan: WorkPlan | None = None) -> None:
        self._publish, self.run_id, self.total_tokens = publish, run_id, total_tokens
        self.total_steps, self.interval_s, self.plan = total_steps, interval_s, plan or WorkPlan(0, 0)
        self._lock = threading.Lock()
        self._snap: dict[str, Any] = {"step": start_step, "tokens": start_tokens, "tokens_per_s": None,
                                      "peak_memory_bytes": 0, "world_size": 1, "passes": 1, "mse": None,
                                      "fvu": None, "l0": None, "dead_fraction": None, "members": []}
        self._phase = ("starting", 0, 0, "")
        self._phase_t0 = time.monotonic()
        self._resume_phase: tuple[str, int, int, str] | None = None
        self._fwd_tokens, self._fwd_s = 0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_publish = 0.0
        self.tokens_read: Callable[[], int] = lambda: 0
        self.passes: Callable[[], int] = lambda: 1

    # updates -----------------------------------------------------------------------------
    def update(self, **kw: Any) -> None:
        with self._lock:
            self._snap.update(kw)

    def phase(self, name: str, total: int = 0, unit: str = "", done: int = 0) -> None:
        """Enter a phase (published at once)."""
        with self._lock:
            self._phase = (name, done, total, unit)
            self._phase_t0 = time.monotonic()
        self.publish()

    def advance(self, done: int, total: int | None = None) -> None:
        """Units of the current phase done (published at most every ``interval_s``)."""
        with self._lock:
            name, _, t, unit = self._phase
            self._phase = (name, done, t if total is None else total, unit)
        self.maybe_publish()

    def step_done(self, step: int, *, final: bool = False) -> None:
        """A training step ended: the 'training' phase counts it (the final step is always published)."""
        with self._lock:
            if self._phase[0] != "training":
                self._phase_t0 = time.monotonic()
            self._phase = ("training", step, self.total_steps, "steps")
            self._resume_phase = None
        self.publish() if final else self.maybe_publish()

    def begin_fill(self, total_contexts: int) -> None:
        """A shuffle block is being read and encoded: 'filling buffer', then back to the phase it interrupted."""
        with self._lock:
            if self._phase[0] != "filling buffer":
                self._resume_phase = self._phase
        self.phase("filling buffer", total_contexts, "contexts")

    def end_fill(self) -> None:
        with self._lock:
            back, self._resume_phase = self._resume_phase, None
        if back is not None:
            self.phase(back[0], back[2], back[3], done=back[1])

    def forward_done(self, tokens: int, seconds: float) -> None:
        """Measured model throughput (feeds the ETA of the buffer fills and the evaluation)."""
        with self._lock:
            self._fwd_tokens += tokens
            self._fwd_s += seconds

    def snapshot_value(self, key: str) -> Any:
        with self._lock:
            return self._snap.get(key)

    # publishing --------------------------------------------------------------------------
    def _eta(self, snap: dict[str, Any], phase: tuple[str, int, int, str], since: float) -> float | None:
        fwd = self._fwd_tokens / self._fwd_s if self._fwd_s > 0 else None
        name, done, total, _ = phase
        evals = (self.plan.held_out_tokens + self.plan.ce_forward_tokens) / fwd if fwd else None
        left_rows = max(0, self.total_tokens - int(snap["tokens"]))
        rate = snap.get("tokens_per_s") or None
        if name in ("evaluating held-out", "evaluating CE loss", "saving"):
            if done > 0 and total > done:  # measured in this phase
                here = (time.monotonic() - since) / done * (total - done)
            else:
                here = evals if evals is not None and name == "evaluating held-out" else 0.0
            later = (self.plan.ce_forward_tokens / fwd if fwd else 0.0) if name == "evaluating held-out" else 0.0
            return (here or 0.0) + later
        if rate is None:  # nothing trained yet: the forwards alone bound the training time from below
            rate = fwd
        if rate is None or evals is None:
            return None
        return left_rows / rate + evals

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap = dict(self._snap)
            phase, since = self._phase, self._phase_t0
            snap["eta_s"] = self._eta(snap, phase, since)
        snap["phase"], snap["phase_done"], snap["phase_total"], snap["phase_unit"] = phase
        snap["tokens_read"] = self.tokens_read()
        snap["passes"] = self.passes()
        return snap

    def maybe_publish(self) -> None:
        """Publish unless an event went out less than ``interval_s`` ago."""
        if time.monotonic() - self._last_publish >= self.interval_s:
            self.publish()

    def publish(self) -> None:
        self._last_publish = time.monotonic()
        snap = self.snapshot()
        snap["members"] = [MemberProgress(**m) for m in snap.get("members") or []]
        self._publish(TrainingProgress(run_id=self.run_id, total_tokens=self.total_tokens,
                                       total_steps=self.total_steps, **snap))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(max(self.interval_s, 0.05)):
                self.publish()
        self._thread = threading.Thread(target=loop, name=f"progress-{self.run_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
