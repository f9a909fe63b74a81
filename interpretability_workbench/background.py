"""BackgroundJobs: one worker thread per subject (an SAE id) for a kind of job recorded in the ``jobs`` table,
with progress published as ``job`` events (``JobProgress``). Used by the feature-map and evaluation services;
the work itself is a plain function that reports stages through a ``Report`` callback.

Cancelling (``cancel``) sets the worker's flag; the next ``report`` raises ``Stopped`` inside the work, so a job
stops between stages, before it writes its result, and ends ``cancelled`` (``interrupted`` at shutdown). Work
writes its result last, in one atomic step per file, so a stopped job leaves the previous result as it was.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import Conflict, NotFound
from .events import JobProgress, Publish
from .store.db import new_id
from .store.jobs import JobRecord, JobRepo
from .workers import Cancel, Handle, Stopped, interrupt_all

log = logging.getLogger(__name__)

Report = Callable[[int, int, str], None]
"""(done, total, detail) -> None: the work reports a finished stage; raises ``Stopped`` once the job is cancelled."""




class BackgroundJobs:
    def __init__(self, jobs: JobRepo, kind: str, publish: Publish, *, noun: str) -> None:
        """``noun``: how messages name the job ("feature map", "evaluation")."""
        self.jobs, self.kind, self.publish, self.noun = jobs, kind, publish, noun
        self._lock = threading.Lock()
        self._active: dict[str, Handle] = {}

    def latest(self, subject: str) -> JobRecord | None:
        return self.jobs.latest(self.kind, subject)

    def get(self, job_id: str) -> JobRecord:
        rec = self.jobs.get(job_id)
        if rec is None or rec.kind != self.kind:
            raise NotFound(f"{self.noun} job {job_id!r} not found")
        return rec

    def running(self, subject: str) -> bool:
        with self._lock:
            h = self._active.get(subject)
        return h is not None and h.thread.is_alive()

    def start(self, subject: str, config: dict[str, Any], work: Callable[[Report], str | None]) -> JobRecord:
        """Run ``work(report)`` in a worker thread; 409 while a job of this kind runs for ``subject``. ``work``
        returns a closing detail (or None)."""
        with self._lock:
            h = self._active.get(subject)
            if h is not None and h.thread.is_alive():
                raise Conflict(f"a {self.noun} job of {subject} is already running; wait for it to finish or "
                               "cancel it")
            job = self.jobs.create(new_id("job"), self.kind, subject, config)
            cancel = Cancel()
            th = threading.Thread(target=self._run, args=(job.id, work, cancel), name=f"{self.kind}-{subject}",
                                  daemon=True)
            self._active[subject] = Handle(th, cancel)
        th.start()
        return self.jobs.get(job.id)  # type: ignore[return-value]

    def cancel(self, subject: str) -> JobRecord:
        """Ask the running job of ``subject`` to stop at its next stage (it ends ``cancelled``, its result
        unwritten); 409 when none runs. Returns the job as it is now."""
        with self._lock:
            h = self._active.get(subject)
        rec = self.latest(subject)
        if h is None or not h.thread.is_alive() or rec is None or rec.status not in ("queued", "running"):
            raise Conflict(f"no {self.noun} job of {subject} is running")
        h.cancel.set()
        return rec

    def wait(self, subject: str, timeout: float | None = None) -> None:
        with self._lock:
            h = self._active.get(subject)
        if h is not None:
            h.thread.join(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every running job at its next stage (marked ``interrupted``) and wait up to ``timeout`` each."""
        interrupt_all(self._lock, self._active, timeout)

    def _run(self, job_id: str, work: Callable[[Report], str | None], cancel: Cancel) -> None:
        state = {"done": 0, "total": 0}

        def report(done: int, total: int, detail: str) -> None:
            if cancel.is_set():
                raise Stopped(cancel.reason)
            state["done"], state["total"] = done, total
            self.jobs.update(job_id, status="running", done=done, total=total)
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="running", done=done, total=total,
                                     detail=detail))
            if cancel.is_set():  # cancelled while the stage was announced: stop before it starts
                raise Stopped(cancel.reason)

        try:
            self.jobs.update(job_id, status="running")
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="running", detail="starting"))
            detail = work(report)
            self.jobs.update(job_id, status="done", done=state["total"], total=state["total"])
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="done", done=state["total"],
                                     total=state["total"], detail=detail))
        except Stopped as s:
            msg = f"{s.reason} before it finished; nothing was written"
            self.jobs.update(job_id, status=s.reason, error=msg)
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status=s.reason, done=state["done"],
                                     total=state["total"], detail=msg))
        except Exception as e:  # noqa: BLE001 - the job fails, the server goes on
            msg = f"{type(e).__name__}: {getattr(e, 'detail', e)}"
            log.warning("%s job %s failed: %s", self.noun, job_id, msg)
            self.jobs.update(job_id, status="failed", error=msg)
            self.publish(JobProgress(job_id=job_id, kind=self.kind, status="failed", done=state["done"],
                                     total=state["total"], detail=msg))
