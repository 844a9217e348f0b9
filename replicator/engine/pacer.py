"""The pacer of one target blob: the gate every write request passes, its limit moved by core.pacing.

Who decides concurrency: `--concurrency` starts that many copy workers (engine.copier.run_pool) and
is the pacer's ceiling; `--max-in-flight` bounds their bytes (engine.inflight); and this gate decides
how many of their requests are at the service at once. Each attempt (a retry is a new request) holds
one slot of a replicator.core.weighted.WeightedSemaphore whose capacity is the limit, and reports how
it ended: throttled (503 ServerBusy, 500 OperationTimedOut, plumbing.retry.is_throttled) or not.

Windows: the limit changes only between windows. A window ends at the first throttled request or once
`max(limit, MIN_WINDOW)` requests (about one round trip's worth) have ended, all of them issued under
the current limit: a request remembers the limit's epoch it started in, and one from an earlier epoch
(sent before a cut) is counted in the record but not in the window, so one overload is one cut.
The window's length comes from `clock` (time.monotonic; a test passes its own).

The account: every request this gate admits then takes from its storage account's budget
(engine.account_gate, shared by every run of the process), which may hold it a while. A 503 whose
message names an account limit (plumbing.retry.account_limit) is the account's to answer: it cuts the
account's budget, and the blob's window neither counts it nor cuts on it (the blob was not the limit).
A window in which the budget held a request says nothing about the blob either (its throughput was the
account's share, not the blob's): like a window that never filled the limit, it leaves the limit where
it is. Otherwise runs sharing a bound account would outbid each other (a run's share of the account's
queue grows with its requests in flight) up to their ceilings, and only lengthen the queue.

What it tells: a `pacer` log event at debug level per change (old and new limit, why, the window's
rate and throttled count), and per job a core.pacing.PacingRecord (lowest, highest and last limit,
throttled requests) and a core.account_budget.BudgetRecord (the account's limits, the requests that
waited for it, its 503s) for the job's entry of the `--json` document.

Stripes: a source over 8 TiB is written into several page blobs (core.stripes), each with its own
per-blob limits, so each gets its own pacer (`StripePacers`); a request goes to one stripe only
(the engine cuts ops at stripe boundaries: core.stripes.cut).

Memory: a few numbers per target blob, whatever the number of requests.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from replicator.core import pacing, stripes
from replicator.core.account_budget import BudgetRecord
from replicator.core.ranges import Range
from replicator.core.weighted import WeightedSemaphore
from replicator.engine.account_gate import AccountGate
from replicator.observe.jsonlog import event
from replicator.plumbing.retry import account_limit, is_throttled

MIN_WINDOW = 8
"""The fewest requests a window measures: fewer make the rate of a small limit mostly noise."""


class Pacer:
    """The gate of one target blob (one per run: JobRunner), its limit between 1 and `ceiling`; its
    requests also pass `account`, the gate of the blob's storage account (None: no account budget)."""

    def __init__(
        self,
        ceiling: int,
        blob: str,
        clock: Callable[[], float] = time.monotonic,
        account: AccountGate | None = None,
    ) -> None:
        self.state = pacing.start(ceiling)
        self.account = account
        self.budget: BudgetRecord | None = account.record() if account else None
        self.blob = blob  # for the log events: the target's name, never its URL (no SAS)
        self.record = pacing.PacingRecord.at(self.state.limit)
        self._slots = WeightedSemaphore(self.state.limit)
        self._clock = clock
        self._epoch = 0
        self._window_start = clock()
        self._completed = 0
        self._full = False  # the requests in flight reached the limit in this window
        self._held = False  # the account's budget held a request of this window

    def begin_job(self) -> pacing.PacingRecord:
        """A fresh record and window for the next job; the limit carries over (the blob is the same),
        but the time between two jobs (commit, grants) is no measure of the blob's throughput."""
        self.record = pacing.PacingRecord.at(self.state.limit)
        self.budget = self.account.record() if self.account else None
        self._window_start, self._completed, self._full, self._held = self._clock(), 0, False, False
        return self.record

    @contextlib.asynccontextmanager
    async def slot(self, nbytes: int = 0) -> AsyncIterator[None]:
        """Hold one of the limit's slots for one request that sends `nbytes` into the account, once the
        account's budget lets it go; its ending is observed on every way out but cancellation (a
        cancelled request says nothing about the service)."""
        taken = await self._slots.acquire(1)
        self._full = self._full or self._slots.free <= 0
        epoch, account, budget = self._epoch, self.account, self.budget
        try:
            ticket = await account.admit(nbytes, budget) if account and budget else None
            self._held = self._held or bool(ticket and ticket.waited)
            yield
        except Exception as exc:
            limit = account_limit(exc)
            if limit is not None and account and budget and ticket:
                account.refused(ticket, limit, budget)
            else:
                self._ended(epoch, throttled=is_throttled(exc))
            raise
        else:
            self._ended(epoch, throttled=False)
        finally:
            self._slots.release(taken)

    def _ended(self, epoch: int, *, throttled: bool) -> None:
        self.record.throttled += throttled
        if epoch != self._epoch:  # sent under an earlier limit: already answered for
            return
        self._completed += 1
        if throttled or self._completed >= max(self.state.limit, MIN_WINDOW):
            self._close_window(throttled)

    def _close_window(self, throttled: bool) -> None:
        now = self._clock()
        full = self._full and not self._held  # a window the budget held says nothing about the blob
        seen = pacing.Observation(self._completed, int(throttled), now - self._window_start, full)
        before, self.state = self.state, pacing.step(self.state, seen)
        self._window_start, self._completed, self._full, self._held = now, 0, self._slots.free <= 0, False
        if self.state.limit == before.limit:
            return
        self._epoch += 1
        self._slots.resize(self.state.limit)
        self.record.moved(self.state.limit)
        why = "throttled" if throttled else "probing" if before.last_rate is None else "throughput grew"
        event(
            "pacer",
            logging.DEBUG,
            message=f"{self.blob}: requests in flight {before.limit} -> {self.state.limit} ({why})",
            blob=self.blob,
            previous=before.limit,
            limit=self.state.limit,
            reason=why,
            rate=round(seen.rate, 1),
            ceiling=self.state.ceiling,
        )


