"""The pacer's gate (replicator.engine.pacer), on a clock the test moves: the limit bounds the requests in
flight, a throttled request cuts it at once and is counted, the 503s of requests sent before the cut
do not cut again, windows of growing throughput grow it unless the process's event loop was busy in
them (a busy clock the test moves), and every change is a debug `pacer` event. Every gate here gets
a busy clock of its own, so the machine's real load cannot change an outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core import pacing
from replicator.engine import pacer as pacer_module
from replicator.engine.pacer import MIN_WINDOW, Pacer
from replicator.plumbing.retry import is_throttled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock | None = None, busy: Clock | None = None) -> Pacer:
    """A gate of ceiling 64 on the test's clocks (a busy clock that stays put: the loop idle)."""
    return Pacer(64, "b", clock or Clock(), busy=busy or Clock())


def answer(status: int, code: str) -> HttpResponseError:
    exc = HttpResponseError(message=code)
    exc.status_code = status
    exc.error_code = code
    return exc


def busy() -> HttpResponseError:
    return answer(503, "ServerBusy")


@pytest.mark.parametrize(
    ("exc", "throttled"),
    [
        (answer(503, "ServerBusy"), True),
        (answer(503, "IngressOverLimit"), True),
        (answer(429, "TooManyRequests"), True),
        (answer(500, "OperationTimedOut"), True),
        (answer(500, "InternalError"), False),
        (answer(403, "AuthenticationFailed"), False),
        (TimeoutError(), False),
    ],
)
def test_what_counts_as_throttled(exc: BaseException, throttled: bool) -> None:
    assert is_throttled(exc) is throttled


@contextlib.asynccontextmanager
async def holding(pacer: Pacer, n: int) -> AsyncIterator[list[asyncio.Event]]:
    """`n` requests that each hold a slot until their event is set (or forever: cancelled on exit)."""
    events = [asyncio.Event() for _ in range(n)]

    async def request(done: asyncio.Event) -> None:
        async with pacer.slot():
            await done.wait()

    tasks = [asyncio.create_task(request(e)) for e in events]
    await asyncio.sleep(0)
    try:
        yield events
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_requests(pacer: Pacer, n: int, failure: BaseException | None = None) -> None:
    """`n` requests one after another, each ending at once (with `failure`, if given)."""
    for _ in range(n):
        with contextlib.suppress(HttpResponseError):
            async with pacer.slot():
                if failure is not None:
                    raise failure


async def test_the_limit_bounds_the_requests_in_flight() -> None:
    pacer = gate()
    async with holding(pacer, pacing.INITIAL + 3):
        assert pacer._slots.free == 0 and len(pacer._slots._waiters) == 3
    assert pacer._slots.free == pacer.state.limit  # cancelled waiters and holders gave everything back


async def test_a_throttled_request_cuts_the_limit_at_once_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = Pacer(64, "account/c/b", Clock(), busy=Clock())
    record = pacer.begin_job()
    with caplog.at_level(logging.DEBUG, logger="replicator"):
        await run_requests(pacer, 1, busy())
    assert pacer.state.limit == int(pacing.INITIAL * pacing.DECREASE)
    assert (record.min_limit, record.max_limit, record.final_limit, record.throttled) == (5, 8, 5, 1)
    assert pacer._slots.capacity == 5
    (change,) = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "pacer"]
    assert change.levelno == logging.DEBUG
    assert change.fields["previous"] == 8 and change.fields["limit"] == 5  # type: ignore[attr-defined]
    assert "8 -> 5 (throttled)" in change.fields["message"]  # type: ignore[attr-defined]


async def test_the_503s_of_requests_sent_before_a_cut_do_not_cut_again() -> None:
    pacer = gate()
    record = pacer.begin_job()
    failures = iter([busy()] * 4)

    async def request() -> None:
        with contextlib.suppress(HttpResponseError):
            async with pacer.slot():
                await asyncio.sleep(0)
                raise next(failures)

    await asyncio.gather(*(request() for _ in range(4)))  # all four sent under the first limit
    assert pacer.state.limit == 5  # one overload, one cut
    assert record.throttled == 4


async def full_windows(pacer: Pacer, clock: Clock, busy: Clock, seconds: float, share: float) -> list[int]:
    """Three windows of `seconds` each that fill the limit (throughput grows with it), the process's
    loop busy for `share` of each; the limit after each."""
    limits = []
    for _ in range(3):
        async with holding(pacer, pacer.state.limit) as events:  # the limit fills: a full window
            clock.now += seconds
            busy.now += seconds * share
            for event in events:
                event.set()
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        limits.append(pacer.state.limit)
    return limits


