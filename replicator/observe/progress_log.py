"""A run's progress as log events: its steps, each snapshot's start and summary, and a periodic record.

`LogProgress` is the Progress listener of every command that replicates (the CLI, a queue worker,
the Functions entry points). It words each event once, for both forms of the one log stream
(replicator.observe.jsonlog): on a terminal its message, elsewhere its message and its fields as JSON. The
CLI's progress bar is a subclass (replicator.cli.terminal_progress.TerminalProgress).

Without a bar (cron, systemd, Functions logs, `--json`), nothing would show between a snapshot's
start and its summary however long the copy takes: `reported` logs a `progress` record every
`--progress-seconds` meanwhile, also while no snapshot is under way (waiting for the lease, a SAS
slot, a background copy), so a silent log always means a stuck process.

The rate in a record is over the last RATE_WINDOW_SECONDS, not since the run started. Why: a run's
average includes its listing, grants and lease wait, and throttling that began a minute ago would
hide behind an hour of good rate; the window shows the link as it is now, which is what an ETA
needs. The ETA is given only once the snapshot's total is known: the plan is streamed (the copy's
listing runs at most the copy queue ahead of the writes), so the total comes from a count of the
plan made ahead of the copy (Progress.on_total), usually within seconds; until then the total is
what was listed so far, and an ETA against it would promise too early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from replicator.core.output import (
    human_duration,
    human_rate,
    human_size,
    plural,
)
from replicator.core.progress import SnapshotResult, Tally
from replicator.observe.jsonlog import event

T = TypeVar("T")
log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60.0
"""The rate's window: two records at the default --progress-seconds, long enough to smooth the bursts
of 4 MiB chunks finishing together, short enough to show a throttled link within a minute."""


class RateWindow:
    """Bytes per second over a sliding window of (time, bytes done) samples."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def restart(self, now: float) -> None:
        """A new count starts at 0 bytes `now` (a new snapshot)."""
        self._samples.clear()
        self._samples.append((now, 0))

    def rate(self, now: float, done: int) -> float | None:
        """Record `done` bytes at `now`; the rate since the newest sample at least `window` old (or since
        the start, when younger); None before any time has passed."""
        self._samples.append((now, done))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        then, before = self._samples[0]
        return (done - before) / (now - then) if now > then else None


def snapshot_summary(result: SnapshotResult, name: str | None = None) -> str:
    """The line that ends a snapshot: what (`name`, default the snapshot's), where it went, how, and
    what it cost.

    Clears are worded by what they are, because a bare "63.8 GiB cleared" reads as data loss: a full
    copy into a target that held data zeroes it where the source holds none (on a blank target it
    clears nothing), and a diff clears what was trimmed on the source since its base.
    """
    where = f"restore point {result.restore_point}" if result.restore_point else "planned, nothing written"
    cost = [f"{human_size(result.changed_bytes)} changed"]
    if result.merged_gap_bytes:
        cost[0] += f" (+{human_size(result.merged_gap_bytes)} merged gaps)"
    if result.cleared_bytes and result.mode == "full":
        cost.append(
            f"{human_size(result.cleared_bytes)} zeroed where the source is empty (the target held data)"
        )
    elif result.cleared_bytes:
        cost.append(f"{human_size(result.cleared_bytes)} cleared (trimmed on the source since the base)")
    cost += [
        f"{human_size(result.copied_bytes)} copied",
        plural(result.requests, "request"),
        plural(result.retries, "retry", "retries"),
        f"{result.seconds:.1f} s",
    ]
    pacing = result.pacing
    if pacing is not None and pacing.throttled:  # the blob pushed back: say where the pacer settled
        cost.append(
            f"{plural(pacing.throttled, 'request')} throttled, requests in flight "
            f"{pacing.min_limit}-{pacing.max_limit} (last {pacing.final_limit})"
        )
    budget = result.account_budget
    if budget is not None and (budget.waits or budget.throttled):  # the account's budget bound
        cost.append(
            f"the account's budget ({budget.lowest_requests_per_second:,.0f}-"
            f"{budget.requests_per_second:,.0f} requests/s) held {plural(budget.waits, 'request')} "
            f"{budget.wait_seconds:.1f} s, {plural(budget.throttled, 'account-level 503')}"
        )
    if result.verified:
        cost.append("verified")
    return f"{name or result.snapshot_name}: {where}; {result.how}; {', '.join(cost)}"


def progress_line(
    name: str,
    done: int,
    total: int,
    *,
    final: bool,
    rate: float | None,
    eta: float | None,
    skipped: int = 0,
) -> str:
    """'s1: 1.2 GiB of 4.0 GiB copied (30 %), 45.1 MiB/s, about 1 min 5 s left'."""
    if final:
        percent = 100 if total == 0 else done * 100 // total
        text = f"{name}: {human_size(done)} of {human_size(total)} copied ({percent} %)"
    else:
        text = f"{name}: {human_size(done)} of {human_size(total)} listed so far copied"
    if skipped:
        text += f", {human_size(skipped)} copied before the resume"
    if rate is not None:
        text += f", {human_rate(rate)}"
    if eta is not None:
        text += f", about {human_duration(eta)} left"
    elif not final:
        text += "; still listing"
    elif rate == 0:
        text += f"; nothing written in the last {RATE_WINDOW_SECONDS:.0f} s"
    return text


