"""The one retry policy: the wait's bounds (full jitter, Retry-After floor, cap), the transient
classifier, and the tenacity loop's attempts, deadline and report hook (with a recording sleep:
nothing here sleeps for real)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.plumbing import retry

props = settings(max_examples=300, deadline=None, derandomize=True)


def answered(status: int, retry_after: str | None = None) -> HttpResponseError:
    exc = HttpResponseError(f"status {status}")
    exc.status_code = status
    exc.response = SimpleNamespace(headers={"Retry-After": retry_after} if retry_after else {})  # type: ignore[assignment]
    return exc


seconds = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False)


@props
@given(attempt=st.integers(1, 5000), first=seconds, cap=seconds)
def test_the_wait_is_a_full_jitter_draw_under_the_doubled_bound_and_the_cap(
    attempt: int, first: float, cap: float
) -> None:
    wait = retry.backoff(attempt, first=first, cap=cap)
    assert 0.0 <= wait <= min(cap, first * 2.0 ** min(attempt - 1, retry.MAX_DOUBLINGS))


@props
@given(attempt=st.integers(1, 100), cap=seconds, asked=st.integers(0, 10_000))
def test_the_wait_is_never_below_the_services_retry_after_which_has_its_own_cap(
    attempt: int, cap: float, asked: int
) -> None:
    wait = retry.backoff(attempt, first=0.5, cap=cap, exc=answered(503, str(asked)))
    floor = min(float(asked), retry.MAX_RETRY_AFTER_SECONDS)
    assert floor <= wait <= max(floor, cap)


def test_an_unreadable_or_missing_retry_after_is_no_floor() -> None:
    assert retry.retry_after(answered(503, "Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert retry.retry_after(answered(503)) == 0.0
    assert retry.retry_after(ValueError()) == 0.0
    assert retry.retry_after(None) == 0.0
    assert retry.backoff(1, first=0.0, cap=0.0, exc=answered(429, "7")) == 7.0


@pytest.mark.parametrize("status", sorted(retry.TRANSIENT_STATUS))
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    assert retry.is_transient(answered(status))


@pytest.mark.parametrize(
    "exc",
    [
        ServiceRequestError("refused"),
        ServiceResponseError("reset"),
        TimeoutError(),
        ConnectionResetError(),
        aiohttp.ClientPayloadError("cut short"),
        aiohttp.ServerDisconnectedError(),
    ],
)
def test_no_answer_is_transient(exc: BaseException) -> None:
    assert retry.is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        answered(400),
        answered(403),
        answered(404),
        answered(409),
        answered(412),
        ResourceNotFoundError("gone"),
    ],
)
def test_refusals_and_our_own_bugs_are_not_transient(exc: BaseException) -> None:
    assert not retry.is_transient(exc)
    assert not retry.is_transient(ValueError("a bug"))


class Flaky:
    """A call that fails with `failures` in order, then returns "done"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures, self.calls = list(failures), 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_a_loop_retries_transient_failures_reporting_each_wait_it_sleeps() -> None:
    slept: list[float] = []
    reported: list[tuple[int, float, str]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = retry.retrying(
        first=1.0,
        cap=60.0,
        attempts=5,
        on_retry=lambda attempt, delay, exc: reported.append((attempt, delay, type(exc).__name__)),
    ).copy(sleep=sleep)
    call = Flaky(TimeoutError(), answered(503, "3"), ServiceResponseError("reset"))
    assert await policy(call) == "done"
    assert call.calls == 4
    assert [(a, name) for a, _, name in reported] == [
        (1, "TimeoutError"),
        (2, "HttpResponseError"),
        (3, "ServiceResponseError"),
    ]
    assert slept == [delay for _, delay, _ in reported]
    assert slept[0] <= 1.0 and slept[1] >= 3.0 and slept[2] <= 4.0


async def test_a_loop_gives_up_after_its_attempts_with_the_last_failure() -> None:
    async def sleep(seconds: float) -> None:
        pass

    last = TimeoutError("the third")
    call = Flaky(TimeoutError(), TimeoutError(), last, TimeoutError())
    with pytest.raises(TimeoutError) as raised:
        await retry.retrying(first=1.0, cap=1.0, attempts=3).copy(sleep=sleep)(call)
    assert raised.value is last and call.calls == 3


async def test_a_failure_the_loop_does_not_retry_propagates_at_once() -> None:
    call = Flaky(answered(404), TimeoutError())
    with pytest.raises(HttpResponseError):
        await retry.retrying(first=1.0, cap=1.0, attempts=8)(call)
    assert call.calls == 1
    only_403 = Flaky(answered(503))
    with pytest.raises(HttpResponseError):
        await retry.retrying(first=0.0, cap=0.0, attempts=3, retry_on=lambda e: False)(only_403)
    assert only_403.calls == 1


async def test_a_deadline_clips_every_wait_and_stops_the_loop() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    always = Flaky(*[answered(503, "100")] * 3)
    with pytest.raises(HttpResponseError):
        await retry.retrying(first=1.0, cap=60.0, deadline=0.0).copy(sleep=sleep)(always)
    assert always.calls == 1 and slept == []  # a spent deadline: no wait, no second try
