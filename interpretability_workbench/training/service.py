"""TrainingService (``state.training``): start, list, inspect, cancel and resume SAE training runs.

Each run trains in its own worker thread; one run at a time (409 otherwise). On start-up, runs left
'running' by a crash are marked 'interrupted'; ``resume`` continues them from their last checkpoint.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, NamedTuple

from ..errors import Conflict, Invalid, NotFound
from ..events import TRAINING_FAILED
from ..store.db import new_id
from .config import TrainingConfig
from .ddp import CLI_HINT, check_multiprocess, is_multiprocess

log = logging.getLogger(__name__)
RESUMABLE = ("interrupted", "cancelled", "failed")


class _Cancel(threading.Event):
    reason = "cancelled"


class RunHandle(NamedTuple):
    thread: threading.Thread
    cancel: _Cancel
    model_id: str


class TrainingService:
    def __init__(self, state: Any) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._active: dict[str, RunHandle] = {}
        n = state.db.execute("UPDATE runs SET status = 'interrupted', updated_at = ? WHERE status IN ('running', 'queued')",
                             (time.time(),)).rowcount
        if n:
            log.warning("marked %d run(s) interrupted; POST /api/training/{run_id}/resume continues them", n)

    # queries ---------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        return self.state.db.query("SELECT * FROM runs ORDER BY created_at DESC")

    def get(self, run_id: str) -> dict[str, Any]:
        row = self.state.db.get("runs", id=run_id)
        if row is None:
            raise NotFound(f"training run {run_id!r} not found; GET /api/training lists them")
        return row

    def history(self, run_id: str, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self.state.db.query("SELECT step, tokens, data_json FROM metrics WHERE run_id = ? ORDER BY step",
                                   (run_id,))
        if len(rows) > limit:  # thin evenly, keep the last
            stride = -(-len(rows) // limit)
            rows = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
        return rows

    def active_run(self) -> str | None:
        with self._lock:
            for rid, h in self._active.items():
                if h.thread.is_alive():
                    return rid
        return None

    # commands --------------------------------------------------------------------------
    def start(self, cfg: TrainingConfig, *, multiprocess: bool = False) -> str:
        """Start a run in a worker thread. Multi-process (DDP) settings need ``multiprocess=True``: only the
        CLI, whose command line Lightning can re-execute per process, passes it (see training/ddp.py)."""
        self._check_processes(cfg, multiprocess)
        lm = self.state.require_model()
        run_id = new_id("run")
        now = time.time()
        with self._lock:
            self._check_free(lm.model_id)
            self.state.db.insert("runs", {"id": run_id, "model_id": lm.model_id, "status": "queued",
                                          "config_json": cfg.to_dict(), "created_at": now, "updated_at": now})
            self._spawn(run_id, cfg, lm, resume=False)
        return run_id

    def resume(self, run_id: str, *, multiprocess: bool = False) -> str:
        row = self.get(run_id)
        if row["status"] not in RESUMABLE:
            raise Conflict(f"run {run_id} is {row['status']}; only {', '.join(RESUMABLE)} runs can be resumed")
        lm = self.state.require_model()
        if lm.model_id != row["model_id"]:
            raise Conflict(f"run {run_id} trains on {row['model_id']!r} but {lm.model_id!r} is loaded; load it first")
        try:
            cfg = TrainingConfig.from_dict(row["config_json"])
        except (TypeError, ValueError) as e:
            raise Invalid(f"run {run_id} has an unusable config: {e}") from None
        self._check_processes(cfg, multiprocess, resume_id=run_id)
        with self._lock:
            self._check_free(lm.model_id)
            self.state.db.update("runs", {"id": run_id}, {"status": "queued", "updated_at": time.time()})
            self._spawn(run_id, cfg, lm, resume=True)
        return run_id

    def cancel(self, run_id: str) -> None:
        row = self.get(run_id)
        with self._lock:
            h = self._active.get(run_id)
        # the worker may still be wrapping up a finished run: its status, not the thread, decides
        if h is None or not h.thread.is_alive() or row["status"] not in ("queued", "running"):
            raise Conflict(f"run {run_id} is not running (status {row['status']})")
        h.cancel.set()

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        with self._lock:
            h = self._active.get(run_id)
        if h is not None:
            h.thread.join(timeout)
        return self.get(run_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop active runs at the next step (checkpointed, marked interrupted, resumable)."""
        with self._lock:
            handles = list(self._active.values())
        for h in handles:
            h.cancel.reason = "interrupted"
            h.cancel.set()
        for h in handles:
            h.thread.join(timeout)

    # internals -------------------------------------------------------------------------
    @staticmethod
    def _check_processes(cfg: TrainingConfig, multiprocess: bool, resume_id: str | None = None) -> None:
        if not is_multiprocess(cfg):
            return
        if not multiprocess:
            how = f"microscope train --resume {resume_id}" if resume_id else CLI_HINT
            raise Invalid(f"multi-process training (devices={cfg.devices!r}, strategy={cfg.strategy!r}, "
                          f"num_nodes={cfg.num_nodes}) cannot run in the server's worker thread: Lightning has to "
                          f"launch one process per device. Use `{how}` on the same IWB_HOME (the run and its "
                          f"SAE show up here), or train here with devices=1 and strategy='auto'")
        try:
            check_multiprocess(cfg)
        except ValueError as e:
            raise Invalid(str(e)) from None

    def _check_free(self, model_id: str) -> None:
        for rid, h in self._active.items():
            if h.thread.is_alive():
                raise Conflict(f"run {rid} is already training on {h.model_id}; one training at a time — "
                               f"cancel it (POST /api/training/{rid}/cancel) or wait for it to finish")

    def _spawn(self, run_id: str, cfg: TrainingConfig, lm: Any, *, resume: bool) -> None:
        cancel = _Cancel()
        t = threading.Thread(target=self._run, args=(run_id, cfg, lm, cancel, resume),
                             name=f"train-{run_id}", daemon=True)
        self._active = {k: v for k, v in self._active.items() if v.thread.is_alive()}
        self._active[run_id] = RunHandle(t, cancel, lm.model_id)
        t.start()

    def _run(self, run_id: str, cfg: TrainingConfig, lm: Any, cancel: _Cancel, resume: bool) -> None:
        from .runner import train_run

        try:
            outcome = train_run(self.state, run_id, cfg, lm, cancel, resume=resume)
        except Exception as e:  # noqa: BLE001 - a failed run is reported, never crashes the server
            msg = f"{type(e).__name__}: {e}"
            log.error("training run %s failed: %s\n%s", run_id, msg, traceback.format_exc())
            self.state.db.update("runs", {"id": run_id}, {"status": "failed", "error": msg, "updated_at": time.time()})
            self.state.bus.publish(TRAINING_FAILED, run_id=run_id, error=msg)
            return
        if outcome.status == "done" and cfg.analyze:
            features = getattr(self.state, "features", None)
            start = getattr(features, "start_analysis", None)
            if callable(start):
                for sid in outcome.sae_ids:
                    try:
                        start(sid)
                    except Exception as e:  # noqa: BLE001 - analysis is best effort after training
                        log.warning("could not start analysis of %s: %s", sid, e)