class LogProgress(Tally):
    """Logs a run's steps, snapshots and (`report`) progress records; `context` goes on every event
    (a fleet job: run_id, disk, target). `clock` is injectable so a test can drive the rate."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        position: tuple[int, int] | None = None,
        **context: Any,
    ) -> None:
        super().__init__()
        self.context = context
        self.position = position  # a VM run's disk: (index, count) of the VM's disks
        self.clock = clock
        self.rate = RateWindow()
        self.index = self.count = self.retries = 0  # snapshot `index` of `count`
        self.started = clock()
        self.step: str | None = None  # the last step reported: what a record without a snapshot says

    def _event(self, name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
        event(name, level, message=message, **{**self.context, **fields})

    def _child(self, name: str, index: int, count: int) -> LogProgress:
        """A disk of a VM run logs its own lines, each with `disk` its name (in place of a fleet job's
        source: the VM); never a bar, since the disks run at once."""
        return LogProgress(clock=self.clock, position=(index, count), **{**self.context, "disk": name})

    def _name(self, result: SnapshotResult) -> str:
        """What a line is about: a disk of a VM run by its name and place (`vm1-data1 (disk 2 of 3)`:
        it copies one disk restore point per group, so a snapshot count would say `[1/1]` on every
        disk), else the snapshot, `index` of the `count` this run replicates (`[2/5] s2`)."""
        if self.position is not None:
            return f"{self.context['disk']} (disk {self.position[0]} of {self.position[1]})"
        return f"[{self.index}/{self.count}] {result.snapshot_name}"

    def on_message(self, text: str) -> None:
        self.step = text
        self._event("step", text)

    def on_snapshot_start(self, result: SnapshotResult, index: int, total: int) -> None:
        super().on_snapshot_start(result, index, total)
        self.index, self.count, self.retries = index, total, 0
        self.started = self.clock()
        self.rate.restart(self.started)
        self._event(
            "snapshot_start",
            f"{self._name(result)}: {result.how}",
            snapshot=result.snapshot_id,
            snapshot_name=result.snapshot_name,
            index=index,
            total=total,
            mode=result.mode,
            reason=result.reason,
            base_snapshot=result.base_snapshot_id,
            resumed_from=result.resumed_from,
        )

    def on_retry(self, what: str, attempt: int, delay: float, error: str) -> None:
        self.retries += 1

    def on_snapshot_done(self, result: SnapshotResult) -> None:
        super().on_snapshot_done(result)
        self._event(
            "snapshot_done",
            snapshot_summary(result, self.context["disk"] if self.position else None),
            snapshot=result.snapshot_id,
            snapshot_name=result.snapshot_name,
            mode=result.mode,
            reason=result.reason,
            bytes=result.copied_bytes,
            changed_bytes=result.changed_bytes,
            merged_gap_bytes=result.merged_gap_bytes,
            cleared_bytes=result.cleared_bytes,
            resumed_from=result.resumed_from,
            requests=result.requests,
            retries=result.retries,
            seconds=result.seconds,
            restore_point=result.restore_point,
            verified=result.verified,
        )

    def report(self) -> None:
        """Log one `progress` record: the snapshot under way, bytes done of total, rate, ETA (a VM run:
        one record per disk under way)."""
        now = self.clock()
        current = self.current
        busy = [child for child in self.disks.values() if isinstance(child, LogProgress) and child.current]
        if current is None and busy:
            for child in busy:
                child.report()
            return
        if current is None:
            step = self.step or "starting"
            self._event("progress", f"working: {step}", step=step, snapshots_done=len(self.done))
            return
        rate = self.rate.rate(now, self.written)
        eta = self.remaining / rate if self.total_known and rate else None
        if self.total_known and self.remaining == 0:
            eta = 0.0
        name = self._name(current)
        line = progress_line(
            name,
            self.written,
            self.total,
            final=self.total_known,
            rate=rate,
            eta=eta,
            skipped=self.skipped,
        )
        self._event(
            "progress",
            line,
            snapshot=current.snapshot_id,
            snapshot_name=current.snapshot_name,
            index=self.index,
            total=self.count,
            bytes_done=self.written,
            bytes_total=self.total,
            total_final=self.total_known,
            skipped_bytes=self.skipped,
            bytes_per_second=None if rate is None else round(rate),
            eta_seconds=None if eta is None else round(eta),
            retries=self.retries,
            seconds=round(now - self.started, 1),
        )


async def reported(work: Awaitable[T], progress: LogProgress, seconds: float | None) -> T:
    """Await `work`, logging `progress.report()` every `seconds` meanwhile (None: never, a bar shows it)."""
    if seconds is None:
        return await work

    async def tick() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                progress.report()
            except Exception:  # a record is not worth the run it reports on
                log.warning("could not log a progress record", exc_info=True)

    ticker = asyncio.create_task(tick(), name="progress-records")
    try:
        return await work
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
