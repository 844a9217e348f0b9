"""Restore points of a target: list them, choose one, check it, make a managed disk of it, prune them.

Why a module of its own: a replica is worth only the disk it gives back, and giving it back needs
nothing of the replication pipeline: its metadata (target.state.RestorePointMeta, read here) names every
restore point's source snapshot, size, sector size and mode, so listing needs only the target.

A restore is ARM's disk create with `createOption: Import` from the restore point's blob snapshot
URL (`sourceUri`) in the target storage account (`storageAccountId`), with the `dataAccessAuthMode`
the restore point records of its source (an Entra-ID-protected source gives a protected disk: a
hardened tenant's policy would refuse an unprotected one; `RestoreRequest.data_access_auth_mode`
overrides it). Before anything is created
the restore point is checked: a 4096-byte-sector restore point can only become a Premium SSD v2 or
Ultra disk (Azure's rule for such snapshots), and a 512-byte-sector one must end with an intact
fixed-VHD footer (replicator.core.vhd), because Azure imports only VHDs.

Prune deletes old restore points under the base blob's lease (a running replication holds it, so
prune refuses with exit 3 rather than race it), and never deletes the newest restore point or the
one holding the target's last completed snapshot (the base of the next diff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import CreationData, Disk, DiskSku

from replicator.core import vhd
from replicator.core.errors import ReplicationError, UserError
from replicator.core.output import utc_time
from replicator.core.ranges import Range
from replicator.plumbing.urlcheck import TargetUrl
from replicator.settings.config import Config
from replicator.source.arm import ArmSource
from replicator.source.disk_auth import ENTRA_MODE
from replicator.target.page_blob import PageBlobTarget
from replicator.target.state import InProgress, RestorePoint, State

log = logging.getLogger(__name__)

V2_SKUS = frozenset({"PremiumV2_LRS", "UltraSSD_LRS"})
"""The only disk types a 4096-byte-sector snapshot (stored as VHDX) can become."""
DISK_SKUS = ("Standard_LRS", "StandardSSD_LRS", "StandardSSD_ZRS", "Premium_LRS", "Premium_ZRS", *V2_SKUS)
AUTH_MODES = (ENTRA_MODE, "None")
"""The `dataAccessAuthMode` values a restored disk may be given (`--data-access-auth-mode`)."""
RESTORE_TIMEOUT_SECONDS = 3600.0
"""Bound on the disk create (an import of a large VHD can take many minutes in Azure)."""
COMPLETION_POLL_SECONDS = 5.0
"""How often a Premium SSD v2 / Ultra disk's completionPercent is re-read while it hydrates."""


@dataclass(frozen=True)
class PointInfo:
    """One restore point as `list` shows it (its RestorePointMeta and the base blob's state)."""

    id: str
    snapshot_name: str
    snapshot_id: str
    snapshot_unique_id: str
    snapshot_time: str
    size_bytes: int
    logical_sector_size: int
    mode: str
    reason: str
    base_of_next_diff: bool
    data_access_auth_mode: str = ""  # the source snapshot's, as the restore point records it

    @classmethod
    def of(cls, point: RestorePoint, state: State) -> PointInfo:
        meta = point.meta
        return cls(
            id=point.id,
            snapshot_name=meta.snapshot_name,
            snapshot_id=meta.snapshot_id,
            snapshot_unique_id=meta.snapshot_unique_id,
            snapshot_time=meta.snapshot_time,
            size_bytes=meta.size_bytes,
            logical_sector_size=meta.logical_sector_size,
            mode=meta.mode,
            reason=meta.reason,
            base_of_next_diff=_is_base(point.id, meta.snapshot_unique_id, state),
            data_access_auth_mode=meta.data_access_auth_mode,
        )

    @property
    def snapshot_datetime(self) -> datetime | None:
        """The source snapshot's creation time (aware), or None when the metadata holds no such time."""
        try:
            moment = datetime.fromisoformat(self.snapshot_time)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None

    @property
    def created(self) -> datetime:
        """When the restore point was taken: its ID is the blob snapshot's UTC timestamp."""
        return datetime.fromisoformat(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_snapshot": {
                "name": self.snapshot_name,
                "id": self.snapshot_id,
                "unique_id": self.snapshot_unique_id,
                "time_created": utc_time(self.snapshot_time),
            },
            "size_bytes": self.size_bytes,
            "logical_sector_size": self.logical_sector_size,
            "mode": self.mode,
            "reason": self.reason,
            "base_of_next_diff": self.base_of_next_diff,
            "data_access_auth_mode": self.data_access_auth_mode or None,
        }


