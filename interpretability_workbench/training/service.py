"""TrainingService: start, list, inspect, cancel and resume SAE training runs.

Each run trains in its own worker thread; one run at a time (409 otherwise). On start-up, runs left
'running' by a crash are marked 'interrupted'; ``resume`` continues them from their last checkpoint.
Hook names are checked against the loaded model here, once, before a run is queued.
"""
from __future__ import annotations

import logging
import threading
import traceback
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

from ..activations.corpora import CorpusLookup
from ..errors import Conflict, Invalid, NotFound
from ..events import Publish, TrainingFailed
from ..model.handle import ModelHandle
from ..model.hook_map import resolve
from ..model.loader import LoadedModel
from ..sae.registry import SAERegistry
from ..store.db import new_id
from ..store.runs import MetricPoint, RunRecord, RunRepo
from ..workers import Cancel, interrupt_all, join
from .config import TrainingConfig
from .budget import check_budget
from .ddp import CLI_HINT, check_multiprocess, is_multiprocess
from .deps import RunDeps

log = logging.getLogger(__name__)
RESUMABLE = ("interrupted", "cancelled", "failed")


class RunHandle(NamedTuple):
    thread: threading.Thread
    cancel: Cancel
    model_id: str


class TrainingService:
    def __init__(self, runs: RunRepo, model: ModelHandle, saes: SAERegistry, corpora: CorpusLookup,
                 publish: Publish, scope: AbstractContextManager[Any], runs_dir: Path) -> None:
        """``scope``: held around every model forward of a run (the model lock, every patch switched off)."""
        self.runs, self.model, self.saes, self.corpora = runs, model, saes, corpora
        self.publish, self.scope, self.runs_dir = publish, scope, Path(runs_dir)
        self._lock = threading.Lock()
        self._active: dict[str, RunHandle] = {}
        n = runs.interrupt_live()
        if n:
            log.warning("marked %d run(s) interrupted; POST /api/training/{run_id}/resume continues them", n)

    # queries ---------------------------------------------------------------------------
    def list(self) -> list[RunRecord]:
        return self.runs.list()

    def get(self, run_id: str) -> RunRecord:
        rec = self.runs.get(run_id)
        if rec is None:
            raise NotFound(f"training run {run_id!r} not found; GET /api/training lists them")
        return rec

    def history(self, run_id: str, limit: int = 2000) -> list[MetricPoint]:
        return self.runs.history(run_id, limit)

    def active_run(self) -> str | None:
        with self._lock:
            for rid, h in self._active.items():
                if h.thread.is_alive():
                    return rid
        return None

    # commands --------------------------------------------------------------------------
    def start(self, cfg: TrainingConfig, *, multiprocess: bool = False) -> str:
        """Start a run in a worker thread. Multi-process (DDP) settings need ``multiprocess=True``: only the
        CLI, whose command line Lightning can re-execute per process, passes it (see training/ddp.py).

        A counted corpus (or a trace) shorter than the budget is refused here (422) unless ``epochs`` allows
        the passes it needs; a run that will repeat data records a note saying so (``notes``)."""
        self._check_processes(cfg, multiprocess)
        lm = self.model.require()
        self._check_hooks(lm, cfg)
        self.corpora.source(cfg.corpus)  # 404 for an unknown corpus
        note = self._check_budget(cfg, lm)
        if note:
            cfg.extra = {**cfg.extra, "notes": [*cfg.extra.get("notes", []), note]}
        run_id = new_id("run")
        with self._lock:
            self._check_free(lm.model_id)
            self.runs.create(run_id, lm.model_id, cfg.to_dict())
            self._spawn(run_id, cfg, lm, resume=False)
        return run_id

    def _check_budget(self, cfg: TrainingConfig, lm: LoadedModel) -> str | None:
        trace_rows = None
        if cfg.trace_dir:
            from ..activations.store import read_manifest

            try:
                trace_rows = read_manifest(cfg.trace_dir).n_tokens
            except FileNotFoundError as e:
                raise Invalid(str(e)) from None
        count = None if trace_rows is not None else self.corpora.known_count(cfg.corpus, lm)
        return check_budget(cfg, count, lm.tokenizer, trace_rows)

    def notes(self, run_id: str) -> list[str]:
        """What the run was told when it started (e.g. that it repeats its corpus)."""
        return list(self.get(run_id).config.get("extra", {}).get("notes", []))

    @staticmethod
    def _check_hooks(lm: LoadedModel, cfg: TrainingConfig) -> None:
        """Every hook of the run exists on the loaded model (422 with the model's range otherwise)."""
        for h in cfg.hook_names:
            try:
                resolve(lm.model, h)
            except (ValueError, KeyError, IndexError, AttributeError) as e:
                raise Invalid(f"{h}: {e}; the model has {lm.n_layers} layers") from None

    def resume(self, run_id: str, *, multiprocess: bool = False) -> str:
        rec = self.get(run_id)
        if rec.status not in RESUMABLE:
            raise Conflict(f"run {run_id} is {rec.status}; only {', '.join(RESUMABLE)} runs can be resumed")
        lm = self.model.require()
        if lm.model_id != rec.model_id:
            raise Conflict(f"run {run_id} trains on {rec.model_id!r} but {lm.model_id!r} is loaded; load it first")
        try:
            cfg = TrainingConfig.from_dict(rec.config)
        except (TypeError, ValueError) as e:
            raise Invalid(f"run {run_id} has an unusable config: {e}") from None
        self._check_processes(cfg, multiprocess, resume_id=run_id)
        self._check_hooks(lm, cfg)
        with self._lock:
            self._check_free(lm.model_id)
            self.runs.update(run_id, status="queued")
            self._spawn(run_id, cfg, lm, resume=True)
        return run_id

    def cancel(self, run_id: str) -> None:
        rec = self.get(run_id)
        with self._lock:
            h = self._active.get(run_id)
        # the worker may still be wrapping up a finished run: its status, not the thread, decides
        if h is None or not h.thread.is_alive() or rec.status not in ("queued", "running"):
            raise Conflict(f"run {run_id} is not running (status {rec.status})")
        h.cancel.set()

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        join(self._lock, self._active, run_id, timeout)
        return self.get(run_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop active runs at the next step (checkpointed, marked interrupted, resumable)."""
        interrupt_all(self._lock, self._active, timeout)

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

    def _spawn(self, run_id: str, cfg: TrainingConfig, lm: LoadedModel, *, resume: bool) -> None:
        cancel = Cancel()
        t = threading.Thread(target=self._run, args=(run_id, cfg, lm, cancel, resume),
                             name=f"train-{run_id}", daemon=True)
        self._active = {k: v for k, v in self._active.items() if v.thread.is_alive()}
        self._active[run_id] = RunHandle(t, cancel, lm.model_id)
        t.start()

    def _deps(self, cfg: TrainingConfig) -> RunDeps:
        return RunDeps(runs=self.runs, saes=self.saes, publish=self.publish, scope=self.scope,
                       runs_dir=self.runs_dir, corpus=self.corpora.source(cfg.corpus))

    def _run(self, run_id: str, cfg: TrainingConfig, lm: LoadedModel, cancel: Cancel, resume: bool) -> None:
        from .runner import train_run

        try:
            train_run(self._deps(cfg), run_id, cfg, lm, cancel, resume=resume)
        except Exception as e:  # noqa: BLE001 - a failed run is reported, never crashes the server
            msg = f"{type(e).__name__}: {e}"
            log.error("training run %s failed: %s\n%s", run_id, msg, traceback.format_exc())
            self.runs.update(run_id, status="failed", error=msg)
            self.publish(TrainingFailed(run_id=run_id, error=msg))
