"""Background token counts of corpora: one worker thread takes corpus ids from a queue, streams each corpus
once through the tokenizer (``sources.count_tokens``, nothing held in memory) and publishes ``JobProgress``
events (kind ``corpus_count``, done/total in bytes) while it reads. ``shutdown`` cancels the count in
progress and the queued ones; they stay marked 'counting' and are counted again at the next start."""
from __future__ import annotations

import copy
import logging
import queue
import threading
from typing import Callable, NamedTuple

from ..events import JobProgress, Publish
from .source_types import SourceSpec
from .sources import CountProgress, SourceError, TokenCount, count_tokens, open_source

log = logging.getLogger(__name__)
JOB_KIND = "corpus_count"


class CountResult(NamedTuple):
    corpus_id: str
    count: TokenCount | None
    """None when the count failed or was cancelled."""
    error: str | None
    tokenizer_id: str


def job_id(corpus_id: str) -> str:
    return f"count_{corpus_id}"


class CountJobs:
    """Counts corpora one at a time in a daemon thread. ``on_done(result)`` stores the outcome."""

    def __init__(self, publish: Publish, on_done: Callable[[CountResult], None], *,
                 min_interval_s: float = 0.5) -> None:
        self.publish, self.on_done, self.min_interval_s = publish, on_done, min_interval_s
        self._queue: queue.Queue[tuple[str, SourceSpec, object, str] | None] = queue.Queue()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[str, CountProgress] = {}
        self._pending: set[str] = set()
        self._thread: threading.Thread | None = None

    def submit(self, corpus_id: str, spec: SourceSpec, tokenizer: object, tokenizer_id: str) -> None:
        """Queue a count (a second submit of a queued id is ignored). The tokenizer is copied, so the count
        never shares tokenizer state with training or inference threads."""
        with self._lock:
            if corpus_id in self._pending or self._cancel.is_set():
                return
            self._pending.add(corpus_id)
            self._live[corpus_id] = CountProgress(0, 0, 0, 0)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="corpus-count", daemon=True)
                self._thread.start()
        self.publish(JobProgress(job_id=job_id(corpus_id), kind=JOB_KIND, status="queued"))
        self._queue.put((corpus_id, spec, copy.deepcopy(tokenizer), tokenizer_id))

    def progress(self, corpus_id: str) -> CountProgress | None:
        """Live progress of a queued or running count."""
        with self._lock:
            return self._live.get(corpus_id)

    def is_pending(self, corpus_id: str) -> bool:
        with self._lock:
            return corpus_id in self._pending

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued count ended (tests, CLI); False on timeout."""
        done = threading.Event()
        t = threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True)
        t.start()
        return done.wait(timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        self._cancel.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._count(*item)
            finally:
                self._queue.task_done()

    def _count(self, corpus_id: str, spec: SourceSpec, tokenizer: object, tokenizer_id: str) -> None:
        jid = job_id(corpus_id)
        if self._cancel.is_set():
            return

        def progress(p: CountProgress) -> None:
            with self._lock:
                self._live[corpus_id] = p
            self.publish(JobProgress(job_id=jid, kind=JOB_KIND, status="running", done=p.bytes_done,
                                     total=p.bytes_total, detail=f"{p.tokens} tokens in {p.documents} documents"))

        result: CountResult
        try:
            count = count_tokens(open_source(spec), tokenizer, progress=progress, cancel=self._cancel,
                                 min_interval_s=self.min_interval_s)
        except SourceError as e:
            result = CountResult(corpus_id, None, str(e), tokenizer_id)
        except Exception as e:  # noqa: BLE001 - a failed count is reported, never kills the worker
            log.exception("counting corpus %s failed", corpus_id)
            result = CountResult(corpus_id, None, f"{type(e).__name__}: {e}", tokenizer_id)
        else:
            result = CountResult(corpus_id, count if count.complete else None, None, tokenizer_id)
        with self._lock:
            self._pending.discard(corpus_id)
            last = self._live.pop(corpus_id, None)
        if result.count is None and result.error is None:  # cancelled: counted again at the next start
            self.publish(JobProgress(job_id=jid, kind=JOB_KIND, status="cancelled",
                                     done=last.bytes_done if last else 0, total=last.bytes_total if last else 0))
            return
        self.on_done(result)
        if result.error is not None:
            self.publish(JobProgress(job_id=jid, kind=JOB_KIND, status="failed", detail=result.error))
        else:
            c = result.count
            assert c is not None
            total = last.bytes_total if last else 0
            self.publish(JobProgress(job_id=jid, kind=JOB_KIND, status="done", done=total, total=total,
                                     detail=f"{c.tokens} tokens in {c.documents} documents"))