def _is_base(point_id: str, unique_id: str, state: State) -> bool:
    if state.last_restore_point:
        return point_id == state.last_restore_point
    return bool(state.last and unique_id and unique_id == state.last.unique_id)


@dataclass(frozen=True)
class Listing:
    """The restore points of one target, oldest first, and whether a run is on the base blob."""

    target: str
    source_disk_id: str | None
    points: list[PointInfo]
    locked: bool  # a run holds the base blob's lease right now
    in_progress: InProgress | None  # a run started a snapshot and has not committed it (running or killed)

    def to_json(self) -> dict[str, Any]:
        progress = self.in_progress
        return {
            "target": self.target,
            "source_disk_id": self.source_disk_id,
            "locked": self.locked,
            "in_progress": None
            if progress is None
            else {
                "snapshot_name": progress.snapshot.name,
                "snapshot_id": progress.snapshot.id,
                "mode": progress.mode,
                "checkpoint": progress.checkpoint,
            },
            "restore_points": [p.to_json() for p in self.points],
        }


async def list_points(target: PageBlobTarget) -> Listing:
    """Every restore point of `target`; UserError when there is no target blob."""
    inspection = await target.inspect()
    if not inspection.exists:
        raise UserError(
            f"there is no target blob at {target.url.display}; nothing has been replicated there."
        )
    state = inspection.state
    points = [PointInfo.of(p, state) for p in await target.restore_points()]
    return Listing(target.url.display, state.disk_id, points, inspection.leased, state.in_progress)


def newest(points: Sequence[PointInfo]) -> PointInfo | None:
    """The restore point holding the newest source snapshot (by the snapshot's creation time, ties by
    restore point ID); None when none records a readable time.

    Not simply the last one taken: after `--allow-rollback` the last restore point may hold an older
    snapshot, and the newer one is still there. `latest` and `replicate status` both mean this one,
    so a failover restores what status reported as protected.
    """
    dated = [(p.snapshot_datetime, p.id, p) for p in points if p.snapshot_datetime is not None]
    return max(dated, key=lambda item: item[:2])[2] if dated else None


def select(points: list[PointInfo], wanted: str) -> PointInfo:
    """The restore point named by its ID, `latest` (`newest`), or its source snapshot's name.

    A name that more than one restore point carries (a snapshot deleted and re-created under its
    name, or duplicates an older version left) is refused with the candidates: restoring a disk
    from a guess is how the wrong data comes back.
    """
    if not points:
        raise UserError("the target has no restore point yet.")
    if wanted == "latest":
        return newest(points) or points[-1]
    by_id = [p for p in points if p.id == wanted]
    by_name = by_id or [p for p in points if p.snapshot_name == wanted]
    if not by_name:
        raise UserError(
            f"no restore point {wanted!r}: give a restore point ID, 'latest' or a source snapshot name "
            "(see `replicate list`)."
        )
    if len(by_name) > 1:
        listed = ", ".join(f"{p.id} (snapshot taken {utc_time(p.snapshot_time)})" for p in by_name)
        raise UserError(
            f"{len(by_name)} restore points hold a source snapshot named {wanted!r}: {listed}; "
            "give one of these restore point IDs as --point."
        )
    return by_name[0]


def check_sku(point: PointInfo, sku: str) -> None:
    """Azure: a 4096-byte-sector snapshot can only become a Premium SSD v2 or Ultra disk."""
    if sku not in DISK_SKUS:
        raise UserError(f"--sku must be one of {', '.join(DISK_SKUS)}; got {sku!r}.")
    if point.logical_sector_size == 4096 and sku not in V2_SKUS:
        raise UserError(
            f"restore point {point.id} holds a disk with 4096-byte logical sectors, which can only become "
            f"a Premium SSD v2 or Ultra disk (--sku PremiumV2_LRS or UltraSSD_LRS), not {sku}."
        )


