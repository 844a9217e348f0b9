"""Virtual machines and their restore points through ARM: a VM's managed disks, its restore point
collections and restore points, and which disk restore point of each holds which disk.

Read only, like the rest of replicator.source: creating and deleting restore points
(`--snapshot-now`, `--source-keep`) is replicator.engine.vm_restore_points. A disk restore point
itself is read by ArmSource (replicator.source.arm), as a SnapshotInfo like a snapshot.

Azure's model (REST API "Virtual Machines - Get", "Restore Point Collections - Get / List / List
All", "Restore Points - Get"; "Overview of Virtual Machine restore points"): a restore point
collection has one source VM (`properties.source.id`) and lives in any resource group of the
subscription; `$expand=restorePoints` lists its restore points. A restore point records the VM as it
was (`sourceMetadata`: vmSize, and each disk's name, LUN, host caching, write accelerator, managed
disk ID and `diskRestorePoint.id`) and its `consistencyMode`. Disks left out with `excludeDisks` have
no disk restore point. A VM with unmanaged disks (a VHD in a storage account) has no restore points
("Support matrix for VM restore points": managed disks only).

Where collections are looked for follows `--snapshot-search`: the VM's resource group (read access
to it is enough), or the whole subscription (`list_all`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import RestorePoint, RestorePointCollection

from replicator.core import arm_ids
from replicator.core.errors import UserError
from replicator.source.arm import OWNER_TAG, OWNER_VALUE, TARGET_TAG, ArmSource, DiskInfo, plain

Search = Literal["resource-group", "subscription"]


@dataclass(frozen=True)
class VmDisk:
    """One managed disk of a VM (or of a VM restore point's metadata), as the VM attaches it."""

    name: str
    role: str  # "os" | "data"
    lun: int | None  # None for the OS disk
    disk_id: str
    caching: str | None  # None, ReadOnly, ReadWrite
    write_accelerator: bool = False

    @property
    def label(self) -> str:
        """How sentences name it: `os disk vm1-os`, `data disk (LUN 2) logs`."""
        return f"os disk {self.name}" if self.role == "os" else f"data disk (LUN {self.lun}) {self.name}"


@dataclass(frozen=True)
class VmInfo:
    """What the replicator needs of a VM; `disks` are the OS disk, then the data disks by LUN."""

    id: str
    name: str
    vm_id: str  # the VM's vmId GUID
    location: str
    size: str | None  # hardwareProfile.vmSize
    disks: tuple[VmDisk, ...]


@dataclass(frozen=True)
class CapturedDisk:
    """One disk a VM restore point holds, and its disk restore point."""

    disk: VmDisk
    disk_restore_point_id: str


@dataclass(frozen=True)
class VmRestorePoint:
    """A VM restore point: its instant, consistency mode and the disks it holds (OS first, then LUN)."""

    id: str
    name: str
    time_created: datetime
    consistency_mode: str | None
    provisioning_state: str | None
    vm_size: str | None
    disks: tuple[CapturedDisk, ...]

    @property
    def resource(self) -> arm_ids.ResourceId:
        return arm_ids.parse(self.id)


@dataclass(frozen=True)
class Collection:
    """A restore point collection of the VM; `owned`/`owner_target`: the tags --snapshot-now puts on
    the collection it creates (source.arm.OWNER_TAG, TARGET_TAG)."""

    id: str
    name: str
    resource_group: str
    owned: bool
    owner_target: str | None
    points: tuple[VmRestorePoint, ...]  # oldest first; those ARM lists, in any state


def _vm_disk(disk: Any, role: str, vm_name: str) -> VmDisk:
    managed = disk.managed_disk
    if managed is None or not managed.id:
        where = "its OS disk" if role == "os" else f"its data disk at LUN {disk.lun}"
        raise UserError(
            f"the VM {vm_name} has an unmanaged disk ({where}, {disk.name}: a VHD in a storage account); "
            "restore points, and so this tool, support managed disks only: migrate it to managed disks "
            "(az vm convert) first."
        )
    return VmDisk(
        name=disk.name or arm_ids.parse(managed.id).name,
        role=role,
        lun=disk.lun if role == "data" else None,
        disk_id=managed.id,
        caching=plain(disk.caching),
        write_accelerator=bool(disk.write_accelerator_enabled),
    )


def _disks(profile: Any, vm_name: str) -> tuple[VmDisk, ...]:
    """The OS disk, then the data disks by LUN, of a storage profile (a VM's or a restore point's)."""
    if profile is None:
        return ()
    os_disk = [_vm_disk(profile.os_disk, "os", vm_name)] if profile.os_disk else []
    data = sorted((_vm_disk(d, "data", vm_name) for d in profile.data_disks or ()), key=lambda d: d.lun or 0)
    return (*os_disk, *data)


async def read_vm(source: ArmSource, vm_id: str) -> VmInfo:
    """The VM `vm_id` and its managed disks; UserError when it does not exist or has an unmanaged disk."""
    rid = arm_ids.parse(vm_id)
    with source.arm_errors(f"read virtual machine {rid}"):
        vm = await source.compute(rid.subscription_id).virtual_machines.get(rid.resource_group, rid.name)
    name = vm.name or rid.name
    return VmInfo(
        id=vm.id or str(rid),
        name=name,
        vm_id=vm.vm_id or "",
        location=vm.location or "",
        size=plain(vm.hardware_profile.vm_size) if vm.hardware_profile else None,
        disks=_disks(vm.storage_profile, name),
    )


async def read_disks(source: ArmSource, disks: tuple[VmDisk, ...]) -> dict[str, DiskInfo]:
    """Each disk as ARM sees it now (its uniqueId, size and SKU), by disk name."""
    found = {}
    for disk in disks:
        rid = arm_ids.parse(disk.disk_id)
        found[disk.name] = await source.get_disk(rid)
    return found


def restore_point_info(point: RestorePoint, vm_name: str) -> VmRestorePoint:
    """A restore point as the replicator needs it (its disks from sourceMetadata)."""
    metadata = point.source_metadata
    profile = metadata.storage_profile if metadata else None
    captured = []
    if profile is not None:
        disks = [("os", profile.os_disk)] if profile.os_disk else []
        disks += [("data", d) for d in profile.data_disks or ()]
        for role, disk in disks:
            drp = disk.disk_restore_point
            if drp is None or not drp.id or disk.managed_disk is None:
                continue  # excluded (excludeDisks): no disk restore point
            captured.append(CapturedDisk(_vm_disk(disk, role, vm_name), drp.id))
    captured.sort(key=lambda c: (c.disk.role != "os", c.disk.lun or 0))
    return VmRestorePoint(
        id=point.id or "",
        name=point.name or "",
        time_created=point.time_created or datetime.min.replace(tzinfo=UTC),
        consistency_mode=plain(point.consistency_mode),
        provisioning_state=point.provisioning_state,
        vm_size=plain(metadata.hardware_profile.vm_size) if metadata and metadata.hardware_profile else None,
        disks=tuple(captured),
    )


def _collection(found: RestorePointCollection, vm_name: str) -> Collection:
    rid = arm_ids.parse(found.id or "")
    tags = {k.casefold(): v for k, v in (found.tags or {}).items()}
    points = sorted(
        (restore_point_info(p, vm_name) for p in found.restore_points or ()),
        key=lambda p: (p.time_created, p.name),
    )
    return Collection(
        id=found.id or "",
        name=found.name or rid.name,
        resource_group=rid.resource_group,
        owned=tags.get(OWNER_TAG) == OWNER_VALUE,
        owner_target=tags.get(TARGET_TAG),
        points=tuple(points),
    )


async def collections(source: ArmSource, vm: VmInfo, search: Search) -> list[Collection]:
    """The restore point collections whose source is `vm`, each with its restore points (`$expand`),
    where `search` says; the SDK's pager follows every nextLink."""
    rid = arm_ids.parse(vm.id)
    operations = source.compute(rid.subscription_id).restore_point_collections
    where = f"resource group {rid.resource_group}" if search == "resource-group" else "the subscription"
    mine = []
    with source.arm_errors(f"list the restore point collections of {where}"):
        pager = operations.list(rid.resource_group) if search == "resource-group" else operations.list_all()
        async for found in pager:
            if found.source is not None and arm_ids.same_resource(found.source.id, vm.id):
                mine.append(arm_ids.parse(found.id or ""))
    result = []
    for collection in mine:
        with source.arm_errors(f"read restore point collection {collection}"):
            found = await operations.get(collection.resource_group, collection.name, expand="restorePoints")
        result.append(_collection(found, vm.name))
    return result


def succeeded(points: list[VmRestorePoint]) -> list[VmRestorePoint]:
    """The restore points a group can be made of (provisioningState Succeeded), oldest first."""
    done = [p for p in points if (p.provisioning_state or "Succeeded").casefold() == "succeeded"]
    return sorted(done, key=lambda p: (p.time_created, p.name))


async def read_restore_point(source: ArmSource, point_id: str, vm_name: str) -> VmRestorePoint | None:
    """The restore point as ARM sees it now (with its sourceMetadata); None when it was deleted."""
    rid = arm_ids.parse(point_id)
    (collection,) = rid.parents
    operations = source.compute(rid.subscription_id).restore_points
    try:
        with source.arm_errors(f"read restore point {rid}"):
            point = await operations.get(rid.resource_group, collection, rid.name)
    except UserError as err:
        if isinstance(err.__cause__, ResourceNotFoundError):
            return None
        raise
    return restore_point_info(point, vm_name)
