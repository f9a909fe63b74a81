"""Lightning callbacks: progress snapshots per member (published through ``progress.Progress``, whose
heartbeat keeps events flowing in every phase), metric history, checkpoints with the data stream's read
position of the last trained batch, cancel."""
from __future__ import annotations

import resource
import sys
import threading
import time
from typing import Any, Callable

import lightning.pytorch as pl
import torch

from .lit_module import SAETrainingModule
from .progress import Progress, WorkPlan

__all__ = ["CancelCallback", "CheckpointCallback", "Progress", "ProgressCallback", "WorkPlan", "peak_memory_bytes"]


def peak_memory_bytes(device: torch.device | str | None = None) -> int:
    """Peak GPU memory allocated on CUDA, else the process's peak resident set size."""
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated(dev))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def member_numbers(m: SAETrainingModule) -> list[dict[str, Any]]:
    """The latest step's numbers of every member (the ``members`` of a progress event)."""
    lrs = m.current_lrs()
    return [{"index": s.index, "hook_name": s.hook_name, "architecture": s.architecture, "d_sae": s.d_sae,
             "k": s.k, "l1_coefficient": s.l1_coefficient, "mse": r.mse, "fvu": r.fvu, "l0": r.l0, "aux": r.aux,
             "dead_fraction": t.dead_fraction(), "lr": lrs[i] if i < len(lrs) else None}
            for i, (s, r, t) in enumerate(zip(m.members, m.last, m.trackers))]


def mean_over_members(members: list[dict[str, Any]]) -> dict[str, float | None]:
    """The explicit aggregate of the top-level progress numbers: the arithmetic mean over members."""
    out: dict[str, float | None] = {}
    for key in ("mse", "fvu", "l0", "dead_fraction"):
        vals = [p[key] for p in members if p.get(key) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


class ProgressCallback(pl.Callback):
    """After each step: update the snapshot; every ``record_every_s`` append a row to the metric history."""

    def __init__(self, progress: Progress, record: Callable[[int, int, dict], None], start_tokens: int,
                 device: Any, record_every_s: float = 1.0) -> None:
        self.progress, self.record, self.device = progress, record, device
        self.start_tokens, self.record_every_s = start_tokens, record_every_s
        self._t0 = 0.0
        self._last_record = 0.0
        self.tokens = start_tokens
        self.trained_batches = 0
        """Batches trained in this fit (the data loader reads ahead of it)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        m: SAETrainingModule = pl_module
        world = trainer.world_size
        self.trained_batches += 1
        self.tokens += int(batch.shape[0]) * world
        elapsed = max(1e-9, time.perf_counter() - self._t0)
        members = member_numbers(m)
        snap = {"step": m.step, "tokens": self.tokens, "tokens_per_s": (self.tokens - self.start_tokens) / elapsed,
                "peak_memory_bytes": peak_memory_bytes(self.device), "world_size": world, "members": members,
                **mean_over_members(members)}
        self.progress.update(**snap)
        last = self.tokens >= self.progress.total_tokens or trainer.global_step >= trainer.max_steps
        self.progress.step_done(m.step, final=last)  # the final step always goes out, so charts end on it
        now = time.perf_counter()
        if now - self._last_record >= self.record_every_s or last:
            self._last_record = now
            self.record(m.step, self.tokens, {**snap, "aggregate": "mean_over_members", "passes": self.progress.passes()})


class CheckpointCallback(pl.Callback):
    """Every ``every`` steps (and when the fit ends, cancelled or not) write a resumable checkpoint;
    ``save(module, tokens, trained_batches)`` stores the read position after the last trained batch."""

    def __init__(self, every: int, save: Callable[[SAETrainingModule, int, int], None], tokens: Callable[[], int],
                 trained: Callable[[], int]) -> None:
        self.every, self.save, self.tokens, self.trained = every, save, tokens, trained

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.every and (pl_module.step % self.every == 0) and trainer.is_global_zero:
            self.save(pl_module, self.tokens(), self.trained())

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self.save(pl_module, self.tokens(), self.trained())


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
