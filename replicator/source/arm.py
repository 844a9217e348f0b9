"""Managed disks and their incremental snapshots through ARM: resolve an ID, wait for the background copy.

ARM (azure-mgmt-compute aio) resolves a disk or snapshot ID to the disk's incremental snapshots and
waits for a snapshot's background copy. A disk restore point (one disk of a VM restore point, an
incremental snapshot underneath: "Overview of Virtual Machine restore points") is read here too, as
the same SnapshotInfo, so that everything downstream (base choice, grants, listing, the job) treats
both alike; a VM and its restore points are replicator.source.vm. Read SAS grants are
replicator.source.grants; their data plane (page-range listing, diff, size) is
replicator.source.listing; ranged reads through a SAS are replicator.source.reader.

Which layer retries what (one owner per failure class):

- azure-core's ARM pipeline retries connection errors, 408, 429, 500, 502-504 (honouring
  Retry-After, 3 retries, each wait logged: source.arm_retry). A connection that never succeeds
  becomes a ReplicationError naming the endpoint, throttling that outlasts the retries one saying
  so, and an operation ARM accepted and then reported Failed an ArmOperationFailed with ARM's code
  and message (`ArmSource.arm_errors`).
- A grant refused for the family's SAS limit: source.grants (plumbing.retry until `sas_wait_seconds`).
- A data-plane 403 (expired or revoked SAS) and the listing's storage retries: source.listing.
- The disk token of Entra-ID-protected snapshots and the challenge that reveals one: source.disk_auth.
- Anything else surfaces as a ReplicatorError; the pipeline decides whether the run resumes.

Snapshots of one disk may live in any resource group of its subscription (Azure lets the creator
choose). `resolve` lists the disk's own resource group by default, which is where Azure's own docs
list them and which needs read access to that group only; `search="subscription"` lists the whole
subscription instead, finding snapshots kept in a separate backup group at the cost of
subscription-wide read permission and a longer listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.polling.base_polling import OperationFailed
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.compute.models import Disk, DiskRestorePoint, RestorePoint, Snapshot

from replicator.core import arm_ids, messages
from replicator.core.disk_profile import DiskProfile
from replicator.core.errors import LimitError, ReplicationError, UserError
from replicator.plumbing import credentials
from replicator.source.arm_retry import ARM_RETRIES, LoggedArmRetry
from replicator.source.disk_auth import ENTRA_MODE, DiskAuth
from replicator.source.disk_profiles import profile_of

log = logging.getLogger(__name__)

ARM_POLL_SECONDS = 1.0
"""LRO polling interval when ARM sends no Retry-After (the SDK default of 30 s would stall every grant)."""

WAIT_POLL_SECONDS = 5.0
"""How often wait_complete re-reads completionPercent."""

WAIT_TIMEOUT_SECONDS = 3600.0
"""How long wait_complete waits for a background copy before LimitError (a later run will find it done)."""

OWNER_TAG = "replicator-owner"
OWNER_VALUE = "replicator"
"""The ARM tag `--snapshot-now` puts on each snapshot it takes (replicator.engine.snapshots): `--source-keep`
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


class ArmOperationFailed(ReplicationError):
    """ARM accepted a request, then reported its operation Failed: a definitive answer, whose `code` and
    message (in the sentence) say why. What the operation leaves is the operation's to say: a failed
    grant hands out no SAS, a failed snapshot create leaves the snapshot in provisioningState Failed."""

    def __init__(self, action: str, err: HttpResponseError) -> None:
        self.code = messages.error_code(err)
        super().__init__(
            f"Cannot {action}: ARM accepted the request and then reported it Failed "
            f"({messages.service_answer(err)})."
        )


