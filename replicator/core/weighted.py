"""One weighted semaphore, first come first served: the bytes in flight of the copy workers
(replicator.engine.inflight) and the SAS slots of a snapshot family (replicator.source.arm) both wait here.

Why FIFO: a request waits for `n` units, and a waiter that wakes whenever *some* units are free lets a
stream of small requests starve a large one (a 4 MiB chunk behind scattered 4 KiB writes, a diff's
two family slots behind single grants), since a small one always fits first. Here units go to the
oldest waiter only: while it waits, nobody behind it is served, even a request that would fit.

Why all-or-nothing: `acquire(n)` takes its `n` units at once, never some of them while waiting for
the rest. Holders that take units one by one deadlock: five diffs each holding one of a family's
five SAS slots would all wait for a second.

A request larger than the whole capacity takes the whole capacity (it waits until everything is
free), so it is never refused and never waits forever. Cancelling a waiter hands its place on: the
units it was granted while it was being cancelled go back, and the waiters behind it are served if
they now fit. (golang.org/x/sync/semaphore.Weighted makes the same choices, except that its
oversized request waits for its context to end.)

One event loop: the futures it waits on belong to the loop that created them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator


class WeightedSemaphore:
    """`capacity` units; `acquire(n)` waits in line until `n` of them are free, `release(n)` returns them."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"a semaphore's capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.free = capacity
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, n: int = 1) -> None:
        """Take `min(n, capacity)` units, after every earlier waiter has taken its own."""
        n = min(n, self.capacity)
        if not self._waiters and self.free >= n:
            self.free -= n
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # granted as we were cancelled: hand it back
                self.release(n)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove((n, waiter))
                self._wake()  # the waiters behind us may fit now
            raise

    def release(self, n: int = 1) -> None:
        """Return what `acquire(n)` took."""
        self.free += min(n, self.capacity)
        self._wake()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        """Hold `min(n, capacity)` units for the body of the `async with`; released on every way out."""
        await self.acquire(n)
        try:
            yield
        finally:
            self.release(n)

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter not yet resumed takes nothing
                self.free -= n
                waiter.set_result(None)
