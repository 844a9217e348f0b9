"""The source side: managed-disk snapshots through ARM, and their data plane through a SAS.

ARM (azure-mgmt-compute aio) resolves a disk or snapshot ID, waits for a snapshot's background
copy, and grants and revokes read SAS URLs. The data plane (azure-storage-blob aio on the SAS URL)
lists page ranges, either the valid ranges of one snapshot (full copy) or the diff between two
snapshots of one disk (`x-ms-previous-snapshot-url`).

Why the listing calls the generated operation itself: the SDK's
`BlobClient.get_page_range_diff_for_managed_disk` makes one request and returns only the range
lists, dropping `NextMarker`. The service answers at most 10,000 ranges per call (fewer with
`maxresults`), so calling it once silently loses every range after the first page. `list_changes`
calls `page_blob.get_page_ranges_diff` / `get_page_ranges` with `marker` and follows every
`NextMarker` of every offset window, holding one page of results at a time.

Which layer retries what (one owner per failure class):

- azure-core's ARM pipeline retries connection errors, 408, 429, 500, 502-504 (honouring
  Retry-After, 10 tries). A connection that never succeeds becomes a UserError naming the endpoint.
- The storage pipeline of the listing clients (`recovery.storage_retry`) retries connection errors, 408 and
  5xx (ServerBusy, OperationTimedOut) with exponential backoff: 5 retries, about half a minute in all.
- This module retries what only it can fix: a grant refused because the snapshot family already has
  five active SAS URIs (plumbing.retry: exponential backoff with full jitter, until `sas_wait_seconds`, then
  LimitError), and a data-plane 403 AuthenticationFailed (the SAS expired or another run revoked
  it: re-grant and repeat the request, twice at most).
- Anything else surfaces as a ReplicatorError; the pipeline decides whether the run resumes.

Snapshots of one disk may live in any resource group of its subscription (Azure lets the creator
choose). `resolve` lists the disk's own resource group by default, which is where Azure's own docs
list them and which needs read access to that group only; `search="subscription"` lists the whole
subscription instead, finding snapshots kept in a separate backup group at the cost of
subscription-wide read permission and a longer listing.

SAS slots: Azure allows SAS URIs on at most five snapshots of one incremental snapshot family at a
time. `ArmSource.grants` takes the family's slots in this process (family_sas_slots) before asking
ARM, a diff's two at once (one at a time, five diffs holding one each would wait on each other), so
a fleet of replications in one process never trips the limit by itself; other processes can, which is
what the retry above is for. A revoke ends access on the snapshot for every holder (Azure revokes
per snapshot, not per SAS), so another run granted on the same snapshot sees 403 and re-grants.

Secrets: a SAS URL never appears in a log line, an exception message or a repr (`Grant` hides it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import heapq
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.compute.models import Disk, GrantAccessData, Snapshot
from azure.storage.blob.aio import BlobClient

from replicator.core import arm_ids, messages
from replicator.core.errors import LimitError, ReplicationError, UserError
from replicator.core.output import plural
from replicator.core.ranges import (
    LIST_PREFETCH,
    Change,
    Range,
    from_azure,
    to_http_range,
    windows,
)
from replicator.core.weighted import WeightedSemaphore
from replicator.observe.jsonlog import event
from replicator.plumbing import credentials, recovery, retry

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

ARM_POLL_SECONDS = 1.0
"""LRO polling interval when ARM sends no Retry-After (the SDK default of 30 s would stall every grant)."""

REGRANT_MARGIN_SECONDS = 300.0
"""Re-grant a SAS this long before it expires (at most a quarter of its lifetime), so requests in
flight never carry a SAS that expires under them."""

DATA_PLANE_AUTH_RETRIES = 2
"""Re-grants after a data-plane 403 before giving up (an expired or revoked SAS needs one)."""

WAIT_POLL_SECONDS = 5.0
"""How often wait_complete re-reads completionPercent."""

WAIT_TIMEOUT_SECONDS = 3600.0
"""How long wait_complete waits for a background copy before LimitError (a later run will find it done)."""

RESIZE_REFUSAL_CODE = "SnapshotDiffAcrossResizeNotSupported"
"""The emulator's code for a diff across a 4 TiB resize (Azure documents the restriction, not its code)."""

