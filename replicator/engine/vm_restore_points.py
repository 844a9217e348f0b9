"""`--snapshot-now` and `--source-keep` of a VM: create a crash-consistent restore point in the tool's
own collection, delete old ones.

Why a module of its own, beside engine.snapshots (its twin for a disk): these are the only calls that
create or delete the VM's restore points, and they need write permissions
(`Microsoft.Compute/restorePointCollections/write`, `.../restorePoints/write` and `/delete`,
docs/runbook.md) that a read-only replication identity does not have. Why in the engine: which
restore points may go depends on the targets' state (the base of each disk's next diff).

The collection: one per VM and target, in the VM's resource group and region, named
`<vm>-replicator-<8 hex digits of the target>` and tagged as the snapshots --snapshot-now takes are
(source.arm.OWNER_TAG, TARGET_TAG). Restore points carry no tags ("Restore Points - Create" has no
`tags`), so a restore point is the tool's exactly when it is in such a collection: --source-keep
deletes only those, never a restore point an operator or another tool made.

The restore point ("Restore Points - Create"): `consistencyMode: CrashConsistent` (the mode that
needs no agent in the VM; API 2021-07-01 or later), excluding the disks Azure does not support in
that mode (Ultra, Premium SSD v2, write-accelerated and shared disks: "Exclude these disks",
core.consistency.left_out); the run then takes an incremental snapshot of each of those right after
(engine.snapshots.snapshot_now), so the group holds every disk, best-effort.

Limits ("Overview of Virtual Machine restore points"): 3 crash-consistent creates per VM per hour
(HTTP 429 beyond, with Retry-After) and 500 restore points per VM. They are checked against the
VM's restore points before asking (those in the collections found: --snapshot-search), and the
service's refusal is the authority: either way LimitError (exit 3) before anything is granted or
written. The create is sent once (`retry_total=0`): the SDK would otherwise sleep out a 429's
Retry-After (up to an hour), and a resent create could make a second restore point.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from collections.abc import Collection as Many
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    ApiEntityReference,
    RestorePoint,
    RestorePointCollection,
    RestorePointCollectionSourceProperties,
)

from replicator.core import arm_ids, messages
from replicator.core.errors import LimitError, ReplicationError, UserError
from replicator.core.output import plural
from replicator.engine.snapshots import window_full
from replicator.source.arm import OWNER_TAG, OWNER_VALUE, TARGET_TAG, ArmSource, target_tag
from replicator.source.vm import Collection, VmInfo, VmRestorePoint, restore_point_info

log = logging.getLogger(__name__)

CRASH_CONSISTENT = "CrashConsistent"
POINTS_PER_WINDOW = 3
"""Azure: 3 crash-consistent restore point creates per VM per hour."""
POINT_WINDOW = timedelta(hours=1)
POINTS_PER_VM = 500
"""Azure: 500 restore points per VM, whatever their collections."""


def collection_name(vm_name: str, target: str) -> str:
    """The tool's collection of a VM for `target` (its display URL): one per target, so two targets of
    one VM never trim each other's restore points."""
    digest = hashlib.sha256(target_tag(target).encode()).hexdigest()[:8]
    return f"{vm_name[:48]}-replicator-{digest}"


def point_name(vm_name: str, now: datetime) -> str:
    """A new restore point's name: the VM's, a UTC timestamp and a short random suffix."""
    return f"{vm_name[:48]}-repl-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def ours(collection: Collection, target: str) -> bool:
    """Whether the tool created `collection` for `target` (display URL): both tags, the target's exact."""
    return collection.owned and collection.owner_target == target_tag(target)


def check_limits(points: list[VmRestorePoint], now: datetime) -> None:
    """LimitError when one more crash-consistent restore point of the VM would break a limit
    (`points`: the VM's restore points found, in every collection)."""
    if len(points) >= POINTS_PER_VM:
        raise LimitError(
            f"the VM already has {len(points)} restore points (Azure allows {POINTS_PER_VM}); delete old "
            "ones (--source-keep) before --snapshot-now."
        )
    crash = [p.time_created for p in points if (p.consistency_mode or "").casefold() == "crashconsistent"]
    if full := window_full(crash, now, POINTS_PER_WINDOW, POINT_WINDOW):
        count, free_at = full
        raise LimitError(
            f"{count} crash-consistent restore points of the VM were created in the last hour (Azure "
            f"allows {POINTS_PER_WINDOW}); run again after {free_at:%H:%M:%S} UTC.",
            retry_after_seconds=round((free_at - now).total_seconds(), 3),
        )