class StripePacers:
    """One Pacer per stripe blob of a target (made when a stripe gets its first request); a target of
    one blob has exactly one, the base blob's, as before stripes existed. Every stripe is a blob of
    the same account: they share its gate, and one job's record of the account's budget."""

    def __init__(
        self,
        ceiling: int,
        blob: str,
        clock: Callable[[], float] = time.monotonic,
        account: AccountGate | None = None,
    ) -> None:
        self._ceiling, self._blob, self._clock, self._account = ceiling, blob, clock, account
        self._pacers = {0: Pacer(ceiling, blob, clock, account=account)}

    @property
    def base(self) -> Pacer:
        """The base blob's pacer (stripe 0): a target of one blob has no other."""
        return self._pacers[0]

    @property
    def budget(self) -> BudgetRecord | None:
        """The account budget's record of the current job, every stripe's requests in it."""
        return self.base.budget

    def of(self, r: Range) -> Pacer:
        """The pacer of the stripe blob holding the export range `r` (one stripe: core.stripes.locate)."""
        index = stripes.locate(r)[0]
        if index not in self._pacers:
            name = f"{self._blob} stripe {index}"
            pacer = Pacer(self._ceiling, name, self._clock, account=self._account)
            pacer.budget = self.budget
            self._pacers[index] = pacer
        return self._pacers[index]

    def begin_job(self) -> pacing.PacingRecord:
        """Begin a job on every stripe's pacer; returns the base blob's record (stripe 0), which the
        job's `--json` entry shows (each stripe's changes are `pacer` log events)."""
        records = [pacer.begin_job() for pacer in self._pacers.values()]
        for pacer in self._pacers.values():
            pacer.budget = self.budget
        return records[0]
