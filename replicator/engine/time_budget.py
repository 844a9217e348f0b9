"""The time budget of one run (`--time-budget`): stop cleanly before it, checkpoint saved, so a diff
larger than one invocation (an Azure Functions timeout, a cron slot) finishes over several runs.

Two deadlines, both measured from when the run starts:

- soft (`budget - reserve`): the pipeline stops feeding new writes; writes in flight drain.
- hard (`budget - reserve / 2`): whatever is still in flight is cancelled (a cancelled write is
  harmless: writes are idempotent and the checkpoint only covers completed ones).

The rest of the reserve pays for saving the checkpoint, revoking the SAS grants and releasing the
lease. The reserve is a quarter of the budget, at most `MAX_RESERVE_SECONDS`.

The copy pool is not the only thing that waits: the lease, a SAS slot of the family, a grant, a
background copy (wait_complete), the resize, the commit and --verify can too. `bounded()` ends all of
them by a third deadline, `budget - reserve / 4` (after the hard one, so the pool's own clean stop
with its checkpoint wins when both apply), with BudgetSpent; waits with their own bound (the lease
wait) are capped by `cap()` so they give up before it.

`stop()` moves both deadlines to now: a worker that receives SIGTERM (a container scaled in) stops
the same clean way instead of leaving its lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator

from replicator.core.errors import IncompleteError

MAX_RESERVE_SECONDS = 60.0
"""Drain and cleanup take a few seconds; 60 s covers a slow chunk write plus revoke and release."""
STOP_GRACE_SECONDS = 10.0
"""After `stop()`, how long `bounded()` lets the clean stop (checkpoint, revoke, release) run first."""


class BudgetSpent(IncompleteError):
    """The run stopped for its budget; `position` says where ("at offset N of <snapshot>", "before
    <snapshot>"), so a fleet re-queueing the job can tell a run that advanced from one that did not."""

    def __init__(self, message: str, position: str) -> None:
        super().__init__(message)
        self.position = position


class Budget:
    """Deadlines of one run; `seconds=None` means no budget (never expires unless stopped)."""

    def __init__(self, seconds: float | None) -> None:
        self._now = time.monotonic
        self.seconds = seconds
        started = self._now()
        reserve = min(seconds / 4, MAX_RESERVE_SECONDS) if seconds else 0.0
        self._soft = started + seconds - reserve if seconds else None
        self._hard = started + seconds - reserve / 2 if seconds else None
        self._end = started + seconds - reserve / 4 if seconds else None
        self.stopped_by: str | None = None
        self._timeouts: weakref.WeakSet[asyncio.Timeout] = weakref.WeakSet()
        self._outer: weakref.WeakSet[asyncio.Timeout] = weakref.WeakSet()

    def stop(self, why: str = "stop requested") -> None:
        """Expire now (e.g. on SIGTERM): the run checkpoints and ends as incomplete."""
        self.stopped_by = why
        self._soft = self._hard = self._now()
        self._end = self._hard + STOP_GRACE_SECONDS
        for timeouts, when in ((self._timeouts, self._hard), (self._outer, self._end)):
            for timeout in list(timeouts):
                with contextlib.suppress(RuntimeError):  # not entered yet, or already left
                    timeout.reschedule(when)

    def expired(self) -> bool:
        """Past the soft deadline: issue no more work."""
        return self._soft is not None and self._now() >= self._soft

    def hard_stop(self) -> asyncio.Timeout:
        """A timeout context at the hard deadline (none without a budget) that `stop()` brings forward."""
        timeout = asyncio.timeout_at(self._hard)  # the loop's clock is time.monotonic
        self._timeouts.add(timeout)
        return timeout

    def cap(self, seconds: float) -> float:
        """`seconds` of waiting, but not past the soft deadline (a wait that would outlive the budget)."""
        if self._soft is None:
            return seconds
        return max(0.0, min(seconds, self._soft - self._now()))

    @contextlib.asynccontextmanager
    async def bounded(self, where: str) -> AsyncIterator[None]:
        """Whatever the block still waits on at the last deadline is cancelled; BudgetSpent `where`."""
        timeout = asyncio.timeout_at(self._end)
        self._outer.add(timeout)
        try:
            async with timeout:
                yield
        except TimeoutError:
            if not timeout.expired():
                raise
            raise self.incomplete(where) from None

    def incomplete(self, where: str) -> BudgetSpent:
        """The error that ends the run: exit 3, and the next run continues from the checkpoint `where`."""
        cause = self.stopped_by or f"the time budget of {self.seconds:g} s ran out"
        return BudgetSpent(f"{cause} {where}; the next run continues from the checkpoint.", where)
