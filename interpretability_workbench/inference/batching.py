"""Dynamic batching of one-shot comparisons (``POST /api/inference``), as LLM servers batch requests.

``logits_many`` runs many prompts at once: one right-padded forward of the original model (every patch off)
for all of them, then one right-padded forward per patch set (the requests that share it) from the lowest
patched block, reusing the original run's ``resid_pre`` there.

Why padded results equal unpadded ones: each row is its prompt followed by padding, and in a causal model a
position reads only positions at or before it, so no real token ever sees a pad; position ids (rotary in
Llama/NeoX, learned in GPT-2) are 0..len-1 for the real tokens as in the unpadded forward. No attention
mask is needed, and each row's logits are read at its own last real position (``last_index``). Only the
matmul shapes differ, so results agree to float32 rounding (tests hold logits to 1e-5 + 1e-4·|logit|; the
differences measured on the tiny models are ~2e-7). Left padding would need an attention mask and shifted
position ids for the same result; right padding needs neither. In bf16 the same holds to bf16 rounding.

``Batcher`` is the worker thread that forms the batches: callers submit and wait on a future; the worker
takes every request queued (up to ``max_batch``, FIFO; fairness between clients is the server's admission
queue's job) and runs them as one batch. Under load it lingers ``window_s`` for more requests before
starting a batch; a lone client never waits.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import WorkbenchError
from ..model.handle import ModelHandle
from ..model.hook_names import hook_name
from ..model.hooks import forward_last_logits
from ..model.tokenize import encode_prompt
from ..patches.manager import PatchManager

log = logging.getLogger(__name__)


class CompareRequest(NamedTuple):
    text: str
    top_k: int = 10
    patch_ids: list[str] | None = None
    """None: the enabled patches."""


class BatchLogits(NamedTuple):
    original: Tensor
    """``[d_vocab]`` float32, every patch off."""
    patched: Tensor
    """``[d_vocab]`` float32, the request's patches on."""
    patch_ids: list[str]
    n_tokens: int
    from_layer: int | None


def _pad_right(rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``[1 len_i]`` ids -> (``[batch max_len]`` right-padded with each row's last token, ``[batch]`` last
    real positions). The pad value is irrelevant to the real positions; repeating a real token keeps
    libraries from warning about pad ids without a mask."""
    n_max = max(int(r.shape[1]) for r in rows)
    out = torch.stack([torch.cat([r[0], r[0, -1:].expand(n_max - r.shape[1])]) for r in rows])
    last = torch.tensor([int(r.shape[1]) - 1 for r in rows], device=out.device)
    return out, last


@torch.no_grad()
def logits_many(model: ModelHandle, patches: PatchManager, max_prompt_tokens: int,
                items: list[tuple[str, list[str] | None]]) -> list[BatchLogits | WorkbenchError]:
    """(text, patch ids) pairs -> original and patched last-position logits each, or the domain error of
    that item alone (an over-long text, an unknown patch), in one padded forward per patch set."""
    out: list[BatchLogits | WorkbenchError | None] = [None] * len(items)
    with model.lock:
        lm = model.require()
        ok: list[tuple[int, Tensor, tuple[str, ...], int | None]] = []  # (item, ids [1 len], patch ids, layer)
        for i, (text, pids) in enumerate(items):
            try:
                ids = encode_prompt(lm, text, max_prompt_tokens)
                resolved = tuple(patches.resolve_ids(pids))
                ok.append((i, ids, resolved, patches.lowest_layer(list(resolved))))
            except WorkbenchError as e:
                out[i] = e
        if ok:
            ids_pad, last = _pad_right([o[1] for o in ok])  # [b n_max], [b]
            layers = sorted({o[3] for o in ok if o[3] is not None and o[3] > 0})
            grabbed: dict[int, Tensor] = {}

            def grab(i: int):
                def fn(act: Tensor) -> None:
                    grabbed[i] = act.detach()
                return fn

            with patches.original:
                orig = forward_last_logits(lm.model, ids_pad, last_index=last,
                                           fwd_hooks={hook_name(i, "resid_pre"): grab(i) for i in layers}).float()
            groups: dict[tuple[str, ...], list[int]] = {}
            for row, o in enumerate(ok):
                groups.setdefault(o[2], []).append(row)
            for pids, rows in groups.items():
                layer = ok[rows[0]][3]
                if layer is None:
                    patched = orig[rows]
                else:
                    sel = torch.tensor(rows, device=ids_pad.device)
                    n_g = int(last[sel].max()) + 1
                    kw = {} if layer == 0 else {"from_layer": layer, "resid_pre": grabbed[layer][sel, :n_g]}
                    with patches.using(list(pids)):
                        patched = forward_last_logits(lm.model, ids_pad[sel, :n_g], last_index=last[sel], **kw).float()
                for j, row in enumerate(rows):
                    i, ids, _, _ = ok[row]
                    out[i] = BatchLogits(orig[row], patched[j], list(pids), int(ids.shape[1]), layer)
    return out  # type: ignore[return-value]


@dataclass
class _Job:
    request: CompareRequest
    future: Future


class BatchStats(NamedTuple):
    batches: int
    requests: int
    largest: int


class Batcher:
    """A worker thread running queued requests in batches through ``run`` (a list of requests -> a result or
    an exception each)."""

    def __init__(self, run: Callable[[list[CompareRequest]], list], max_batch: int, window_s: float = 0.002,
                 name: str = "inference-batcher") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.run, self.max_batch, self.window_s, self.name = run, max_batch, max(0.0, window_s), name
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last = 0
        self._batches = self._requests = self._largest = 0

    def submit(self, request: CompareRequest) -> Future:
        fut: Future = Future()
        with self._cv:
            self._queue.append(_Job(request, fut))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cv.notify()
        return fut

    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._requests, self._largest)

    def _take(self) -> list[_Job] | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            if self._last > 1 and self.window_s > 0:  # under load: let the batch fill a little
                deadline = time.monotonic() + self.window_s
                while len(self._queue) < self.max_batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            return [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            self._last = len(jobs)
            if not jobs:
                continue
            self._batches += 1
            self._requests += len(jobs)
            self._largest = max(self._largest, len(jobs))
            try:
                results = self.run([j.request for j in jobs])
            except BaseException as e:
                log.exception("inference batch of %d failed", len(jobs))
                for j in jobs:
                    j.future.set_exception(e)
                continue
            for j, r in zip(jobs, results):
                if isinstance(r, BaseException):
                    j.future.set_exception(r)
                else:
                    j.future.set_result(r)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker once what is queued is answered (a later ``submit`` starts a new one)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout)
        with self._cv:
            self._closed = False
            self._thread = None
