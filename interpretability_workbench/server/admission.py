"""The inference admission queue: at most ``limit`` inference-type requests compute at once; up to
``max_queued`` more wait, first come first served per client and round robin between clients; the rest,
and any request still waiting at its deadline, get 503 with ``Retry-After``.

Event-loop only (no locks): the middleware calls ``admit`` and ``release`` from the server's loop.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from typing import NamedTuple


class Admission(NamedTuple):
    admitted: bool
    reason: str
    """'' when admitted; 'full' (the queue was full) or 'deadline' (waited until the deadline)."""
    waited_s: float


class FairQueue:
    def __init__(self, limit: int, max_queued: int) -> None:
        self.limit = max(1, int(limit))
        self.max_queued = max(0, int(max_queued))
        self.active = 0
        """Requests admitted and not yet released."""
        self._waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()
        self._n_waiting = 0
        self._service_s = 1.0  # moving average of how long an admitted request holds its slot

    @property
    def queued(self) -> int:
        return self._n_waiting

    def retry_after_s(self) -> int:
        """Seconds until a new request would likely be admitted: the queue ahead of it, drained ``limit`` at a
        time at the recent service time (1..60)."""
        return int(min(60, max(1, math.ceil((self._n_waiting + 1) / self.limit * self._service_s))))

    async def admit(self, client: str, timeout_s: float) -> Admission:
        """Take a slot now, or wait in ``client``'s line for one until ``timeout_s`` passes."""
        t0 = time.monotonic()
        if self.active < self.limit and self._n_waiting == 0:
            self.active += 1
            return Admission(True, "", 0.0)
        if self._n_waiting >= self.max_queued:
            return Admission(False, "full", 0.0)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        line = self._waiting.get(client)
        if line is None:
            line = self._waiting[client] = deque()
        line.append(fut)
        self._n_waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout=max(0.0, timeout_s))
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            if fut.done() and not fut.cancelled():  # the slot was handed over just as we gave up
                if isinstance(e, asyncio.CancelledError):
                    self.release(0.0)
                    raise
                return Admission(True, "", time.monotonic() - t0)
            fut.cancel()
            self._forget(client, fut)
            if isinstance(e, asyncio.CancelledError):
                raise
            return Admission(False, "deadline", time.monotonic() - t0)
        return Admission(True, "", time.monotonic() - t0)

    def _forget(self, client: str, fut: asyncio.Future) -> None:
        line = self._waiting.get(client)
        if line is not None and fut in line:
            line.remove(fut)
            self._n_waiting -= 1
            if not line:
                del self._waiting[client]

    def release(self, held_s: float) -> None:
        """A slot is free (its request held it ``held_s`` seconds): hand it to the next client in turn."""
        if held_s > 0:
            self._service_s = 0.8 * self._service_s + 0.2 * held_s
        self.active -= 1
        while self._waiting and self.active < self.limit:
            client, line = next(iter(self._waiting.items()))
            fut = line.popleft()
            self._n_waiting -= 1
            if line:
                self._waiting.move_to_end(client)  # round robin: this client's next request waits its turn
            else:
                del self._waiting[client]
            if not fut.done():
                fut.set_result(None)
                self.active += 1


__all__ = ["Admission", "FairQueue"]
