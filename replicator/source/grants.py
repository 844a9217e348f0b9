"""Read SAS grants on snapshots: within the family's SAS slots, renewed before expiry, revoked on every exit.

A disk restore point (source.arm.SnapshotInfo of a VM restore point's disk) is granted the same way:
the same GrantAccessData and the same long-running grant and revoke, on
`.../diskRestorePoints/<drp>/beginGetAccess` and `endGetAccess` ("Disk Restore Point - Grant
Access", "- Revoke Access"); `_access` is the one place that tells the two resource types apart. A
disk restore point is an incremental snapshot underneath and carries its family's `familyId`, so
its SAS counts against the same family budget (an assumption: Azure documents the limit for
snapshots only).

Azure allows SAS URIs on at most five snapshots of one incremental snapshot family at a time.
`read_grants` takes the family's slots in this process (family_sas_slots) before asking ARM, a diff's
two at once (one at a time, five diffs holding one each would wait on each other), so a fleet of
replications in one process never trips the limit by itself; other processes can, so a grant that ARM
refuses for the family limit is retried (plumbing.retry: exponential backoff with full jitter) until
`sas_wait_seconds`, then LimitError. A revoke ends access on the snapshot for every holder (Azure
revokes per snapshot, not per SAS), so another run granted on the same snapshot sees 403 and
re-grants (`Grant.invalidate`).

Secrets: a SAS URL never appears in a log line, an exception message or a repr (`Grant` hides it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.compute.models import GrantAccessData

from replicator.core import messages
from replicator.core.errors import LimitError, ReplicationError, UserError
from replicator.core.weighted import WeightedSemaphore
from replicator.plumbing import retry
from replicator.plumbing.renewed_sas import RenewedSas
from replicator.source.arm import ArmOperationFailed, ArmSource, SnapshotGone, SnapshotInfo
from replicator.source.disk_auth import DiskAuth

log = logging.getLogger(__name__)

FAMILY_SAS_LIMIT = 5
"""Azure: SAS URIs on at most five snapshots of one incremental snapshot family at a time."""

GRANT_TIMEOUT_SECONDS = 300.0
"""Bound on one grant (a long-running ARM operation that usually takes seconds)."""

FAMILY_RETRY_BACKOFF_SECONDS = 1.0
"""Bound of the first wait after a family-limit refusal; doubles per refusal (full jitter:
retry.backoff) up to FAMILY_RETRY_MAX_SECONDS."""
FAMILY_RETRY_MAX_SECONDS = 60.0
"""Longest wait between grant attempts while the family's SAS slots are held elsewhere."""

REVOKE_TIMEOUT_SECONDS = 120.0
"""Bound on one revoke; a revoke that does not finish is logged and the SAS expires on its own."""

_SAS_LIMIT_TEXT = re.compile(
    r"\bSAS\b.*\b(famil|limit|maximum|exceed)|\b(famil|limit|maximum)\w*\b.*\bSAS\b", re.I
)


def is_family_sas_limit(err: BaseException | None) -> bool:
    """ARM refused a grant because the snapshot family already has five active SAS URIs."""
    if not isinstance(err, HttpResponseError) or err.status_code not in (400, 409, 429):
        return False
    return bool(_SAS_LIMIT_TEXT.search(messages.service_answer(err)))


# --- the per-family SAS slots ----------------------------------------------------------------------


# One semaphore per snapshot family and event loop (asyncio futures belong to one loop). Memory: one
# small object per family seen by this process.
_family_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WeightedSemaphore]] = (
    weakref.WeakKeyDictionary()
)


def _family_key(snapshot: SnapshotInfo) -> str:
    return (snapshot.family_id or snapshot.id).casefold()


def family_sas_slots(family_key: str) -> WeightedSemaphore:
    """The FAMILY_SAS_LIMIT SAS slots of one snapshot family in this process (a slot a snapshot).

    A diff takes its two slots (base and current) in one `acquire(2)`: taken one at a time, five diffs
    each holding one slot and waiting for a second would all wait out `sas_wait_seconds`. First come
    first served, so single grants never starve a waiting pair (replicator.core.weighted).
    """
    families = _family_slots.setdefault(asyncio.get_running_loop(), {})
    return families.setdefault(family_key.casefold(), WeightedSemaphore(FAMILY_SAS_LIMIT))


class Grant(RenewedSas):
    """A read SAS on one snapshot, held inside `read_grant`; `url()` always returns a usable one
    (plumbing.renewed_sas: granted again before it expires and after `invalidate()`)."""

    def __init__(self, source: ArmSource, snapshot: SnapshotInfo) -> None:
        config = source.config
        super().__init__(
            f"snapshot {snapshot.name}",
            "Read",
            config.sas_duration_seconds,
            allow_http=config.allow_http,
            fields={"snapshot": snapshot.id},
        )
        self.snapshot = snapshot
        self._source = source
        # True once a grant request may have created a SAS on the service: then we must revoke.
        self.may_be_active = False

    @property
    def disk_auth(self) -> DiskAuth:
        """The source's disk-plane authorization: every client of this SAS is built through it."""
        return self._source.disk_auth

    async def _grant(self) -> str:
        first = not self.may_be_active
        self.may_be_active = True
        try:
            return await _grant_read(self._source, self.snapshot)
        except (LimitError, UserError, SnapshotGone, ArmOperationFailed):
            # A definitive refusal (or a grant ARM reports Failed) creates no SAS; revoking anyway
            # would end another run's access.
            if first:
                self.may_be_active = False
            raise


@contextlib.asynccontextmanager
async def read_grant(source: ArmSource, snapshot: SnapshotInfo) -> AsyncIterator[Grant]:
    """A read SAS on `snapshot` for the duration of the `async with` (see `read_grants`)."""
    async with read_grants(source, snapshot) as (grant,):
        yield grant