async def check_footer(target: PageBlobTarget, point: PointInfo) -> None:
    """A 512-byte-sector restore point must end with an intact fixed-VHD footer; UserError otherwise."""
    if point.logical_sector_size != 512:
        return
    size = point.size_bytes
    if size < 2 * vhd.FOOTER_SIZE:
        raise UserError(f"restore point {point.id} records a size of {size} bytes; it cannot hold a VHD.")
    footer = await target.read(Range(size - vhd.FOOTER_SIZE, size), snapshot=point.id)
    try:
        vhd.check_footer(footer, size)
    except vhd.FooterError as exc:
        raise UserError(
            f"restore point {point.id} is damaged: {exc}; restore an earlier one (see `replicate list`)."
        ) from None


def account_name(url: TargetUrl) -> str:
    """The storage account of a target: the path's first segment on emulators, else the host's first label."""
    parts = urlsplit(url.account_url)
    return parts.path.strip("/") or (parts.hostname or "").split(".")[0]


def storage_account_id(url: TargetUrl, subscription_id: str, resource_group: str) -> str:
    """The ARM ID of the target's storage account, assuming it lives in `resource_group`."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{account_name(url)}"
    )


def source_uri(url: TargetUrl, point_id: str) -> str:
    """The restore point's blob snapshot URL, without any SAS (ARM reads it with its own access)."""
    return f"{url.display}?snapshot={quote(point_id, safe='')}"


@dataclass(frozen=True)
class RestoreRequest:
    """Where and as what to restore; `storage_account_id` None: derived in `resource_group`."""

    point: str
    subscription_id: str | None
    resource_group: str
    disk_name: str
    location: str
    sku: str = "Premium_LRS"
    storage_account_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    data_access_auth_mode: str | None = None  # None: the source snapshot's, as the restore point records it


@dataclass(frozen=True)
class RestoreResult:
    disk_id: str
    point: PointInfo
    sku: str
    size_bytes: int
    data_access_auth_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "disk_id": self.disk_id,
            "sku": self.sku,
            "data_access_auth_mode": self.data_access_auth_mode,
            "disk_size_bytes": self.size_bytes,
            "restore_point": self.point.to_json(),
        }


def _subscription(request: RestoreRequest, listing: Listing) -> str:
    if request.subscription_id:
        return request.subscription_id
    disk_id = listing.source_disk_id or ""
    parts = disk_id.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return parts[2]
    raise UserError(
        "--subscription-id is required (the target does not name its source disk's subscription)."
    )


async def restore(
    config: Config, request: RestoreRequest, on_message: Callable[[str], None] = lambda _: None
) -> RestoreResult:
    """Create the managed disk `request` asks for from a restore point; returns its ID once it exists.

    Refuses (UserError, nothing created) an unknown point, a disk name already taken, a 4096-sector
    point to a non-v2 SKU and a damaged VHD footer.
    """
    async with PageBlobTarget(config, command="restore") as target:
        listing = await list_points(target)
        point = select(listing.points, request.point)
        check_sku(point, request.sku)
        await check_footer(target, point)
        url = target.url
    subscription = _subscription(request, listing)
    auth_mode = request.data_access_auth_mode or point.data_access_auth_mode or None
    account_id = request.storage_account_id or storage_account_id(url, subscription, request.resource_group)
    body = Disk(
        location=request.location,
        sku=DiskSku(name=request.sku),
        tags=request.tags or None,
        creation_data=CreationData(
            create_option="Import",
            source_uri=source_uri(url, point.id),
            storage_account_id=account_id,
            # v2/Ultra disks default to 4096-byte sectors: say what the restore point holds.
            logical_sector_size=point.logical_sector_size if request.sku in V2_SKUS else None,
        ),
        data_access_auth_mode=auth_mode,
    )
    disk_id = (
        f"/subscriptions/{subscription}/resourceGroups/{request.resource_group}"
        f"/providers/Microsoft.Compute/disks/{request.disk_name}"
    )
    source = await ArmSource.open(config)
    async with source:
        disks = source.compute(subscription).disks
        with source.arm_errors(f"create disk {disk_id}"):
            with contextlib.suppress(ResourceNotFoundError):
                await disks.get(request.resource_group, request.disk_name)
                raise UserError(f"the disk {disk_id} already exists; choose another --disk-name.")
            on_message(
                f"creating {disk_id} ({request.sku}) from restore point {point.id} ({point.snapshot_name})"
            )
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT_SECONDS):
                    poller = await disks.begin_create_or_update(
                        request.resource_group, request.disk_name, body
                    )
                    disk = await poller.result()
                    while disk.completion_percent is not None and disk.completion_percent < 100:
                        on_message(f"{request.disk_name}: {disk.completion_percent:.0f} % hydrated")
                        await asyncio.sleep(COMPLETION_POLL_SECONDS)
                        disk = await disks.get(request.resource_group, request.disk_name)
            except TimeoutError:
                raise ReplicationError(
                    f"the disk {disk_id} was not ready within {RESTORE_TIMEOUT_SECONDS:.0f} s; "
                    "check it with `az disk show` before retrying."
                ) from None
    size = disk.disk_size_bytes or (disk.disk_size_gb or 0) * 1024**3
    return RestoreResult(disk.id or disk_id, point, request.sku, size, disk.data_access_auth_mode)


