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

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import ExponentialRetry

from replicator.plumbing import retry

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 5
"""Snapshot Blob attempts; with the waits below (and each attempt's own time) they ride out about
half a minute of faults."""
COMMIT_BACKOFF_SECONDS = 1.0
"""Bound of the first wait before looking for a lost commit and retrying; the bound doubles per
attempt (1, 2, 4, 8 s, full jitter: retry.backoff)."""
LEASE_POLL_SECONDS = 2.0
"""How often a waiting run tries to take the lease again."""
CONTROL_RETRIES = 3
"""SDK retries of target control calls (properties, metadata, lease, resize, snapshot, list)."""
LISTING_RETRIES = 5
"""SDK retries of the source's data-plane calls (page-range listing, size): half a minute of ServerBusy."""


def storage_retry(retries: int) -> ExponentialRetry:
    """The one SDK storage retry policy: waits of about 3, 5, 9, 17, ... s (1 s start, doubling, +-1 s
    jitter) instead of the SDK's 15 s start. Chunk writes opt out per call (`retry_total=0`): the
    pipeline's retry loop (plumbing.retry) owns them, so retries never stack."""
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=retries, random_jitter_range=1)


def new_commit_id() -> str:
    return uuid.uuid4().hex


async def commit_once(create: Callable[[], Awaitable[str]], find: Callable[[], Awaitable[str | None]]) -> str:
    """`create()` (one Snapshot Blob carrying a unique commit ID, no SDK retry) exactly once in effect.

    After a transient failure (retry.is_transient), `find()` returns the restore point carrying that
    commit ID if the lost attempt did take it; otherwise create is tried again. Non-transient errors
    propagate, and so does a failure of `find()` itself (it is not the request whose answer was lost).
    """

    def report(attempt: int, delay: float, exc: BaseException) -> None:
        log.info("taking the restore point failed (%s); checking whether it was taken", type(exc).__name__)

    policy = retry.retrying(
        first=COMMIT_BACKOFF_SECONDS,
        cap=COMMIT_BACKOFF_SECONDS * 2 ** (COMMIT_ATTEMPTS - 2),
        attempts=COMMIT_ATTEMPTS,
        on_retry=report,
    )
    async for attempt in policy:
        if attempt.retry_state.attempt_number > 1:
            found = await find()
            if found is not None:
                log.info("the restore point %s was taken by the attempt whose answer was lost", found)
                return found
        with attempt:
            return await create()
    raise AssertionError("unreachable: tenacity returns or reraises")


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