@contextlib.asynccontextmanager
async def read_grants(source: ArmSource, *snapshots: SnapshotInfo) -> AsyncIterator[tuple[Grant, ...]]:
    """Read SAS on `snapshots` (a diff: current and base) for the `async with`; revoked on every way out.

    First takes every slot the snapshots need in their families' budgets in this process, all of a
    family's at once (family_sas_slots), waiting at most `sas_wait_seconds` in all (then LimitError);
    then grants Read access only, for `sas_duration_seconds`, and revokes (shielded from
    cancellation, bounded in time) whether the body returns, raises or is cancelled.
    """
    needs = collections.Counter(_family_key(s) for s in snapshots)
    async with contextlib.AsyncExitStack() as stack:
        try:
            async with asyncio.timeout(source.config.sas_wait_seconds):
                for key in sorted(needs):  # one order everywhere: no deadlock across families
                    slots = family_sas_slots(key)
                    await slots.acquire(needs[key])
                    stack.callback(slots.release, needs[key])
        except TimeoutError:
            raise LimitError(
                f"Cannot grant access to snapshot {snapshots[0].id}: replications in this process hold "
                f"SAS URIs on {FAMILY_SAS_LIMIT} snapshots of its family (Azure allows five per family "
                f"at a time) and none was released within {source.config.sas_wait_seconds:.0f} s; "
                "run again later."
            ) from None
        granted = tuple([await stack.enter_async_context(_granted(source, s)) for s in snapshots])
        yield granted


@contextlib.asynccontextmanager
async def _granted(source: ArmSource, snapshot: SnapshotInfo) -> AsyncIterator[Grant]:
    grant = Grant(source, snapshot)
    try:
        await grant.url()
        yield grant
    finally:
        if grant.may_be_active:
            await shielded(_revoke(source, snapshot))


def _access(source: ArmSource, snapshot: SnapshotInfo) -> tuple[Any, tuple[str, ...]]:
    """The ARM operations that grant and revoke access to `snapshot` (a snapshot or a disk restore
    point) and the names that address it (resource group, then its parents and its own name)."""
    rid = snapshot.resource
    compute = source.compute(rid.subscription_id)
    operations = compute.disk_restore_point if rid.kind == "disk_restore_point" else compute.snapshots
    return operations, (rid.resource_group, *rid.parents, rid.name)


async def _grant_read(source: ArmSource, snapshot: SnapshotInfo) -> str:
    """One Read SAS from ARM, retrying while the family's five SAS slots are held elsewhere."""
    operations, names = _access(source, snapshot)
    request = GrantAccessData(access="Read", duration_in_seconds=source.config.sas_duration_seconds)
    budget = float(source.config.sas_wait_seconds)

    def report(attempt: int, delay: float, exc: BaseException) -> None:
        log.info(
            "The SAS budget of snapshot family %s is full (%d per family); retrying a grant on %s in %.1f s.",
            snapshot.family_id,
            FAMILY_SAS_LIMIT,
            snapshot.name,
            delay,
        )

    async def grant_once() -> str:
        async with asyncio.timeout(GRANT_TIMEOUT_SECONDS):
            poller = await operations.begin_grant_access(*names, request)
            access = await poller.result()
        if not access.access_sas:
            raise ReplicationError(
                f"ARM granted access to {snapshot.noun} {snapshot.id} but returned no SAS URL."
            )
        return access.access_sas

    retrying = retry.retrying(
        first=FAMILY_RETRY_BACKOFF_SECONDS,
        cap=FAMILY_RETRY_MAX_SECONDS,
        deadline=budget,
        retry_on=is_family_sas_limit,
        on_retry=report,
    )
    try:
        with source.arm_errors(f"grant read access to {snapshot.noun} {snapshot.id}"):
            return await retrying(grant_once)
    except UserError as err:
        if isinstance(err.__cause__, ResourceNotFoundError):  # resolved earlier in this run
            raise SnapshotGone(
                f"{snapshot.noun.capitalize()} {snapshot.id} was deleted during the run (its read access "
                "could not be granted); nothing was committed for it."
            ) from None
        raise
    except ReplicationError as err:
        if is_family_sas_limit(err.__cause__):
            raise LimitError(
                f"Cannot grant access to {snapshot.noun} {snapshot.id}: its snapshot family already has "
                f"SAS URIs on {FAMILY_SAS_LIMIT} snapshots (Azure allows five per family at a time) "
                f"and none was released within {budget:.0f} s; run again later."
            ) from err
        raise
    except TimeoutError:
        raise ReplicationError(
            f"ARM did not finish granting access to {snapshot.noun} {snapshot.id} "
            f"within {GRANT_TIMEOUT_SECONDS:.0f} s."
        ) from None


async def _revoke(source: ArmSource, snapshot: SnapshotInfo) -> None:
    """End access to `snapshot` (bounded); failures are logged, since the SAS expires on its own."""
    operations, names = _access(source, snapshot)
    try:
        async with asyncio.timeout(REVOKE_TIMEOUT_SECONDS):
            poller = await operations.begin_revoke_access(*names)
            await poller.result()
    except ResourceNotFoundError:
        pass  # deleted meanwhile: nothing left to revoke
    except (AzureError, TimeoutError) as err:
        log.warning(
            "Could not revoke access to snapshot %s (%s); its SAS expires within %d s anyway.",
            snapshot.id,
            messages.describe(err),
            source.config.sas_duration_seconds,
        )


async def shielded(cleanup: Awaitable[None]) -> None:
    """Run `cleanup` to the end even if the caller is cancelled meanwhile, then re-raise the cancel."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})  # bounded: cleanups carry their own timeouts
        raise
