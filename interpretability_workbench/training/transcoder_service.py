"""TranscoderTrainingService: start, inspect and cancel transcoder training runs.

A run trains one transcoder per chosen layer in a worker thread and registers the set
(``circuits.registry``). Runs live in the ``runs`` table beside SAE runs (config ``kind: "transcoders"``) and
publish the same ``training_progress`` / ``training_done`` / ``training_failed`` / ``training_cancelled``
events. One run at a time, and none while an SAE run trains (409).
"""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ..activations.corpora import CorpusLookup
from ..circuits.registry import TranscoderRegistry
from ..errors import Conflict, Invalid, NotFound
from ..events import Publish, TrainingFailed
from ..model.handle import ModelHandle
from ..model.loader import LoadedModel
from ..store.db import new_id
from ..store.runs import RunRecord, RunRepo
from ..workers import Cancel, Handle, interrupt_all, join
from .transcoder_config import KIND, TranscoderTrainingConfig

log = logging.getLogger(__name__)



class TranscoderTrainingService:
    def __init__(self, runs: RunRepo, model: ModelHandle, transcoders: TranscoderRegistry, corpora: CorpusLookup,
                 publish: Publish, scope: AbstractContextManager[Any],
                 busy: Callable[[], str | None] = lambda: None) -> None:
        """``scope``: held around every model forward (the model lock, every patch off); ``busy``: the id of
        another training run in progress (SAE training), if any."""
        self.runs, self.model, self.transcoders, self.corpora = runs, model, transcoders, corpora
        self.publish, self.scope, self.busy = publish, scope, busy
        self._lock = threading.Lock()
        self._active: dict[str, Handle] = {}

    def get(self, run_id: str) -> RunRecord:
        rec = self.runs.get(run_id)
        if rec is None or rec.config.get("kind") != KIND:
            raise NotFound(f"transcoder run {run_id!r} not found; GET /api/transcoders/runs lists them")
        return rec

    def list(self) -> list[RunRecord]:
        return [r for r in self.runs.list() if r.config.get("kind") == KIND]

    def active_run(self) -> str | None:
        with self._lock:
            return next((rid for rid, h in self._active.items() if h.thread.is_alive()), None)

    def start(self, cfg: TranscoderTrainingConfig) -> str:
        lm = self.model.require()
        if cfg.layers[-1] >= lm.n_layers:
            raise Invalid(f"layer {cfg.layers[-1]} is out of range: the model has layers 0..{lm.n_layers - 1}")
        self.corpora.path(cfg.corpus)  # 404 for an unknown corpus
        run_id = new_id("run")
        with self._lock:
            other = self.busy() or next((r for r, h in self._active.items() if h.thread.is_alive()), None)
            if other:
                raise Conflict(f"run {other} is training; one training at a time — cancel it or wait for it")
            self.runs.create(run_id, lm.model_id, cfg.to_dict())
            cancel = Cancel()
            t = threading.Thread(target=self._run, args=(run_id, cfg, lm, cancel), name=f"transcoders-{run_id}",
                                 daemon=True)
            self._active[run_id] = Handle(t, cancel)
            t.start()
        return run_id

    def cancel(self, run_id: str) -> None:
        rec = self.get(run_id)
        with self._lock:
            h = self._active.get(run_id)
        if h is None or not h.thread.is_alive() or rec.status not in ("queued", "running"):
            raise Conflict(f"run {run_id} is not running (status {rec.status})")
        h.cancel.set()

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        join(self._lock, self._active, run_id, timeout)
        return self.get(run_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop active runs at their next step (marked interrupted; transcoder runs do not resume)."""
        interrupt_all(self._lock, self._active, timeout)

    def _run(self, run_id: str, cfg: TranscoderTrainingConfig, lm: LoadedModel, cancel: Cancel) -> None:
        from .transcoders import TranscoderRunDeps, train_transcoders

        try:
            deps = TranscoderRunDeps(runs=self.runs, transcoders=self.transcoders, publish=self.publish,
                                     scope=self.scope, corpus_path=self.corpora.path(cfg.corpus))
            train_transcoders(deps, run_id, cfg, lm, cancel)
        except Exception as e:  # noqa: BLE001 - a failed run is reported, never crashes the server
            msg = f"{type(e).__name__}: {e}"
            log.error("transcoder run %s failed: %s\n%s", run_id, msg, traceback.format_exc())
            self.runs.update(run_id, status="failed", error=msg)
            self.publish(TrainingFailed(run_id=run_id, error=msg))