async def take_restore_point(
    source: ArmSource,
    vm: VmInfo,
    collections: list[Collection],
    exclude: Many[str],
    on_message: Callable[[str], None],
    *,
    target: str,
    now: datetime | None = None,
) -> VmRestorePoint:
    """Create a crash-consistent restore point of `vm` in the tool's collection for `target` (created
    when missing), leaving out the disks `exclude` (ARM IDs); returns it as ARM answered."""
    now = now or datetime.now(UTC)
    check_limits([p for c in collections for p in c.points], now)
    rid = arm_ids.parse(vm.id)
    compute = source.compute(rid.subscription_id)
    group = rid.resource_group.casefold()
    mine = next((c for c in collections if ours(c, target) and c.resource_group.casefold() == group), None)
    name = mine.name if mine else collection_name(vm.name, target)
    if mine is None:
        on_message(f"creating restore point collection {name} for {vm.name}")
        body = RestorePointCollection(
            location=vm.location,
            tags={OWNER_TAG: OWNER_VALUE, TARGET_TAG: target_tag(target)},
            source=RestorePointCollectionSourceProperties(id=vm.id),
        )
        with source.arm_errors(
            f"create restore point collection {name} in resource group {rid.resource_group}"
        ):
            await compute.restore_point_collections.create_or_update(rid.resource_group, name, body)
    point = point_name(vm.name, now)
    body_point = RestorePoint(
        consistency_mode=CRASH_CONSISTENT,
        exclude_disks=[ApiEntityReference(id=disk_id) for disk_id in exclude] or None,
    )
    left = (
        f", leaving out {plural(len(exclude), 'disk')} Azure does not support in that mode" if exclude else ""
    )
    on_message(f"creating crash-consistent restore point {point} of {vm.name}{left}")
    try:
        with source.arm_errors(f"create a restore point of {vm.id}"):
            poller = await compute.restore_points.begin_create(
                rid.resource_group, name, point, body_point, retry_total=0
            )
            created = await poller.result()
    except ReplicationError as err:
        cause = err.__cause__
        if isinstance(cause, HttpResponseError) and cause.status_code in (409, 429):
            retry_after = cause.response.headers.get("Retry-After") if cause.response is not None else None
            raise LimitError(
                f"Azure refused the restore point of {vm.name}: {messages.service_answer(cause)}",
                retry_after_seconds=float(retry_after) if retry_after and retry_after.isdigit() else None,
            ) from err
        raise
    return restore_point_info(created, vm.name)


def restore_point_of(point_id: str) -> str:
    """The VM restore point that a disk restore point ID belongs to; "" for any other ID (a snapshot)."""
    try:
        rid = arm_ids.parse(point_id)
    except UserError:  # a recorded ID of another form: not a disk restore point
        return ""
    if rid.kind != "disk_restore_point":
        return ""
    collection, point = rid.parents
    return str(
        arm_ids.ResourceId(rid.subscription_id, rid.resource_group, "restore_point", point, (collection,))
    )


@dataclass(frozen=True)
class Trim:
    """What `--source-keep` does to the VM's restore points beyond the newest N."""

    delete: list[VmRestorePoint]  # the tool's own for this target, not needed by a group
    not_owned: int  # left because the tool did not create them (or not for this target)


def plan_trim(collections: list[Collection], keep: int, needed: Many[str], target: str) -> Trim:
    """Pure: of the VM's restore points beyond the newest `keep` (whoever made them), those in the
    tool's collection for `target` are deleted, but for `needed` (restore point IDs, any case)."""
    mine = {p.id.casefold() for c in collections if ours(c, target) for p in c.points}
    points = sorted((p for c in collections for p in c.points), key=lambda p: (p.time_created, p.name))
    old = points[: max(0, len(points) - keep)]
    wanted = {n.casefold() for n in needed}
    return Trim(
        [p for p in old if p.id.casefold() in mine and p.id.casefold() not in wanted],
        sum(1 for p in old if p.id.casefold() not in mine),
    )


async def keep_restore_points(
    source: ArmSource,
    collections: list[Collection],
    keep: int,
    needed: Many[str],
    on_message: Callable[[str], None],
    *,
    target: str,
) -> list[str]:
    """Delete the tool's restore points of the VM beyond the newest `keep`, but those `needed` (the
    restore points of each disk's next diff base, and of an unfinished group); returns the IDs deleted."""
    trim = plan_trim(collections, keep, needed, target)
    if trim.not_owned:
        on_message(
            f"--source-keep {keep}: left {plural(trim.not_owned, 'older restore point')} of the VM, not in "
            "the tool's collection for this target; it deletes only restore points it created"
        )
    deleted = []
    for point in trim.delete:
        rid = point.resource
        (collection,) = rid.parents
        on_message(f"deleting restore point {point.name} (--source-keep {keep})")
        try:
            with source.arm_errors(f"delete restore point {point.id}"):
                poller = await source.compute(rid.subscription_id).restore_points.begin_delete(
                    rid.resource_group, collection, rid.name
                )
                await poller.result()
        except (ReplicationError, UserError) as err:
            cause = err.__cause__
            if isinstance(cause, ResourceNotFoundError):
                continue  # deleted meanwhile
            if isinstance(cause, HttpResponseError) and cause.status_code == 409:
                on_message(f"kept {point.name}: {messages.service_answer(cause)}")  # an active SAS on it
                continue
            raise
        deleted.append(point.id)
    return deleted
