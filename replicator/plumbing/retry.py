"""The one retry policy of our own loops: which failures are transient, how long to wait, and tenacity.

Every loop that retries a call of ours is built from this module: chunk writes and source reads
(engine.copier), the family-limit wait of a SAS grant and the data plane's re-grant after a 403
(source), the restore-point commit (plumbing.recovery.commit_once), the lease renewer (target.lease)
and the fleet's queue calls (fleet.queue, fleet.worker). The SDK's own storage retry policy
(recovery.storage_retry) is a pipeline policy object, not a loop, and stays the SDK's: the two never
retry the same call (calls retried here pass `retry_total=0`, or, the chunk writes, do not go through
the SDK at all: plumbing.page_writes). docs/architecture.md, "Who retries
what", names the owner of each failure class.

Transient (`is_transient`) means: the request may or may not have taken effect, and the same request
may succeed later. That is

- azure-core's ServiceRequestError and ServiceResponseError (no answer: refused, reset, read timeout),
- TimeoutError (our own deadlines, e.g. --request-timeout) and ConnectionError,
- aiohttp.ClientError raised raw (a streamed ranged read fails before azure-core can wrap it),
- an HTTP answer of 408, 429, 500, 502, 503 or 504 (TRANSIENT_STATUS).

It is the union of the two classifiers this module replaces (the pipeline's added the raw aiohttp
errors). A refused source SAS is not transient: the copier retries it because it re-grants first.

The wait (`backoff`) is exponential with full jitter: a uniform draw from 0 up to `first` doubled per
failure, the bound capped at `cap`, but never shorter than the Retry-After the service asked for
(itself capped at MAX_RETRY_AFTER_SECONDS). Full jitter because the failures come together: many
workers of one run, and many runs of a fleet, are throttled by the same account at the same moment,
and equal waits would send their retries together too. Loops that must also end at a deadline of
their own (a lease expiry, a visibility window) clip this wait to it; the wait never decides that.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import aiohttp
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
)
from tenacity.stop import stop_base

from replicator.core import account_budget
from replicator.core.messages import error_code, service_message

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Throttling (429, 503 ServerBusy), transient server errors (500 OperationTimedOut), gateway errors."""
MAX_RETRY_AFTER_SECONDS = 120.0
"""A Retry-After beyond this is treated as this: a run should not sleep unbounded on a header."""
MAX_DOUBLINGS = 64
"""The exponent stops growing here: a loop that never gives up (the fleet's receive loop) would
otherwise overflow a float after about 1,000 failures in a row; any cap is reached long before."""

OnRetry = Callable[[int, float, BaseException], None]
"""Called before each wait with the failed attempt's number (1 for the first), the wait in seconds,
and the failure: where a loop logs its event (`retry`, `queue_retry`, ...)."""


def is_transient(exc: BaseException) -> bool:
    """A failure after which the request may or may not have taken effect, and a retry may succeed."""
    if isinstance(
        exc, ServiceRequestError | ServiceResponseError | TimeoutError | ConnectionError | aiohttp.ClientError
    ):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in TRANSIENT_STATUS


def is_throttled(exc: BaseException) -> bool:
    """The service said it is overloaded: 503 (ServerBusy, and the account's ingress and egress limits),
    429, or 500 OperationTimedOut, which Azure names beside 503 as the answer of a partition past its
    limits ("Scalability and performance targets for Blob storage"). What the pacer backs off on
    (engine.pacer); a 500 of another code is a fault, not a load signal."""
    if not isinstance(exc, HttpResponseError):
        return False
    if exc.status_code in (429, 503):
        return True
    return exc.status_code == 500 and error_code(exc) == "OperationTimedOut"


def account_limit(exc: BaseException) -> str | None:
    """The storage account's limit a 503 ServerBusy names by its message (requests, ingress, egress:
    core.account_budget.limit_of), None for any other answer (a blob's or partition's 503 included).
    What the account budget cuts on (engine.account_gate) instead of the blob's pacer."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 503:
        return None
    return account_budget.limit_of(service_message(exc))


def retry_after(exc: BaseException | None) -> float:
    """The service's Retry-After in seconds (capped), 0 when it sent none or none readable."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value else 0.0
    except ValueError:
        return 0.0


def backoff(attempt: int, *, first: float, cap: float, exc: BaseException | None = None) -> float:
    """The wait after the `attempt`-th failure in a row (1 for the first): full jitter under
    `first` x 2^(attempt-1) capped at `cap`, but at least the Retry-After `exc` carries."""
    bound = min(cap, first * 2.0 ** min(attempt - 1, MAX_DOUBLINGS))
    return max(random.uniform(0.0, bound), retry_after(exc))


def failure(state: RetryCallState) -> BaseException | None:
    """The exception the attempt described by `state` ended with (None if it returned)."""
    return state.outcome.exception() if state.outcome is not None else None


def retrying(
    *,
    first: float,
    cap: float,
    attempts: int | None = None,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
    on_retry: OnRetry | None = None,
) -> AsyncRetrying:
    """A tenacity loop (`async for attempt in retrying(...)`, or `await retrying(...)(fn)` for an
    `async def` fn: tenacity calls anything else synchronously, so a lambda's coroutine would never
    be awaited) that retries failures `retry_on` accepts after a `backoff` wait, re-raising the last.

    It stops after `attempts` tries, or once `deadline` seconds have passed since the first try
    (a wait is clipped so that it never sleeps past the deadline), whichever comes first; with
    neither it retries for ever.
    """

    def wait(state: RetryCallState) -> float:
        delay = backoff(state.attempt_number, first=first, cap=cap, exc=failure(state))
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - (state.seconds_since_start or 0.0)))
        return delay

    def before_sleep(state: RetryCallState) -> None:
        exc = failure(state)
        if on_retry is not None and exc is not None:
            on_retry(state.attempt_number, state.upcoming_sleep, exc)

    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    if deadline is not None:
        stops.append(stop_after_delay(deadline))
    return AsyncRetrying(
        stop=stop_any(*stops) if stops else stop_never,
        wait=wait,
        retry=retry_if_exception(retry_on),
        before_sleep=before_sleep,
        reraise=True,
    )
