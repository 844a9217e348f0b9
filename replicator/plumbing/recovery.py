"""Recovering from faults that leave the service in a state the client did not see.

Two cases the fault campaign (tests/reliability, docs/reliability.md) found:

- **A restore point whose answer was lost.** Snapshot Blob is not idempotent: when its response is
  lost (connection dropped, 500 OperationTimedOut after the snapshot was taken) a blind retry takes a
  second restore point of the same source snapshot. `commit_once` tags the snapshot with a fresh
  `commit_id`, sends it without the SDK's retry, and after a failure looks for that tag among the
  restore points before trying again.
- **A lease left by a killed run.** A SIGKILLed run cannot release its lease; it stays held for at
  most `LEASE_SECONDS` (it was renewed at most `RENEW_EVERY_SECONDS` before the kill). A live
  run renews its lease and never lets it go, so "wait until the lease can be taken, up to a bound
  longer than one lease" tells the two apart without any guessing: a dead run's lease is taken
  within the bound, a live run's never is and the waiter exits 3. One writer stays guaranteed by
  the lease itself (every write carries the lease ID), not by the wait.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.storage.blob.aio import ExponentialRetry

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5
"""Snapshot Blob attempts; with the waits below they ride out about half a minute of faults."""
COMMIT_BACKOFF_SECONDS = 1.0
"""First wait before looking for a lost commit and retrying; doubles per attempt."""
LEASE_POLL_SECONDS = 2.0
"""How often a waiting run tries to take the lease again."""
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Throttling (429, 503 ServerBusy), transient server errors (500 OperationTimedOut), gateway errors."""
CONTROL_RETRIES = 3
"""SDK retries of target control calls (properties, metadata, lease, resize, snapshot, list)."""
LISTING_RETRIES = 5
"""SDK retries of the source's data-plane calls (page-range listing, size): half a minute of ServerBusy."""


def storage_retry(retries: int) -> ExponentialRetry:
    """The one SDK storage retry policy: waits of about 3, 5, 9, 17, ... s (1 s start, doubling, +-1 s
    jitter) instead of the SDK's 15 s start. Chunk writes opt out per call (`retry_total=0`): the
    pipeline's tenacity loop owns them, so retries never stack."""
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=retries, random_jitter_range=1)


def is_transient(exc: BaseException) -> bool:
    """A failure after which the request may or may not have taken effect, and a retry may succeed.

    The one classification of transient failures (the pipeline adds only what is its own: a refused
    source SAS, which it re-grants, and raw aiohttp errors of its streamed reads)."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError | TimeoutError | ConnectionError):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in TRANSIENT_STATUS


def new_commit_id() -> str:
    return uuid.uuid4().hex


async def commit_once(create: Callable[[], Awaitable[str]], find: Callable[[], Awaitable[str | None]]) -> str:
    """`create()` (one Snapshot Blob carrying a unique commit ID, no SDK retry) exactly once in effect.

    After a transient failure, `find()` returns the restore point carrying that commit ID if the
    lost attempt did take it; otherwise create is tried again. Non-transient errors propagate.
    """
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return await create()
        except Exception as exc:
            if not is_transient(exc) or attempt == COMMIT_ATTEMPTS - 1:
                raise
            log.info(
                "taking the restore point failed (%s); checking whether it was taken", type(exc).__name__
            )
        await asyncio.sleep(COMMIT_BACKOFF_SECONDS * 2**attempt)
        found = await find()
        if found is not None:
            log.info("the restore point %s was taken by the attempt whose answer was lost", found)
            return found
    raise AssertionError("unreachable: the last attempt returns or raises")


async def acquire_waiting(
    acquire: Callable[[], Awaitable[object]], wait_seconds: float, on_wait: Callable[[], None]
) -> bool:
    """Try `acquire()` until it stops answering 409 (lease held), at most `wait_seconds`.

    Returns False if the lease is still held at the end (the caller raises LockedError); `on_wait`
    is called once, before the first wait, so the operator learns why the run pauses.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    waited = False
    while True:
        try:
            await acquire()
            return True
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise
        left = deadline - loop.time()
        if left <= 0:
            return False
        if not waited:
            on_wait()
            waited = True
        await asyncio.sleep(min(LEASE_POLL_SECONDS, left))
