"""A budget of bytes in flight, shared by the copy workers of one run.

Why, beside the worker count: a page blob serves about 500 requests/s *and* 60 MiB/s. Small
scattered writes need many requests in flight to reach 500/s across a 60 ms link (`concurrency`),
but the same number of 4 MiB chunks would queue several seconds of bytes at the blob, which Azure
answers with 503 ServerBusy, and in stream mode would hold one 4 MiB buffer per worker. Bounding
the bytes in flight keeps many small requests going while large ones queue here, in order, instead
of at the service. A request larger than the whole budget takes the whole budget (never deadlocks).

Stream mode holds the bytes in flight in memory, so its budget is one per process (per event loop),
shared by every replication the process runs (a fleet worker runs several): memory stays bounded by
one `--max-in-flight` whatever the number of disks. Server mode holds no bytes, so each run has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator


class ByteBudget:
    """At most `limit` bytes held at once; `hold(n)` waits until `n` more bytes fit."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"the in-flight byte limit must be positive, got {limit}")
        self.limit = limit
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    @contextlib.asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        """Hold `min(nbytes, limit)` bytes for the body of the `with`; released on every way out."""
        n = min(nbytes, self.limit)
        while self.used + n > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
        self.used += n
        try:
            yield
        finally:
            self.used -= n
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


_PROCESS_BUDGETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ByteBudget] = (
    weakref.WeakKeyDictionary()
)


def process_budget(limit: int) -> ByteBudget:
    """The budget shared by every stream-mode run of the running event loop (the first limit wins)."""
    loop = asyncio.get_running_loop()
    budget = _PROCESS_BUDGETS.get(loop)
    if budget is None:
        budget = _PROCESS_BUDGETS[loop] = ByteBudget(limit)
    return budget
