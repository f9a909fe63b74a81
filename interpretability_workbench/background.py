"""BackgroundJobs: one worker thread per subject (an SAE id) for a kind of job recorded in the ``jobs`` table,
with progress published as ``job`` events (``JobProgress``). Used by the feature-map and evaluation services;
the work itself is a plain function that reports stages through a ``Report`` callback.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .errors import Conflict, NotFound
from .events import JobProgress, Publish
from .store.db import new_id
from .store.jobs import JobRecord, JobRepo

log = logging.getLogger(__name__)

Report = Callable[[int, int, str], None]
"""(done, total, detail) -> None: the work reports a finished stage."""


class BackgroundJobs:
    def __init__(self, jobs: JobRepo, kind: str, publish: Publish, *, noun: str) -> None:
        """``noun``: how messages name the job ("feature map", "evaluation")."""
        self.jobs, self.kind, self.publish, self.noun = jobs, kind, publish, noun
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def latest(self, subject: str) -> JobRecord | None:
        return self.jobs.latest(self.kind, subject)

    def get(self, job_id: str) -> JobRecord:
        rec = self.jobs.get(job_id)
        if rec is None or rec.kind != self.kind:
            raise NotFound(f"{self.noun} job {job_id!r} not found")
        return rec

    def running(self, subject: str) -> bool:
        with self._lock:
            th = self._threads.get(subject)
        return th is not None and th.is_alive()

    def start(self, subject: str, config: dict[str, Any], work: Callable[[Report], str | None]) -> JobRecord:
        """Run ``work(report)`` in a worker thread; 409 while a job of this kind runs for ``subject``. ``work``
        returns a closing detail (or None)."""
        with self._lock:
            th = self._threads.get(subject)
            if th is not None and th.is_alive():
                raise Conflict(f"a {self.noun} job of {subject} is already running; wait for it to finish")
            job = self.jobs.create(new_id("job"), self.kind, subject, config)
            th = threading.Thread(target=self._run, args=(job.id, work), name=f"{self.kind}-{subject}", daemon=True)
            self._threads[subject] = th
        th.start()
        return self.jobs.get(job.id)  # type: ignore[return-value]

    def wait(self, subject: str, timeout: float | None = None) -> None:
        with self._lock:
            th = self._threads.get(subject)
        if th is not None:
            th.join(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            threads = list(self._threads.values())
        for th in threads:
            th.join(timeout)

    def _run(self, job_id: str, work: Callable[[Report], str | None]) -> None:
        state = {"done": 0, "total": 0}

        def report(done: int, total: int, detail: str) -> None:
            state["done"], state["total"] = done, total
            self.jobs.update(job_id, status="running", done=done, total=total)
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="running", done=done, total=total,
                                     detail=detail))

        try:
            self.jobs.update(job_id, status="running")
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="running", detail="starting"))
            detail = work(report)
            self.jobs.update(job_id, status="done", done=state["total"], total=state["total"])
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="done", done=state["total"],
                                     total=state["total"], detail=detail))
        except Exception as e:  # noqa: BLE001 - the job fails, the server goes on
            msg = f"{type(e).__name__}: {getattr(e, 'detail', e)}"
            log.warning("%s job %s failed: %s", self.noun, job_id, msg)
            self.jobs.update(job_id, status="failed", error=msg)
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="failed", done=state["done"],
                                     total=state["total"], detail=msg))