# ---------------------------------------------------------------- prune


@dataclass(frozen=True)
class PrunePlan:
    """What prune deletes, and what it keeps although the policy would delete it (with why)."""

    delete: list[PointInfo]
    protected: list[tuple[PointInfo, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "deleted": [p.to_json() for p in self.delete],
            "kept_by_rule": [{"id": p.id, "why": why} for p, why in self.protected],
        }


def plan_prune(
    points: list[PointInfo], *, keep: int | None = None, older_than_days: float | None = None, now: datetime
) -> PrunePlan:
    """Pure: the restore points a policy deletes (oldest first); exactly one of keep / older_than_days.

    Never the newest restore point, never the base of the next diff.
    """
    if (keep is None) == (older_than_days is None):
        raise UserError("give exactly one of --keep N or --older-than DAYS.")
    if keep is not None:
        if keep < 1:
            raise UserError(f"--keep must be at least 1; got {keep}.")
        chosen = points[: max(0, len(points) - keep)]
    else:
        assert older_than_days is not None
        if older_than_days < 0:
            raise UserError(f"--older-than must not be negative; got {older_than_days:g}.")
        cutoff = now - timedelta(days=older_than_days)
        chosen = [p for p in points if p.created < cutoff]
    delete, protected = [], []
    for p in chosen:
        if points and p.id == points[-1].id:
            protected.append((p, "the newest restore point"))
        elif p.base_of_next_diff:
            protected.append((p, "the base of the next diff (the target's last completed snapshot)"))
        else:
            delete.append(p)
    return PrunePlan(delete, protected)


async def prune(
    config: Config,
    *,
    keep: int | None,
    older_than_days: float | None,
    now: datetime,
    dry_run: bool,
    on_message: Callable[[str], None] = lambda _: None,
    only: Collection[str] | None = None,
) -> PrunePlan:
    """Delete what `plan_prune` chooses, holding the base blob's lease (LockedError if a run holds it).

    A dry run plans from a lease-free read and deletes nothing. Prune never waits for a lease: a
    run holding it may be about to diff from any restore point's snapshot, so it refuses at once.
    `only`: the restore point IDs an operator confirmed from a dry run; the plan made again under the
    lease deletes no other (what was not shown is never deleted).
    """
    command = "prune --dry-run" if dry_run else "prune"
    async with PageBlobTarget(replace(config, lease_wait_seconds=0), command=command) as target:
        if dry_run:
            return plan_prune(
                (await list_points(target)).points, keep=keep, older_than_days=older_than_days, now=now
            )
        await list_points(target)  # a missing target is bad input, before taking any lease
        async with target.leased():
            listing = await list_points(target)  # read again under the lease: the state may have moved
            plan = plan_prune(listing.points, keep=keep, older_than_days=older_than_days, now=now)
            if only is not None:
                plan = replace(plan, delete=[p for p in plan.delete if p.id in only])
            for p in plan.delete:
                on_message(f"deleting restore point {p.id} ({p.snapshot_name})")
                await target.delete_restore_point(p.id)
        return plan