@dataclass(frozen=True)
class SnapshotInfo:
    """What the replicator needs of a snapshot resource, or of a disk restore point (`kind`); `id`
    keeps ARM's spelling.

    A disk restore point has no uniqueId: its `unique_id` is its ARM ID, case-folded (its name ends
    in a GUID Azure picks, `<disk name>_<guid>`, so a restore point made again under the same name has
    other disk restore points). Its size is the disk's at the restore point (sourceMetadata's
    diskSizeGB), or the disk's now when ARM does not say.
    """

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
    data_access_auth_mode: str | None = None  # ARM's dataAccessAuthMode; None when ARM omits it
    profile: DiskProfile = field(default_factory=DiskProfile)  # failover-grade properties (disk_profiles)

    @property
    def protected(self) -> bool:
        """Entra ID protects its data (source.disk_auth): every read needs the disk token too."""
        return (self.data_access_auth_mode or "").casefold() == ENTRA_MODE.casefold()

    @property
    def complete(self) -> bool:
        """Usable now: no background copy reported (None) or it reached 100 %."""
        return self.completion_percent is None or self.completion_percent >= 100

    @property
    def resource(self) -> arm_ids.ResourceId:
        return arm_ids.parse(self.id)

    @property
    def noun(self) -> str:
        """ "snapshot" or "disk restore point": what sentences call it (from the ID's form, unparsed)."""
        return "disk restore point" if "/diskrestorepoints/" in self.id.casefold() else "snapshot"


@dataclass(frozen=True)
class DiskInfo:
    """What the replicator needs of a managed disk; `unique_id` tells a re-created disk from the old one."""

    id: str
    name: str
    unique_id: str
    size_bytes: int
    sku: str | None
    max_shares: int | None = None  # above 1: a shared disk
    profile: DiskProfile = field(default_factory=DiskProfile)  # failover-grade properties (disk_profiles)


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
        data_access_auth_mode=s.data_access_auth_mode,
        profile=profile_of(s),
    )


def disk_restore_point_info(point: DiskRestorePoint, size_bytes: int, time_created: datetime) -> SnapshotInfo:
    """A disk restore point as a SnapshotInfo (see its docstring); `time_created`: its own, else its VM
    restore point's."""
    return SnapshotInfo(
        id=point.id or "",
        name=point.name or "",
        unique_id=(point.id or "").casefold(),
        family_id=point.family_id,
        time_created=point.time_created or time_created,
        size_bytes=size_bytes,
        logical_sector_size=point.logical_sector_size or 512,
        incremental=True,
        completion_percent=point.completion_percent,
        source_resource_id=point.source_resource_id,
        source_unique_id=point.source_unique_id,
        profile=profile_of(point),
    )


def captured_size_gb(point: RestorePoint, disk_restore_point_id: str) -> int | None:
    """The size (GiB) sourceMetadata records for the disk whose restore point is `disk_restore_point_id`."""
    profile = point.source_metadata.storage_profile if point.source_metadata else None
    disks = [profile.os_disk, *(profile.data_disks or [])] if profile else []
    for disk in disks:
        attributes = disk.disk_restore_point if disk else None
        if attributes and arm_ids.same_resource(attributes.id, disk_restore_point_id):
            return disk.disk_size_gb
    return None


def plain(value: Any) -> str | None:
    """An SDK field that is an enum or text, as its plain text (an enum's str() is its class name)."""
    return None if value is None else str(getattr(value, "value", value))


def _disk_info(d: Disk) -> DiskInfo:
    return DiskInfo(
        id=d.id or "",
        name=d.name or "",
        unique_id=d.unique_id or "",
        size_bytes=d.disk_size_bytes or (d.disk_size_gb or 0) * 1024**3,
        sku=plain(d.sku.name) if d.sku else None,
        max_shares=d.max_shares,
        profile=profile_of(d),
    )


def _same_guid(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.casefold() == b.casefold())


