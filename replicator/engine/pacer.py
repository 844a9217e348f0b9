"""The pacer of one target blob: the gate every write request passes, its limit moved by core.pacing.

Who decides concurrency: `--concurrency` starts that many copy workers per target blob written
(engine.copier.run_pool; core.stripes.copy_workers for the stripes of a source over 8 TiB) and
is the pacer's ceiling; `--max-in-flight` bounds their bytes (engine.inflight); and this gate decides
how many of their requests are at the service at once. Each attempt (a retry is a new request) holds
one slot of a replicator.core.weighted.WeightedSemaphore whose capacity is the limit, and reports how
it ended: throttled (503 ServerBusy, 500 OperationTimedOut, plumbing.retry.is_throttled) or not.

Windows: the limit changes only between windows. A window ends at the first throttled request or once
`max(limit, MIN_WINDOW)` requests (about one round trip's worth) have ended, all of them issued under
the current limit: a request remembers the limit's epoch it started in, and one from an earlier epoch
(sent before a cut) is counted in the record but not in the window, so one overload is one cut.
The window's length comes from `clock` (time.monotonic; a test passes its own), and the seconds the
process's event loop was busy in it from `busy` (`busy_time`; a test passes its own): a window the
loop was busy for core.pacing.CPU_BOUND of its length or more does not grow the limit, because the
client, not the blob, held its throughput (core.pacing.held_for_cpu).

The account: every request this gate admits then takes from its storage account's budget
(engine.account_gate, shared by every run of the process), which may hold it a while. A 503 whose
message names an account limit (plumbing.retry.account_limit) is the account's to answer: it cuts the
account's budget, and the blob's window neither counts it nor cuts on it (the blob was not the limit).
A window in which the budget held a request says nothing about the blob either (its throughput was the
account's share, not the blob's): like a window that never filled the limit, it leaves the limit where
it is. Otherwise runs sharing a bound account would outbid each other (a run's share of the account's
queue grows with its requests in flight) up to their ceilings, and only lengthen the queue.

What it tells: a `pacer` log event at debug level per change (old and new limit, why, the window's
rate and its share of a core), and per job a core.pacing.PacingRecord (lowest, highest and last limit,
throttled requests, windows held for CPU, the busiest window's share of a core and a trace of the
limit over time, at most core.pacing.TRACE_POINTS windows of it) and a
core.account_budget.BudgetRecord (the account's limits, the requests that waited for it, its 503s)
for the job's entry of the `--json` document.

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
from pathlib import Path

from replicator.core import pacing, stripes
from replicator.core.account_budget import BudgetRecord
from replicator.core.ranges import Range
from replicator.core.weighted import WeightedSemaphore
from replicator.engine.account_gate import AccountGate
from replicator.observe.jsonlog import event
from replicator.plumbing.retry import account_limit, is_throttled

MIN_WINDOW = 8
"""The fewest requests a window measures: fewer make the rate of a small limit mostly noise."""
SCHEDSTAT = Path("/proc/thread-self/schedstat")
"""Linux's scheduler statistics of the calling thread: nanoseconds on a core, nanoseconds runnable
but waiting for one (`run_delay`), time slices (the kernel's Documentation/scheduler/sched-stats.rst)."""


def _thread_busy_seconds() -> float:
    """The calling thread's seconds on a core (time.thread_time: exact, where the statistics' first
    field lags a running thread's by up to a scheduler tick) plus its seconds waiting for one."""
    return time.thread_time() + int(SCHEDSTAT.read_text().split()[1]) / 1e9


def _busy_clock() -> Callable[[], float]:
    """The seconds the calling thread (the event loop's: the gate runs on it) was busy, on a core or
    waiting for one: where Linux tells (SCHEDSTAT), so that a loop starved by the machine's other
    processes counts as busy (it had work ready; more in flight would only queue behind it), else
    the process's CPU time (time.process_time), which sees only the time on a core."""
    try:
        _thread_busy_seconds()
    except (OSError, ValueError, IndexError):
        return time.process_time
    return _thread_busy_seconds


busy_time = _busy_clock()
"""The gate's default busy clock (see _busy_clock), chosen once so every window measures alike."""


class Pacer:
    """The gate of one target blob (one per run: JobRunner), its limit between 1 and `ceiling`; its
    requests also pass `account`, the gate of the blob's storage account (None: no account budget)."""

    def __init__(
        self,
        ceiling: int,
        blob: str,
        clock: Callable[[], float] = time.monotonic,
        account: AccountGate | None = None,
        busy: Callable[[], float] = busy_time,
    ) -> None:
        self.state = pacing.start(ceiling)
        self.account = account
        self.blob = blob  # for the log events: the target's name, never its URL (no SAS)
        self._slots = WeightedSemaphore(self.state.limit)
        self._clock, self._busy = clock, busy
        self._epoch = 0
        self.begin_job()  # the first job's records and window

    def begin_job(self) -> pacing.PacingRecord:
        """A fresh record and window for the next job; the limit carries over (the blob is the same),
        but the time between two jobs (commit, grants) is no measure of the blob's throughput."""
        self.record = pacing.PacingRecord.at(self.state.limit)
        self.budget: BudgetRecord | None = self.account.record() if self.account else None
        self._window_start, self._busy_start = self._clock(), self._busy()
        self._job_start = self._window_start
        self._completed = 0
        self._full = False  # the requests in flight reached the limit in this window
        self._held = False  # the account's budget held a request of this window
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
        now, busy = self._clock(), self._busy()
        full = self._full and not self._held  # a window the budget held says nothing about the blob
        seen = pacing.Observation(
            self._completed, int(throttled), now - self._window_start, full, busy - self._busy_start
        )
        before, self.state = self.state, pacing.step(self.state, seen)
        self.record.closed(before, seen, now - self._job_start)
        self._window_start, self._busy_start = now, busy
        self._completed, self._full, self._held = 0, self._slots.free <= 0, False
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
            cpu_share=round(seen.busy_share, 2),
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
        busy: Callable[[], float] = busy_time,
    ) -> None:
        self._ceiling, self._blob, self._clock, self._busy = ceiling, blob, clock, busy
        self._account = account
        self._pacers = {0: Pacer(ceiling, blob, clock, account=account, busy=busy)}

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
            pacer = Pacer(self._ceiling, name, self._clock, account=self._account, busy=self._busy)
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
