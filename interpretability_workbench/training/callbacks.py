"""Lightning callbacks: progress snapshots (published to the event bus at >= 1 Hz by a heartbeat thread,
so progress flows even while the shuffle buffer fills), metric history, checkpoints, cancel."""
from __future__ import annotations

import resource
import sys
import threading
import time
from typing import Any, Callable

import lightning.pytorch as pl
import torch

from ..events import HookProgress, Publish, TrainingProgress
from .lit_module import SAETrainingModule


def peak_memory_bytes(device: torch.device | str | None = None) -> int:
    """Peak GPU memory allocated on CUDA, else the process's peak resident set size."""
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(dev))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


class Progress:
    """Thread-safe latest snapshot of a run, published as ``training_progress`` every ``interval_s``."""

    def __init__(self, publish: Publish, run_id: str, total_tokens: int, start_tokens: int = 0,
                 interval_s: float = 0.5) -> None:
        self._publish, self.run_id, self.total_tokens, self.interval_s = publish, run_id, total_tokens, interval_s
        self._lock = threading.Lock()
        self._snap: dict[str, Any] = {"step": 0, "tokens": start_tokens, "mse": None, "fvu": None, "l0": None,
                                      "dead_fraction": None, "tokens_per_s": 0.0, "eta_s": None, "lr": None,
                                      "peak_memory_bytes": 0, "phase": "starting", "per_hook": []}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_publish = 0.0
        self.tokens_read: Callable[[], int] = lambda: 0

    def update(self, **kw: Any) -> None:
        with self._lock:
            self._snap.update(kw)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap = dict(self._snap)
        snap["tokens_read"] = self.tokens_read()
        return snap

    def maybe_publish(self) -> None:
        """Publish unless an event went out less than ``interval_s`` ago."""
        if time.monotonic() - self._last_publish >= self.interval_s:
            self.publish()

    def publish(self) -> None:
        self._last_publish = time.monotonic()
        snap = self.snapshot()
        snap["per_hook"] = [HookProgress(**h) for h in snap.get("per_hook") or []]
        self._publish(TrainingProgress(run_id=self.run_id, total_tokens=self.total_tokens, **snap))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(max(self.interval_s, 0.25)):
                self.maybe_publish()
        self._thread = threading.Thread(target=loop, name=f"progress-{self.run_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class ProgressCallback(pl.Callback):
    """After each step: update the snapshot; every ``record_every_s`` append a row to the metric history."""

    def __init__(self, progress: Progress, record: Callable[[int, int, dict], None], start_tokens: int,
                 device: Any, record_every_s: float = 1.0) -> None:
        self.progress, self.record, self.device = progress, record, device
        self.start_tokens, self.record_every_s = start_tokens, record_every_s
        self._t0 = 0.0
        self._last_record = 0.0
        self.tokens = start_tokens

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self.progress.update(phase="training")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        m: SAETrainingModule = pl_module
        world = trainer.world_size
        self.tokens += int(batch.shape[0]) * world
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        tps = (self.tokens - self.start_tokens) / elapsed
        remaining = max(0, self.progress.total_tokens - self.tokens)
        hooks = [s.cfg.hook_name for s in m.saes]
        per_hook = [{"hook_name": h, "mse": r.mse, "fvu": r.fvu, "l0": r.l0, "aux": r.aux,
                     "dead_fraction": t.dead_fraction()} for h, r, t in zip(hooks, m.last, m.trackers)]
        n = max(1, len(per_hook))
        snap = {
            "step": m.step, "tokens": self.tokens,
            "mse": sum(p["mse"] for p in per_hook) / n, "fvu": sum(p["fvu"] for p in per_hook) / n,
            "l0": sum(p["l0"] for p in per_hook) / n,
            "dead_fraction": sum(p["dead_fraction"] for p in per_hook) / n,
            "tokens_per_s": tps, "eta_s": remaining / tps if tps > 0 else None, "lr": m.current_lr(),
            "peak_memory_bytes": peak_memory_bytes(self.device), "world_size": world, "per_hook": per_hook,
        }
        self.progress.update(**snap)
        last = self.tokens >= self.progress.total_tokens or trainer.global_step >= trainer.max_steps
        if last:  # the final step always goes out, however short the run, so charts end on it
            self.progress.publish()
        else:
            self.progress.maybe_publish()
        now = time.perf_counter()
        if now - self._last_record >= self.record_every_s or last:
            self._last_record = now
            self.record(snap["step"], self.tokens, snap)


class CheckpointCallback(pl.Callback):
    """Every ``every`` steps (and when the fit ends, cancelled or not) write a resumable checkpoint."""

    def __init__(self, every: int, save: Callable[[SAETrainingModule, int], None], tokens: Callable[[], int]) -> None:
        self.every, self.save, self.tokens = every, save, tokens

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.every and (pl_module.step % self.every == 0) and trainer.is_global_zero:
            self.save(pl_module, self.tokens())

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self.save(pl_module, self.tokens())


class CancelCallback(pl.Callback):
    """Stop at the end of the step once ``cancel`` is set. With several processes every rank joins one small
    all-reduce per step, so all stop at the same step (only rank 0's event is ever set)."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        stop = self.cancel.is_set()
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True