class ArmSource:
    """ARM (azure-mgmt-compute aio) + snapshot data plane (azure-storage-blob aio on SAS URLs)."""

    def __init__(self, config: SourceConfig, credential: Any) -> None:
        self.config = config
        self.endpoint = credentials.check_arm_endpoint(config.arm_endpoint, allow_http=config.allow_http)
        self._credential = credential
        self._clients: dict[str, ComputeManagementClient] = {}
        self._failed_seen: set[str] = set()  # Failed snapshots already warned about (once a run)
        self.disk_auth = DiskAuth(credential)  # the data plane of protected snapshots: same credential

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
                retry_policy=LoggedArmRetry(),
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
            if isinstance(err.__cause__, OperationFailed):  # azure-core's poller saw status Failed
                raise ArmOperationFailed(action, err) from err
            if err.status_code == 403:
                raise UserError(
                    f"Cannot {action}: ARM refused permission ({messages.service_answer(err)})."
                ) from err
            if err.status_code == 429:
                raise ReplicationError(
                    f"Cannot {action}: ARM throttled it ({messages.service_answer(err)}) through "
                    f"{ARM_RETRIES} retries that waited as its Retry-After asked; run again later (ARM's "
                    "request limits are the subscription's, shared by every client of it)."
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
            disk = await self.get_disk(rid)
            return disk, await self._snapshots_of(rid, disk, search)
        if rid.kind != "snapshot":  # a VM is read by replicator.source.vm, its groups by `list`
            raise UserError(
                f"{resource_id} is not a disk or a snapshot: a virtual machine's replicas are its groups, "
                "which `replicate list --target <its prefix>` shows."
            )
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
        return await self._snapshots_of(rid, await self.get_disk(rid), search, incremental=False)

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo | None:
        """The snapshot (or disk restore point) as ARM sees it now; None when it has been deleted."""
        rid = arm_ids.parse(snapshot_id)
        try:
            if rid.kind == "disk_restore_point":
                return await self.get_disk_restore_point(rid)
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

    async def get_disk_restore_point(self, rid: arm_ids.ResourceId) -> SnapshotInfo:
        """A disk restore point, sized from its VM restore point's metadata (else from its disk now)."""
        compute = self.compute(rid.subscription_id)
        collection, point_name = rid.parents
        with self.arm_errors(f"read disk restore point {rid}"):
            drp = await compute.disk_restore_point.get(rid.resource_group, collection, point_name, rid.name)
            point = await compute.restore_points.get(rid.resource_group, collection, point_name)
        size_gb = captured_size_gb(point, str(rid))
        if size_gb:
            size = size_gb * 1024**3
        else:  # ARM's answer carries no size: the disk's size now (the copy reads the exported blob's)
            size = (await self.get_disk(arm_ids.parse(drp.source_resource_id or ""))).size_bytes
        return disk_restore_point_info(drp, size, point.time_created or datetime.min.replace(tzinfo=UTC))

    async def get_disk(self, rid: arm_ids.ResourceId) -> DiskInfo:
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
        pager follows every nextLink. A snapshot whose creation failed (provisioningState Failed: ARM
        leaves it behind) holds nothing and cannot be granted: it is left out, with a warning."""
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
                    if snapshot.provisioning_state == "Failed":
                        self._leave_out(info)
                        continue
                    found.append(info)
        return sorted(found, key=lambda s: (s.time_created, s.name))

    def _leave_out(self, failed: SnapshotInfo) -> None:
        """Say once a run that a snapshot whose creation failed is not replicated."""
        if failed.id.casefold() not in self._failed_seen:
            self._failed_seen.add(failed.id.casefold())
            log.warning(
                "Snapshot %s of the disk was left out: its creation failed (provisioningState Failed), "
                "so it holds nothing to replicate; delete it.",
                failed.id,
            )

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
                    f"The background copy of {current.noun} {current.id} failed: {current.copy_error}."
                )
            if on_progress is not None:
                on_progress(current)
            if current.complete:
                return current
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LimitError(
                    f"{current.noun.capitalize()} {current.id} is still being copied in the background "
                    f"({current.completion_percent:.0f}% after {timeout_seconds:.0f} s); run again later."
                )
            await asyncio.sleep(min(poll_seconds, remaining))
            refreshed = await self.get_snapshot(current.id)
            if refreshed is None:
                raise ReplicationError(
                    f"{current.noun.capitalize()} {current.id} was deleted while waiting for its background "
                    "copy."
                )
            current = refreshed