_RESIZE_TEXT = re.compile(r"resiz|4\s*(tb|tib)\b", re.IGNORECASE)
_SAS_LIMIT_TEXT = re.compile(
    r"\bSAS\b.*\b(famil|limit|maximum|exceed)|\b(famil|limit|maximum)\w*\b.*\bSAS\b", re.I
)

OWNER_TAG = "replicator-owner"
OWNER_VALUE = "replicator"
"""The ARM tag `--snapshot-now` puts on each snapshot it takes (replicator.source.snapshots): `--source-keep`
deletes only snapshots carrying it, never one an operator or another tool took. ARM tag names are
case-insensitive, so the name is matched without case; the value must be exactly this."""
TARGET_TAG = "replicator-target"
"""Beside OWNER_TAG: the target the snapshot was taken for (`target_tag`). One disk can be replicated
to several targets, each with `--snapshot-now --source-keep`; a run trims only the snapshots taken
for its own target, so it never deletes the diff base of another target's next run."""
TAG_VALUE_LIMIT = 256
"""ARM: a tag value holds at most 256 characters."""


def target_tag(display_url: str) -> str:
    """The TARGET_TAG value of a target: its URL without the query string (never a SAS); a URL longer
    than a tag value holds is cut and ends with a digest of the whole, so two long URLs never share it."""
    if len(display_url) <= TAG_VALUE_LIMIT:
        return display_url
    digest = hashlib.sha256(display_url.encode()).hexdigest()[:32]
    return f"{display_url[: TAG_VALUE_LIMIT - len(digest) - 1]}#{digest}"


T = TypeVar("T")


class SourceConfig(Protocol):
    """The knobs this module reads; `replicator.settings.config.Config` has them all."""

    arm_endpoint: str
    allow_http: bool
    access_token: str | None
    sas_duration_seconds: int
    sas_wait_seconds: float


class SnapshotGone(ReplicationError):
    """A snapshot resolved at the start of the run was deleted since: a failure of this run (exit 1),
    not bad input (resolving a snapshot that does not exist at all stays a UserError)."""


class DiffNotPossible(ReplicationError):
    """Azure cannot diff these two snapshots (a resize across the 4 TiB boundary): copy in full."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What the replicator needs of a snapshot resource; `id` keeps ARM's spelling."""

    id: str
    name: str
    unique_id: str
    family_id: str | None
    time_created: datetime
    size_bytes: int
    logical_sector_size: int
    incremental: bool
    completion_percent: float | None
    source_resource_id: str | None
    source_unique_id: str | None
    copy_error: str | None = None
    disk_state: str | None = None  # "ActiveSAS" while a SAS on it is granted (Azure's diskState)
    owned: bool = False  # carries the OWNER_TAG: this tool took it (--snapshot-now)
    owner_target: str | None = None  # its TARGET_TAG: the target it was taken for

    @property
    def complete(self) -> bool:
        """Usable now: no background copy reported (None) or it reached 100 %."""
        return self.completion_percent is None or self.completion_percent >= 100

    @property
    def resource(self) -> arm_ids.ResourceId:
        return arm_ids.parse(self.id)


@dataclass(frozen=True)
class DiskInfo:
    """What the replicator needs of a managed disk; `unique_id` tells a re-created disk from the old one."""

    id: str
    name: str
    unique_id: str
    size_bytes: int
    sku: str | None


def snapshot_info(s: Snapshot) -> SnapshotInfo:
    creation = s.creation_data
    copy_error = s.copy_completion_error
    return SnapshotInfo(
        id=s.id or "",
        name=s.name or "",
        unique_id=s.unique_id or "",
        family_id=s.incremental_snapshot_family_id,
        time_created=s.time_created or datetime.min.replace(tzinfo=UTC),
        size_bytes=s.disk_size_bytes or (s.disk_size_gb or 0) * 1024**3,
        logical_sector_size=(creation.logical_sector_size if creation else None) or 512,
        incremental=bool(s.incremental),
        completion_percent=s.completion_percent,
        source_resource_id=creation.source_resource_id if creation else None,
        source_unique_id=creation.source_unique_id if creation else None,
        copy_error=f"{copy_error.error_code}: {copy_error.error_message}" if copy_error else None,
        disk_state=s.disk_state,
        owned=any(k.casefold() == OWNER_TAG and v == OWNER_VALUE for k, v in (s.tags or {}).items()),
        owner_target=next((v for k, v in (s.tags or {}).items() if k.casefold() == TARGET_TAG), None),
    )


