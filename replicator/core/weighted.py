"""One weighted semaphore, first come first served: the bytes in flight of the copy workers
(replicator.engine.inflight), the SAS slots of a snapshot family (replicator.source.arm) and the requests
a target blob's pacer lets through (replicator.engine.pacer) all wait here.

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

Why resizable: the pacer moves its limit while requests are in flight. `resize` changes the capacity
at once; a shrink below what is held makes `free` negative, so nobody is served until enough holders
have returned theirs, and nobody is interrupted. A request is clamped to the capacity of its time:
a waiter's request shrinks with the capacity, and `acquire` returns what it took, which is what goes
back (`hold` does that; a caller of `release` passes what `acquire` returned).

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
        self._waiters: collections.deque[tuple[int, asyncio.Future[int]]] = collections.deque()

    async def acquire(self, n: int = 1) -> int:
        """Take `min(n, capacity)` units, after every earlier waiter has taken its own; return them."""
        n = min(n, self.capacity)
        if not self._waiters and self.free >= n:
            self.free -= n
            return n
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, waiter))
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # granted as we were cancelled: hand it back
                self.release(waiter.result())
            else:
                self._waiters = collections.deque(w for w in self._waiters if w[1] is not waiter)
                self._wake()  # the waiters behind us may fit now
            raise

    def release(self, n: int = 1) -> None:
        """Return `n` units: what `acquire` returned (no more than was asked, no more than the capacity)."""
        self.free += n
        self._wake()

    def resize(self, capacity: int) -> None:
        """Make the capacity `capacity` now (see the module docstring: holders keep what they hold)."""
        if capacity <= 0:
            raise ValueError(f"a semaphore's capacity must be positive, got {capacity}")
        self.free += capacity - self.capacity
        self.capacity = capacity
        self._waiters = collections.deque((min(n, capacity), w) for n, w in self._waiters)
        self._wake()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        """Hold `min(n, capacity)` units for the body of the `async with`; released on every way out."""
        taken = await self.acquire(n)
        try:
            yield
        finally:
            self.release(taken)

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            n, waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter not yet resumed takes nothing
                self.free -= n
                waiter.set_result(n)
