"""The pacer's gate (replicator.engine.pacer), on a clock the test moves: the limit bounds the requests in
flight, a throttled request cuts it at once and is counted, the 503s of requests sent before the cut
do not cut again, windows of growing throughput grow it, and every change is a debug `pacer` event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core import pacing
from replicator.engine.pacer import MIN_WINDOW, Pacer
from replicator.plumbing.retry import is_throttled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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
    pacer = Pacer(64, "b", Clock())
    async with holding(pacer, pacing.INITIAL + 3):
        assert pacer._slots.free == 0 and len(pacer._slots._waiters) == 3
    assert pacer._slots.free == pacer.state.limit  # cancelled waiters and holders gave everything back


async def test_a_throttled_request_cuts_the_limit_at_once_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacer = Pacer(64, "account/c/b", Clock())
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
    pacer = Pacer(64, "b", Clock())
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


async def test_windows_of_growing_throughput_grow_the_limit_and_a_flat_one_holds_it() -> None:
    clock = Clock()
    pacer = Pacer(64, "b", clock)
    record = pacer.begin_job()
    limits = []
    for seconds in (1.0, 1.0, 1.0):  # each window the same length: throughput grows with the limit
        async with holding(pacer, pacer.state.limit) as events:  # the limit fills: a full window
            clock.now += seconds
            for event in events:
                event.set()
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        limits.append(pacer.state.limit)
    assert limits == [16, 32, 64]
    assert (record.min_limit, record.max_limit, record.final_limit, record.throttled) == (8, 64, 64, 0)


async def test_a_window_that_never_fills_the_limit_does_not_grow_it() -> None:
    clock = Clock()
    pacer = Pacer(64, "b", clock)
    for _ in range(5):
        clock.now += 1.0
        await run_requests(pacer, MIN_WINDOW)  # one at a time: the workers had no more to send
    assert pacer.state.limit == pacing.INITIAL


async def test_a_cancelled_request_tells_nothing() -> None:
    pacer = Pacer(64, "b", Clock())
    record = pacer.begin_job()
    async with holding(pacer, 3):
        pass
    assert pacer._completed == 0 and record.throttled == 0 and pacer._slots.free == pacing.INITIAL


async def test_a_new_job_keeps_the_limit_but_starts_a_new_window_and_record() -> None:
    clock = Clock()
    pacer = Pacer(64, "b", clock)
    await run_requests(pacer, 1, busy())
    await run_requests(pacer, 3)
    clock.now += 600.0  # the commit and the next grants: no measure of the blob
    record = pacer.begin_job()
    assert (record.min_limit, record.max_limit, record.final_limit, record.throttled) == (5, 5, 5, 0)
    assert pacer._completed == 0 and pacer._window_start == 600.0