async def test_windows_of_growing_throughput_grow_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    clock, busy = Clock(), Clock()
    pacer = gate(clock, busy)
    record = pacer.begin_job()
    with caplog.at_level(logging.DEBUG, logger="replicator"):
        assert await full_windows(pacer, clock, busy, 1.0, 0.5) == [16, 32, 64]  # the loop half idle
    assert (record.min_limit, record.max_limit, record.final_limit, record.throttled) == (8, 64, 64, 0)
    assert (record.cpu_held, record.cpu_share) == (0, 0.5)
    changes = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "pacer"]  # type: ignore[attr-defined]
    assert [(c["limit"], c["cpu_share"]) for c in changes] == [(16, 0.5), (32, 0.5), (64, 0.5)]


async def test_the_trace_times_each_window_from_the_start_of_its_own_job() -> None:
    """Each point is [seconds since begin_job, the limit the window ran under, its rate]: a second job
    on the same blob starts its trace at its own beginning, not the gate's or the clock's zero."""
    clock, busy = Clock(), Clock()
    clock.now = 100.0
    pacer = gate(clock, busy)
    first = pacer.begin_job()
    await full_windows(pacer, clock, busy, 1.0, 0.5)
    assert first.trace == [[1.0, 8, 8.0], [2.0, 16, 16.0], [3.0, 32, 32.0]]
    assert (first.windows, first.trace_every) == (3, 1)
    clock.now += 7.5  # the commit and the next job's grants: not a window
    second = pacer.begin_job()
    await full_windows(pacer, clock, busy, 0.5, 0.5)
    assert [point[0] for point in second.trace] == [0.5, 1.0, 1.5]
    assert second.trace[0][1] == 64 and first.windows == 3  # the limit carried over; a fresh record


async def test_windows_in_which_the_process_was_cpu_bound_hold_the_limit_and_the_record_says_so() -> None:
    clock, busy = Clock(), Clock()
    pacer = gate(clock, busy)
    record = pacer.begin_job()
    assert await full_windows(pacer, clock, busy, 1.0, 0.9) == [8, 8, 8]  # but for the CPU: 16, 32, 64
    assert (record.min_limit, record.max_limit, record.final_limit, record.cpu_held) == (8, 8, 8, 1)
    assert record.cpu_share == 0.9  # the first window probes and is held; the next are no faster


def test_the_default_busy_clock_counts_the_loop_threads_time_on_a_core() -> None:
    """Whatever it reads (the thread's CPU time and Linux's wait for a core, else the process's CPU
    time), a thread that spins for 20 ms of its own CPU time moves it by at least that (its waits
    for a core only add)."""
    start, spun = pacer_module.busy_time(), time.thread_time()
    while time.thread_time() - spun < 0.02:
        pass
    assert pacer_module.busy_time() - start >= 0.02


def test_without_the_schedulers_statistics_the_busy_clock_is_the_process_cpu_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(pacer_module, "SCHEDSTAT", tmp_path / "absent")
    assert pacer_module._busy_clock() is time.process_time
    (tmp_path / "schedstat").write_text("1500000000 500000000 7\n")
    monkeypatch.setattr(pacer_module, "SCHEDSTAT", tmp_path / "schedstat")
    monkeypatch.setattr(time, "thread_time", lambda: 1.5)
    assert pacer_module._busy_clock()() == 2.0  # on a core and waiting for one, in seconds


async def test_a_window_that_never_fills_the_limit_does_not_grow_it() -> None:
    clock = Clock()
    pacer = gate(clock)
    for _ in range(5):
        clock.now += 1.0
        await run_requests(pacer, MIN_WINDOW)  # one at a time: the workers had no more to send
    assert pacer.state.limit == pacing.INITIAL


async def test_a_cancelled_request_tells_nothing() -> None:
    pacer = gate()
    record = pacer.begin_job()
    async with holding(pacer, 3):
        pass
    assert pacer._completed == 0 and record.throttled == 0 and pacer._slots.free == pacing.INITIAL


async def test_a_new_job_keeps_the_limit_but_starts_a_new_window_and_record() -> None:
    clock = Clock()
    pacer = gate(clock)
    await run_requests(pacer, 1, busy())
    await run_requests(pacer, 3)
    clock.now += 600.0  # the commit and the next grants: no measure of the blob
    record = pacer.begin_job()
    assert (record.min_limit, record.max_limit, record.final_limit, record.throttled) == (5, 5, 5, 0)
    assert pacer._completed == 0 and pacer._window_start == 600.0