def _disk_info(d: Disk) -> DiskInfo:
    return DiskInfo(
        id=d.id or "",
        name=d.name or "",
        unique_id=d.unique_id or "",
        size_bytes=d.disk_size_bytes or (d.disk_size_gb or 0) * 1024**3,
        sku=d.sku.name if d.sku else None,
    )


def _same_guid(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.casefold() == b.casefold())


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


class Grant:
    """A read SAS on one snapshot, held inside `ArmSource.grant`; `url()` always returns a usable one."""

    def __init__(self, source: ArmSource, snapshot: SnapshotInfo) -> None:
        self.snapshot = snapshot
        self._source = source
        self._url: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        # True once a grant request may have created a SAS on the service: then we must revoke.
        self.may_be_active = False

    def __repr__(self) -> str:  # never show the SAS
        return f"Grant({self.snapshot.id!r}, active={self._url is not None})"

    async def url(self) -> str:
        """The SAS URL; re-granted when it is close to expiry or after `invalidate()`."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if self._url is None or loop.time() >= self._renew_at:
                await self._refresh()
            assert self._url is not None
            return self._url

    def invalidate(self, stale_url: str | None = None) -> None:
        """Forget the SAS (a data-plane call with it answered 403); the next `url()` re-grants.

        With `stale_url`, only if that is still the current SAS: many workers failing with the
        same expired SAS cause one re-grant, not one each.
        """
        if stale_url is None or stale_url == self._url:
            if self._url is not None:
                event(
                    "sas_invalidated",
                    logging.DEBUG,
                    message=f"the SAS of {self.snapshot.name} was refused; the next request re-grants it",
                    snapshot=self.snapshot.id,
                )
            self._url = None

    async def _refresh(self) -> None:
        self._url = None
        duration = self._source.config.sas_duration_seconds
        started = asyncio.get_running_loop().time()
        first = not self.may_be_active
        self.may_be_active = True
        try:
            url = await self._source._grant_read(self.snapshot)
        except (LimitError, UserError, SnapshotGone):
            # A definitive refusal creates no SAS; revoking anyway would end another run's access.
            if first:
                self.may_be_active = False
            raise
        credentials.check_url(url, "snapshot SAS URL", allow_http=self._source.config.allow_http)
        self._url = url
        self._renew_at = started + duration - min(REGRANT_MARGIN_SECONDS, duration / 4)
        event(
            "sas_granted",
            logging.DEBUG,
            message=f"{'re-granted' if not first else 'granted'} a read SAS on {self.snapshot.name} "
            f"for {duration} s",
            snapshot=self.snapshot.id,
            regrant=not first,
            duration_seconds=duration,
        )


class ArmSource:
    """ARM (azure-mgmt-compute aio) + snapshot data plane (azure-storage-blob aio on SAS URLs)."""

    def __init__(self, config: SourceConfig, credential: Any) -> None:
        self.config = config
        self.endpoint = credentials.check_arm_endpoint(config.arm_endpoint, allow_http=config.allow_http)
        self._credential = credential
        self._clients: dict[str, ComputeManagementClient] = {}

    @classmethod
    async def open(cls, config: SourceConfig) -> ArmSource:
        """Validate the endpoint and build the credential; ARM clients are made per subscription on use."""
        credential = credentials.async_credential(config)
        try:
            return cls(config, credential)
        except BaseException:
            await credential.close()
            raise

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
        await self._credential.close()

    async def __aenter__(self) -> ArmSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def compute(self, subscription_id: str) -> ComputeManagementClient:
        """The ARM compute client of a subscription (one per subscription, reused, closed with us)."""
        key = subscription_id.casefold()
        if key not in self._clients:
            self._clients[key] = ComputeManagementClient(
                self._credential,
                subscription_id,
                base_url=self.endpoint,
                credential_scopes=[credentials.arm_scope(self.endpoint)],
                polling_interval=ARM_POLL_SECONDS,
                **credentials.transport_kwargs(),
            )
        return self._clients[key]

    @contextlib.contextmanager
    def arm_errors(self, action: str) -> Iterator[None]:
        """Turn SDK exceptions into ReplicatorErrors whose one sentence says what we were doing."""
        try:
            yield
        except ResourceNotFoundError as err:
            raise UserError(f"Cannot {action}: it does not exist ({messages.service_answer(err)}).") from err
        except ClientAuthenticationError as err:
            if err.response is None:  # the credential itself failed: no token to send (its text is 2.5 KB)
                raise UserError(f"Cannot {action}: {messages.missing_credential(self.endpoint)}") from err
            raise UserError(
                f"Cannot {action}: ARM refused our identity ({messages.service_answer(err)}); "
                "check its role assignments."
            ) from err
        except HttpResponseError as err:
            if err.status_code == 403:
                raise UserError(
                    f"Cannot {action}: ARM refused permission ({messages.service_answer(err)})."
                ) from err
            raise ReplicationError(
                f"Cannot {action}: ARM answered HTTP {err.status_code} {messages.service_answer(err)}."
            ) from err
        except (ServiceRequestError, ServiceResponseError) as err:
            if messages.is_certificate_failure(err):
                raise UserError(
                    f"Cannot {action}: {messages.unreachable('ARM endpoint', self.endpoint, err)}"
                ) from err
            raise ReplicationError(  # a typo or an outage: exit 1, so a schedule retries an outage
                f"Cannot {action}: the ARM endpoint {self.endpoint} could not be reached "
                f"({messages.describe(err)}); check REPLICATOR_ARM_ENDPOINT and the network."
            ) from err

    # --- resolving -------------------------------------------------------------------------------

    async def resolve(
        self, resource_id: str, *, search: Literal["resource-group", "subscription"] = "resource-group"
    ) -> tuple[DiskInfo | None, list[SnapshotInfo]]:
        """A disk ID → the disk and its incremental snapshots, oldest first; a snapshot ID → its disk
        (None when deleted or re-created since) and that snapshot.

        A disk's snapshots are those whose `creationData.sourceResourceId` is the disk's ID (case
        ignored) and whose `sourceUniqueId` is the disk's `uniqueId`: a disk deleted and re-created
        under the same name has a new uniqueId, and the old disk's snapshots are not its history.
        `search` chooses where to look for them (see the module docstring).
        """
        rid = arm_ids.parse(resource_id)
        if rid.kind == "disk":
            disk = await self._get_disk(rid)
            return disk, await self._snapshots_of(rid, disk, search)
        snapshot = await self._get_snapshot(rid)
        if not snapshot.incremental:
            raise UserError(
                f"Snapshot {snapshot.id} is a full snapshot; only incremental snapshots can be replicated "
                "as differences (take one with `az snapshot create --incremental true`)."
            )
        return await self._disk_of(snapshot), [snapshot]

    async def full_snapshots(
        self, disk_id: str, *, search: Literal["resource-group", "subscription"] = "resource-group"
    ) -> list[SnapshotInfo]:
        """The disk's full (non-incremental) snapshots, oldest first: what a run that finds no
        incremental snapshot reports having found instead (they cannot be diffed)."""
        rid = arm_ids.parse(disk_id)
        return await self._snapshots_of(rid, await self._get_disk(rid), search, incremental=False)

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo | None:
        """The snapshot as ARM sees it now; None when it has been deleted."""
        rid = arm_ids.parse(snapshot_id)
        try:
            return await self._get_snapshot(rid)
        except UserError as err:
            if isinstance(err.__cause__, ResourceNotFoundError):
                return None
            raise

    async def _get_snapshot(self, rid: arm_ids.ResourceId) -> SnapshotInfo:
        with self.arm_errors(f"read snapshot {rid}"):
            return snapshot_info(
                await self.compute(rid.subscription_id).snapshots.get(rid.resource_group, rid.name)
            )

    async def _get_disk(self, rid: arm_ids.ResourceId) -> DiskInfo:
        with self.arm_errors(f"read disk {rid}"):
            return _disk_info(await self.compute(rid.subscription_id).disks.get(rid.resource_group, rid.name))

    async def _disk_of(self, snapshot: SnapshotInfo) -> DiskInfo | None:
        try:
            rid = arm_ids.parse(snapshot.source_resource_id or "")
        except UserError:
            return None  # made from something other than a disk (a copied snapshot)
        if rid.kind != "disk":
            return None
        with self.arm_errors(f"read disk {rid}"):
            try:
                disk = await self.compute(rid.subscription_id).disks.get(rid.resource_group, rid.name)
            except ResourceNotFoundError:
                return None
        info = _disk_info(disk)
        return info if _same_guid(info.unique_id, snapshot.source_unique_id) else None

    async def _snapshots_of(
        self,
        rid: arm_ids.ResourceId,
        disk: DiskInfo,
        search: Literal["resource-group", "subscription"],
        *,
        incremental: bool = True,
    ) -> list[SnapshotInfo]:
        """The disk's incremental (or full) snapshots where `search` says, oldest first; the SDK's
        pager follows every nextLink."""
        operations = self.compute(rid.subscription_id).snapshots
        where = f"resource group {rid.resource_group}" if search == "resource-group" else "the subscription"
        pager = (
            operations.list_by_resource_group(rid.resource_group)
            if search == "resource-group"
            else operations.list()
        )
        found: list[SnapshotInfo] = []
        with self.arm_errors(f"list the snapshots of {where}"):
            async for snapshot in pager:
                info = snapshot_info(snapshot)
                if (
                    info.incremental == incremental
                    and arm_ids.same_resource(info.source_resource_id, disk.id)
                    and _same_guid(info.source_unique_id, disk.unique_id)
                ):
                    found.append(info)
        return sorted(found, key=lambda s: (s.time_created, s.name))

    async def wait_complete(
        self,
        snapshot: SnapshotInfo,
        on_progress: Callable[[SnapshotInfo], None] | None = None,
        *,
        poll_seconds: float = WAIT_POLL_SECONDS,
        timeout_seconds: float = WAIT_TIMEOUT_SECONDS,
    ) -> SnapshotInfo:
        """The snapshot once its background copy (Premium SSD v2, Ultra) reports completionPercent 100.

        `on_progress` gets every reading, the last one complete. LimitError after `timeout_seconds`
        (the copy goes on; a later run finds it done); ReplicationError if the copy failed or the
        snapshot disappeared.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        current = snapshot
        while True:
            if current.copy_error:
                raise ReplicationError(
                    f"The background copy of snapshot {current.id} failed: {current.copy_error}."
                )
            if on_progress is not None:
                on_progress(current)
            if current.complete:
                return current
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LimitError(
                    f"Snapshot {current.id} is still being copied in the background "
                    f"({current.completion_percent:.0f}% after {timeout_seconds:.0f} s); run again later."
                )
            await asyncio.sleep(min(poll_seconds, remaining))
            refreshed = await self.get_snapshot(current.id)
            if refreshed is None:
                raise ReplicationError(
                    f"Snapshot {current.id} was deleted while waiting for its background copy."
                )
            current = refreshed

    # --- SAS grants --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def grant(self, snapshot: SnapshotInfo) -> AsyncIterator[Grant]:
        """A read SAS on `snapshot` for the duration of the `async with` (see `grants`)."""
        async with self.grants(snapshot) as (grant,):
            yield grant

    @contextlib.asynccontextmanager
    async def grants(self, *snapshots: SnapshotInfo) -> AsyncIterator[tuple[Grant, ...]]:
        """Read SAS on `snapshots` (a diff: current and base) for the `async with`; revoked on every way out.

        First takes every slot the snapshots need in their families' budgets in this process, all of a
        family's at once (family_sas_slots), waiting at most `sas_wait_seconds` in all (then LimitError);
        then grants Read access only, for `sas_duration_seconds`, and revokes (shielded from
        cancellation, bounded in time) whether the body returns, raises or is cancelled.
        """
        needs = collections.Counter(_family_key(s) for s in snapshots)
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self.config.sas_wait_seconds):
                    for key in sorted(needs):  # one order everywhere: no deadlock across families
                        slots = family_sas_slots(key)
                        await slots.acquire(needs[key])
                        stack.callback(slots.release, needs[key])
            except TimeoutError:
                raise LimitError(
                    f"Cannot grant access to snapshot {snapshots[0].id}: replications in this process hold "
                    f"SAS URIs on {FAMILY_SAS_LIMIT} snapshots of its family (Azure allows five per family "
                    f"at a time) and none was released within {self.config.sas_wait_seconds:.0f} s; "
                    "run again later."
                ) from None
            granted = tuple([await stack.enter_async_context(self._granted(s)) for s in snapshots])
            yield granted

    @contextlib.asynccontextmanager
    async def _granted(self, snapshot: SnapshotInfo) -> AsyncIterator[Grant]:
        grant = Grant(self, snapshot)
        try:
            await grant.url()
            yield grant
        finally:
            if grant.may_be_active:
                await _shielded(self._revoke(snapshot))

    async def _grant_read(self, snapshot: SnapshotInfo) -> str:
        """One Read SAS from ARM, retrying while the family's five SAS slots are held elsewhere."""
        rid = snapshot.resource
        operations = self.compute(rid.subscription_id).snapshots
        request = GrantAccessData(access="Read", duration_in_seconds=self.config.sas_duration_seconds)
        budget = float(self.config.sas_wait_seconds)

        def report(attempt: int, delay: float, exc: BaseException) -> None:
            log.info(
                "The SAS budget of snapshot family %s is full (%d per family); "
                "retrying a grant on %s in %.1f s.",
                snapshot.family_id,
                FAMILY_SAS_LIMIT,
                snapshot.name,
                delay,
            )

        async def grant_once() -> str:
            async with asyncio.timeout(GRANT_TIMEOUT_SECONDS):
                poller = await operations.begin_grant_access(rid.resource_group, rid.name, request)
                access = await poller.result()
            if not access.access_sas:
                raise ReplicationError(
                    f"ARM granted access to snapshot {snapshot.id} but returned no SAS URL."
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
            with self.arm_errors(f"grant read access to snapshot {snapshot.id}"):
                return await retrying(grant_once)
        except UserError as err:
            if isinstance(err.__cause__, ResourceNotFoundError):  # resolved earlier in this run
                raise SnapshotGone(
                    f"Snapshot {snapshot.id} was deleted during the run (its read access could not be "
                    "granted); nothing was committed for it."
                ) from None
            raise
        except ReplicationError as err:
            if is_family_sas_limit(err.__cause__):
                raise LimitError(
                    f"Cannot grant access to snapshot {snapshot.id}: its snapshot family already has "
                    f"SAS URIs on {FAMILY_SAS_LIMIT} snapshots (Azure allows five per family at a time) "
                    f"and none was released within {budget:.0f} s; run again later."
                ) from err
            raise
        except TimeoutError:
            raise ReplicationError(
                f"ARM did not finish granting access to snapshot {snapshot.id} "
                f"within {GRANT_TIMEOUT_SECONDS:.0f} s."
            ) from None

    async def _revoke(self, snapshot: SnapshotInfo) -> None:
        """End access to `snapshot` (bounded); failures are logged, since the SAS expires on its own."""
        rid = snapshot.resource
        try:
            async with asyncio.timeout(REVOKE_TIMEOUT_SECONDS):
                poller = await self.compute(rid.subscription_id).snapshots.begin_revoke_access(
                    rid.resource_group, rid.name
                )
                await poller.result()
        except ResourceNotFoundError:
            pass  # deleted meanwhile: nothing left to revoke
        except (AzureError, TimeoutError) as err:
            log.warning(
                "Could not revoke access to snapshot %s (%s); its SAS expires within %d s anyway.",
                snapshot.id,
                messages.describe(err),
                self.config.sas_duration_seconds,
            )


async def _shielded(cleanup: Awaitable[None]) -> None:
    """Run `cleanup` to the end even if the caller is cancelled meanwhile, then re-raise the cancel."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})  # bounded: cleanups carry their own timeouts
        raise


# --- data plane ------------------------------------------------------------------------------------


def _code(err: HttpResponseError) -> str:
    """The service's error code, else the status: what a sentence names the refusal by."""
    return messages.error_code(err) or str(err.status_code or "")


def is_resize_refusal(err: HttpResponseError) -> bool:
    """The diff was refused because the disk was resized across the 4 TiB boundary between the snapshots."""
    if _code(err) == RESIZE_REFUSAL_CODE:
        return True
    return err.status_code in (400, 409) and bool(_RESIZE_TEXT.search(messages.service_answer(err)))


class _SasCaller:
    """Runs data-plane requests against the SAS URLs of grants, re-granting after a 403.

    Keeps one BlobClient (one connection pool) for the current SAS URL; a re-grant replaces it.
    """

    def __init__(self, current: Grant, base: Grant | None = None) -> None:
        self._grants = [g for g in (current, base) if g is not None]
        self._client: BlobClient | None = None
        self._client_url: str | None = None

    async def close(self) -> None:
        client, self._client, self._client_url = self._client, None, None
        if client is not None:
            await client.close()

    async def _client_for(self, url: str) -> BlobClient:
        if self._client_url != url:
            await self.close()
            self._client = BlobClient.from_blob_url(
                url,
                retry_policy=recovery.storage_retry(recovery.LISTING_RETRIES),
                **credentials.transport_kwargs(),
            )
            self._client_url = url
        assert self._client is not None
        return self._client

    async def call(self, what: str, request: Callable[[BlobClient, list[str]], Awaitable[T]]) -> T:
        """`request(client of current's SAS, [current URL, base URL])`, with 403 → re-grant → repeat.

        Which SAS a 403 refused: a request on one grant (a full listing, a size) re-grants that one.
        A diff carries both URLs (the base's in `x-ms-previous-snapshot-url`) and Azure's answer
        (AuthenticationFailed, the same code for either) does not say which was refused, so both are
        re-granted; `Grant.invalidate(url)` makes that one re-grant each however many requests failed.
        """
        urls: list[str] = []

        def regrant(attempt: int, delay: float, err: BaseException) -> None:
            assert isinstance(err, HttpResponseError)
            log.info("%s answered 403 %s; re-granting the SAS and retrying.", what, _code(err))
            for grant, url in zip(self._grants, urls, strict=True):
                grant.invalidate(url)

        policy = retry.retrying(  # no wait: the re-grant is what the next attempt needed
            first=0.0, cap=0.0, attempts=DATA_PLANE_AUTH_RETRIES + 1, retry_on=_refused, on_retry=regrant
        )
        try:
            async for attempt in policy:
                with attempt:
                    urls[:] = [await g.url() for g in self._grants]
                    return await request(await self._client_for(urls[0]), urls)
        except HttpResponseError as err:
            if is_resize_refusal(err):
                raise DiffNotPossible(
                    f"{what} was refused because the disk was resized across the 4 TiB boundary between "
                    f"the two snapshots ({_code(err)}); a full copy is needed."
                ) from None
            raise ReplicationError(
                f"{what} failed: HTTP {err.status_code} {messages.service_answer(err)}."
            ) from None
        except (ServiceRequestError, ServiceResponseError) as err:
            raise ReplicationError(f"{what} failed after retries: {messages.describe(err)}.") from None
        raise AssertionError("unreachable: tenacity returns or reraises")


def _refused(exc: BaseException) -> bool:
    """A data-plane 403: the SAS expired or another run revoked it; a re-grant fixes it."""
    return isinstance(exc, HttpResponseError) and exc.status_code == 403


def _page_changes(page: Any, window: Range) -> Iterator[Change]:
    """The PageRange and ClearRange elements of one answer, merged in offset order, clipped to `window`."""
    data = ((r.start, r.end, False) for r in page.page_range or ())
    cleared = ((r.start, r.end, True) for r in page.clear_range or ())
    for start, end_inclusive, clear in heapq.merge(data, cleared):
        r = from_azure(start, end_inclusive)
        low, high = max(r.start, window.start), min(r.end, window.end)
        if low < high:
            yield Change(Range(low, high), clear)


async def list_changes(
    current: Grant, base: Grant | None, *, start: int, end: int, window: int, page_size: int | None
) -> AsyncIterator[Change]:
    """The changes of `current` over `[start, end)`, in offset order: its diff against `base`, or its
    valid ranges (all `clear=False`) when `base` is None.

    Lists window by window (`window` bytes, 512-aligned; edges on multiples of `window`) and follows
    every NextMarker of each window with at most `page_size` ranges per answer (None: the service's
    maximum). Up to LIST_PREFETCH windows are listed at once and yielded in offset order; each holds
    at most one answer waiting, so memory is LIST_PREFETCH answers. Raises DiffNotPossible when Azure
    refuses the diff because of a resize across 4 TiB, ReplicationError if the service answers out of
    order.
    """
    # One caller (client and connection pool) per prefetch slot: a slot lists one window at a time,
    # so a re-grant in one window never closes a client that another window is using.
    callers = [_SasCaller(current, base) for _ in range(LIST_PREFETCH)]
    name = current.snapshot.name
    against = f" against {base.snapshot.name}" if base else ""
    listing: collections.deque[tuple[str, asyncio.Queue[Any], asyncio.Task[None]]] = collections.deque()
    todo = enumerate(windows(end, window, start))

    def prefetch() -> None:
        while len(listing) < LIST_PREFETCH and (item := next(todo, None)) is not None:
            i, win = item
            what = f"Get Page Ranges of snapshot {name} over {win}{against}"
            answers: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
            slot = callers[i % LIST_PREFETCH]
            task = asyncio.create_task(_list_window(slot, what, win, page_size, base, answers))
            listing.append((what, answers, task))

    previous_end = start
    try:
        prefetch()
        while listing:
            what, answers, task = listing[0]
            while (answer := await answers.get()) is not None:
                if isinstance(answer, BaseException):
                    raise answer
                for change in _page_changes(answer.page, answer.window):
                    if change.range.start < previous_end:
                        raise ReplicationError(f"{what} returned {change.range} after offset {previous_end}.")
                    previous_end = change.range.end
                    yield change
            await task
            listing.popleft()
            prefetch()
    finally:
        for _, _, task in listing:
            task.cancel()
        await asyncio.gather(*(task for _, _, task in listing), return_exceptions=True)
        for caller in callers:
            await caller.close()


@dataclass(frozen=True)
class _Answer:
    """One Get Page Ranges answer and the window it was asked for (answers are clipped to it)."""

    page: Any
    window: Range


async def _list_window(
    caller: _SasCaller,
    what: str,
    win: Range,
    page_size: int | None,
    base: Grant | None,
    answers: asyncio.Queue[Any],
) -> None:
    """Every answer of one window, NextMarker after NextMarker, into `answers`; then None (or the error)."""
    marker: str | None = None
    pages = ranges_listed = 0
    try:
        while True:
            page = await caller.call(what, _ranges_request(win, marker, page_size, diff=base is not None))
            pages += 1
            ranges_listed += len(page.page_range or ()) + len(page.clear_range or ())
            await answers.put(_Answer(page, win))
            if not page.next_marker:
                event(
                    "list_window",
                    logging.DEBUG,
                    message=f"{what}: {plural(ranges_listed, 'range')} in {plural(pages, 'answer')}",
                    window_start=win.start,
                    window_end=win.end,
                    answers=pages,
                    ranges=ranges_listed,
                )
                break
            if page.next_marker == marker:
                raise ReplicationError(
                    f"{what} returned the same NextMarker twice; the listing would not end."
                )
            marker = page.next_marker
    except Exception as exc:  # handed to the consumer, which raises it in offset order
        await answers.put(exc)
        return
    await answers.put(None)


def _ranges_request(
    win: Range, marker: str | None, page_size: int | None, *, diff: bool
) -> Callable[[BlobClient, list[str]], Awaitable[Any]]:
    async def request(client: BlobClient, urls: list[str]) -> Any:
        operations = client._client.page_blob
        if diff:
            return await operations.get_page_ranges_diff(
                prev_snapshot_url=urls[1], range=to_http_range(win), marker=marker, maxresults=page_size
            )
        return await operations.get_page_ranges(range=to_http_range(win), marker=marker, maxresults=page_size)

    return request


async def snapshot_blob_size(grant: Grant) -> int:
    """The size of the snapshot's exported blob, read through its SAS.

    Not always `size_bytes`: a 512-byte-sector disk exports a fixed VHD, one 512-byte footer longer
    than the disk; a 4096-byte-sector disk exports without a footer. The blob is the truth.
    """
    caller = _SasCaller(grant)
    try:

        async def request(client: BlobClient, urls: list[str]) -> int:
            return (await client.get_blob_properties()).size

        return await caller.call(f"Reading the size of snapshot {grant.snapshot.name}", request)
    finally:
        await caller.close()
