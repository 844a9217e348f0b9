"""The target's lease: one writer at a time, renewed in the background, released on every exit.

Every write carries the lease ID, so the lease itself guarantees one writer. A live run renews it
every quarter of its length (`keep_renewed`); transient renewal failures are retried (plumbing.retry)
until the lease would expire, and a refused or expired renewal cancels the run. Acquiring, with the
wait for a killed run's lease, is PageBlobTarget.leased (plumbing.recovery.acquire_waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError

from replicator.core import messages
from replicator.core.errors import ReplicationError
from replicator.observe.jsonlog import event
from replicator.plumbing import retry

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
"""Default lease length (--lease-duration): rides out a renewal hiccup, yet a killed run frees the
target within a minute."""
RENEW_EVERY_SECONDS = 15
"""Renew at a quarter of the lease, so three consecutive renewal failures still leave the lease held."""
RENEW_RETRY_SECONDS = 2.0
"""Bound of the wait between renewal attempts after a transient failure (full jitter, not doubled: the
lease must be renewed before it expires; retried until then)."""
RELEASE_TIMEOUT_SECONDS = 30.0
"""Bound on releasing the lease at the end of a run; an unreleased lease expires on its own."""


async def keep_renewed(renew: Callable[[], Awaitable[object]], lease_seconds: float) -> BaseException:
    """Renew a lease every quarter of `lease_seconds` until cancelled; returns why it was lost.

    Lost means the service refused a renewal for good (409 LeaseIdMismatch or LeaseLost: broken or
    taken by someone else; any other non-transient answer, e.g. 403), or no renewal succeeded before
    the lease would expire. Every other failure (timeouts, resets, 5xx, anything unexpected) is
    retried until then (retry.backoff, clipped to the expiry): a renewer that dies silently would
    leave the run writing without a lease.
    """
    loop = asyncio.get_running_loop()
    interval = lease_seconds * RENEW_EVERY_SECONDS / LEASE_SECONDS
    expires = loop.time() + lease_seconds  # measured from before the request: conservative
    while True:
        await asyncio.sleep(interval)
        failures = 0
        while True:
            sent = loop.time()
            left = expires - sent
            if left <= 0:
                return TimeoutError(f"no renewal succeeded within the {lease_seconds:g} s lease")
            try:
                async with asyncio.timeout(left):
                    await renew()
                expires = sent + lease_seconds
                break
            except Exception as exc:
                if isinstance(exc, HttpResponseError) and not retry.is_transient(exc):
                    return exc
                log.info("renewing the lease failed (%s); retrying", messages.describe(exc))
                failures += 1
                wait = retry.backoff(failures, first=RENEW_RETRY_SECONDS, cap=RENEW_RETRY_SECONDS, exc=exc)
            await asyncio.sleep(min(wait, interval, max(0.0, expires - loop.time())))


class Lease(Protocol):
    """What `renewed` drives: a blob's lease (BlobLeaseClient) or a striped target's set of leases
    of one ID (target.stripe_set.LeaseSet), renewed and released as one."""

    async def renew(self) -> Any: ...

    async def release(self) -> Any: ...


@contextlib.asynccontextmanager
async def renewed(lease: Lease, lease_seconds: float, shown: str) -> AsyncIterator[None]:
    """Keep the acquired `lease` renewed for the block (keep_renewed), then release it (bounded).

    A lost lease cancels the block and surfaces as ReplicationError: writing on without the lease could
    interleave with another writer. `shown` is the target as it may be printed (no SAS).
    """
    event("lease_acquired", logging.DEBUG, message=f"acquired the lease on {shown}", target=shown)
    owner = asyncio.current_task()
    lost: list[BaseException] = []

    async def renew() -> None:
        await lease.renew()
        event("lease_renewed", logging.DEBUG, message=f"renewed the lease on {shown}", target=shown)

    async def watch() -> None:
        lost.append(await keep_renewed(renew, lease_seconds))
        log.warning("lost the lease on %s: %s", shown, messages.describe(lost[0]))
        if owner is not None:
            owner.cancel()

    renewer = asyncio.create_task(watch(), name="lease-renewer")
    try:
        yield
    except asyncio.CancelledError:
        if lost and owner is not None and owner.uncancel() == 0:
            raise ReplicationError(
                f"lost the lease on {shown} ({messages.describe(lost[0])}); stopped writing. "
                "A rerun resumes from the checkpoint."
            ) from None
        raise
    finally:
        # Neither the renewer's end nor the release may replace the block's own outcome.
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({renewer})
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                await asyncio.shield(lease.release())
            event("lease_released", logging.DEBUG, message=f"released the lease on {shown}", target=shown)
        except Exception as exc:  # it expires on its own within a lease
            log.warning("could not release the lease on %s: %s", shown, messages.describe(exc))
