"""Virtual machines, as far as their disks go: which managed disks a VM has (OS disk, data disks by
LUN, host caching), its size, zone and security type, and the attach rules ARM applies.

Why VMs at all: a VM restore point (restore_points.py) captures every disk of a VM at one instant,
and a restored VM needs its disks' roles and order. No compute runs: a VM is a record, its disks
are written through their Write grant (the emulator's stand-in for the VM's own writes, see
backend.py), and it is always "running" (no power state, no agent unless the restore points'
control says so).

Attaching (Virtual Machines - Create Or Update, createOption Attach) sets the disk's managedBy and
diskState Attached; what ARM refuses is refused with its code and text ("Understand common error
messages when you manage virtual machines in Azure"): a disk owned by another VM (ConflictingUserInput),
two disks at one LUN (InvalidParameter), a disk outside the VM's zone (BadRequest, the texts Azure
answers), a disk of another region (404 ResourceNotFound: the regional provider does not see it, as
a snapshot's source disk of another region is not found), an OS disk whose security type is not the
VM's (BadRequest). Deleting a VM detaches its disks (deleteOption Detach, Azure's default).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from replicator.emulator.arm import disk_profile, ids, uploads
from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.disk_data import utc
from replicator.emulator.arm.listing import named, one_row, rows_page
from replicator.emulator.arm.model import Disk, Page
from replicator.emulator.errors import arm as arm_errors

CACHING = ("None", "ReadOnly", "ReadWrite")
VM_SECURITY_TYPES = ("Standard", "TrustedLaunch", "ConfidentialVM")
MAX_LUN = 63

SCHEMA = """
CREATE TABLE IF NOT EXISTS vms(
    rg_key TEXT NOT NULL, name_key TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
    location TEXT NOT NULL, vm_id TEXT NOT NULL UNIQUE, time_created REAL NOT NULL, spec TEXT NOT NULL,
    PRIMARY KEY (rg_key, name_key));
"""


@dataclass(frozen=True)
class DiskAttachment:
    """One disk of a VM PUT body (storageProfile.osDisk or an entry of dataDisks)."""

    disk_id: str
    create_option: str = "Attach"
    caching: str | None = None  # None: ReadWrite for the OS disk, None for data disks (Azure's defaults)
    lun: int | None = None  # data disks only
    os_type: str | None = None  # OS disk only; none: the disk's osType


@dataclass(frozen=True)
class VmSpec:
    """A parsed VM PUT body."""

    location: str
    vm_size: str | None
    os_disk: DiskAttachment | None
    data_disks: tuple[DiskAttachment, ...] = ()
    zones: tuple[str, ...] = ()
    security_type: str | None = None  # securityProfile.securityType; none: Standard
    disk_controller_type: str | None = None  # storageProfile.diskControllerType
    tags: dict[str, str] | None = None


@dataclass(frozen=True)
class VmDisk:
    """A disk as the VM has it: the disk now, its role and host caching."""

    disk: Disk
    caching: str
    lun: int | None  # None for the OS disk
    os_type: str | None


@dataclass(frozen=True)
class Vm:
    id: str
    resource_group: str
    name: str
    location: str
    vm_id: str  # a GUID, new at every create
    time_created: datetime
    vm_size: str
    zones: tuple[str, ...]
    security_type: str | None
    disk_controller_type: str | None
    tags: dict[str, str]
    os_disk: VmDisk
    data_disks: tuple[VmDisk, ...]  # by LUN

    @property
    def disks(self) -> tuple[VmDisk, ...]:
        """OS disk first, then data disks by LUN: the order a restored VM attaches them in."""
        return (self.os_disk, *self.data_disks)


class Vms:
    """The vms table of arm.sqlite; attachments are the ArmBackend's (a disk's managedBy)."""

    def __init__(self, arm: ArmBackend) -> None:
        self.arm = arm
        self._db = arm.db
        self._db.executescript(SCHEMA)

    def put(self, resource_group: str, name: str, spec: VmSpec) -> Vm:
        """Create, or update an existing VM's data disks and tags (its OS disk, place and size stay)."""
        row = self._row(resource_group, name)
        vm_id = str(uuid.uuid4()) if row is None else row["vm_id"]
        arm_id = self.arm.resource_id("virtualMachines", resource_group, name)
        old: list[VmDisk] = [] if row is None else list(self._model(row).disks)
        if row is not None:
            spec = self._updated(self._model(row), spec)
        disks = self._checked(arm_id, name, spec)
        stored = replace(spec, os_disk=disks[0], data_disks=tuple(disks[1:]))
        created = self.arm.clock() if row is None else row["time_created"]
        self._db.execute(
            "INSERT OR REPLACE INTO vms VALUES (?,?,?,?,?,?,?,?)",
            (resource_group.lower(), name.lower(), resource_group, name, spec.location, vm_id, created,
             json.dumps(_spec_json(stored))),
        )  # fmt: skip
        kept = {d.disk_id.lower() for d in disks}
        for gone in old:
            if gone.disk.id.lower() not in kept:
                self.arm.attach(gone.disk, None)
        for attachment in disks:
            self.arm.attach(self.arm.disk_by_id(attachment.disk_id, "managedDisk.id"), arm_id)
        return self.get(resource_group, name)

    def get(self, resource_group: str, name: str) -> Vm:
        vm = self.get_or_none(resource_group, name)
        if vm is None:
            raise arm_errors.resource_not_found(type="virtualMachines", name=name, group=resource_group)
        return vm

    def get_or_none(self, resource_group: str, name: str) -> Vm | None:
        row = self._row(resource_group, name)
        return None if row is None else self._model(row)

    def by_id(self, resource_id: str, target: str) -> Vm:
        parsed = ids.parse(resource_id)
        if parsed is None or not parsed.is_a("virtualMachines", self.arm.subscription_id):
            raise arm_errors.invalid_parameter(
                target=target,
                detail=f"'{resource_id}' is not a Microsoft.Compute/virtualMachines resource ID of "
                f"subscription {self.arm.subscription_id}.",
            )
        return self.get(parsed.resource_group, parsed.name)

    def list(self, resource_group: str | None, skip_token: str | None) -> Page:
        scope = {} if resource_group is None else {"rg_key": resource_group.lower()}
        rows, next_key = rows_page(self._db, "vms", scope, skip_token, self.arm.limits.page_size)
        return Page([self._model(row) for row in rows], next_key)

    def delete(self, resource_group: str, name: str) -> bool:
        """Detach the VM's disks (Azure's default deleteOption) and forget it; False if it was not there."""
        row = self._row(resource_group, name)
        if row is None:
            return False
        for attached in self._model(row).disks:
            self.arm.attach(attached.disk, None)
        self._db.execute("DELETE FROM vms WHERE vm_id=?", (row["vm_id"],))
        return True

    # --- internals ------------------------------------------------------------------------

    def _row(self, resource_group: str, name: str) -> sqlite3.Row | None:
        return one_row(self._db, "vms", named(resource_group, name))

    def _updated(self, vm: Vm, spec: VmSpec) -> VmSpec:
        """What a PUT on an existing VM may change: data disks, caching, tags."""
        if spec.os_disk is not None and spec.os_disk.disk_id.lower() != vm.os_disk.disk.id.lower():
            raise arm_errors.os_disk_change(vm=vm.id)
        if spec.location.replace(" ", "").lower() != vm.location.replace(" ", "").lower():
            raise arm_errors.property_change_not_allowed(target="location", resource=vm.id)
        if spec.zones and spec.zones != vm.zones:
            raise arm_errors.property_change_not_allowed(target="zones", resource=vm.id)
        os_disk = spec.os_disk or DiskAttachment(vm.os_disk.disk.id, caching=vm.os_disk.caching)
        return replace(
            spec,
            os_disk=os_disk,
            zones=vm.zones,
            vm_size=spec.vm_size or vm.vm_size,
            security_type=spec.security_type or vm.security_type,
            tags=vm.tags if spec.tags is None else spec.tags,
        )

    def _checked(self, arm_id: str, name: str, spec: VmSpec) -> list[DiskAttachment]:
        """Every disk of `spec` checked as ARM attaches it to the VM `arm_id`."""
        if not spec.vm_size:
            raise arm_errors.invalid_parameter(
                target="hardwareProfile.vmSize",
                detail="Required parameter 'hardwareProfile.vmSize' is missing.",
            )
        if spec.os_disk is None:
            raise arm_errors.invalid_parameter(
                target="storageProfile.osDisk",
                detail="Required parameter 'storageProfile.osDisk' is missing.",
            )
        security = _choice(
            spec.security_type or "Standard", VM_SECURITY_TYPES, "securityProfile.securityType"
        )
        disk_profile.check_zones(spec.zones, f"Microsoft.Compute/virtualMachines/{name}", spec.location)
        out: list[DiskAttachment] = []
        luns: set[int] = set()
        for attachment in (spec.os_disk, *spec.data_disks):
            is_os = attachment is spec.os_disk
            disk = self._attachable(attachment, arm_id, spec)
            if any(disk.id.lower() == done.disk_id.lower() for done in out):
                raise arm_errors.invalid_parameter(
                    target="storageProfile", detail=f"A disk named '{disk.name}' already exists."
                )
            caching = _choice(attachment.caching or ("ReadWrite" if is_os else "None"), CACHING, "caching")
            if is_os:
                os_type = attachment.os_type or disk.profile.os_type
                if os_type is None:
                    raise arm_errors.invalid_parameter(
                        target="storageProfile.osDisk.osType",
                        detail="Required parameter 'osDisk.osType' is missing (the disk has no osType).",
                    )
                _check_security(security, disk)
                os_type = _choice(os_type, ("Windows", "Linux"), "osDisk.osType")
                out.append(replace(attachment, disk_id=disk.id, caching=caching, os_type=os_type))
                continue
            lun = attachment.lun
            if lun is None or not 0 <= lun <= MAX_LUN:
                raise arm_errors.invalid_parameter(
                    target="dataDisks.lun",
                    detail=f"Each data disk needs a LUN from 0 to {MAX_LUN}, not {lun}.",
                )
            if lun in luns:
                raise arm_errors.lun_in_use(lun=lun)
            luns.add(lun)
            out.append(replace(attachment, disk_id=disk.id, caching=caching))
        out[1:] = sorted(out[1:], key=lambda d: d.lun or 0)
        return out

    def _attachable(self, attachment: DiskAttachment, arm_id: str, spec: VmSpec) -> Disk:
        if attachment.create_option.lower() != "attach":
            raise arm_errors.invalid_parameter(
                target="createOption",
                detail=f"createOption '{attachment.create_option}' is not emulated (Attach is).",
            )
        disk = self.arm.disk_by_id(attachment.disk_id, "managedDisk.id")
        if disk.location.replace(" ", "").lower() != spec.location.replace(" ", "").lower():
            raise arm_errors.resource_not_found(type="disks", name=disk.name, group=disk.resource_group)
        if disk.managed_by and disk.managed_by.lower() != arm_id.lower():
            raise arm_errors.disk_owned_by_vm(disk=disk.id, vm=disk.managed_by)
        if disk.disk_state in (uploads.READY, uploads.ACTIVE):  # its upload is not finished
            raise arm_errors.upload_not_finished(resource=disk.id, state=disk.disk_state, operation="attach")
        vm_zone = spec.zones[0] if spec.zones else ""
        disk_zone = disk.profile.zones[0] if disk.profile.zones else ""
        if vm_zone and not disk_zone:
            raise arm_errors.disk_not_in_vm_zone(disk=disk.id, zone=vm_zone)
        if vm_zone != disk_zone:
            raise arm_errors.disk_zone_mismatch(disk=disk.id, vm_zone=vm_zone, disk_zone=disk_zone)
        return disk

    def _model(self, row: sqlite3.Row) -> Vm:
        spec = json.loads(row["spec"])

        def attached(entry: dict[str, object]) -> VmDisk:
            disk = self.arm.disk_by_id(str(entry["disk_id"]), "managedDisk.id")
            return VmDisk(disk, str(entry["caching"]), entry.get("lun"), entry.get("os_type"))  # type: ignore[arg-type]

        return Vm(
            id=self.arm.resource_id("virtualMachines", row["resource_group"], row["name"]),
            resource_group=row["resource_group"],
            name=row["name"],
            location=row["location"],
            vm_id=row["vm_id"],
            time_created=utc(row["time_created"]),
            vm_size=spec["vm_size"],
            zones=tuple(spec["zones"]),
            security_type=spec["security_type"],
            disk_controller_type=spec["disk_controller_type"],
            tags=spec["tags"] or {},
            os_disk=attached(spec["os_disk"]),
            data_disks=tuple(attached(entry) for entry in spec["data_disks"]),
        )


def _spec_json(spec: VmSpec) -> dict[str, object]:
    def attachment(a: DiskAttachment) -> dict[str, object]:
        return {"disk_id": a.disk_id, "caching": a.caching, "lun": a.lun, "os_type": a.os_type}

    assert spec.os_disk is not None
    return {
        "vm_size": spec.vm_size, "zones": list(spec.zones), "security_type": spec.security_type,
        "disk_controller_type": spec.disk_controller_type, "tags": spec.tags,
        "os_disk": attachment(spec.os_disk), "data_disks": [attachment(a) for a in spec.data_disks],
    }  # fmt: skip


def _choice(value: str, allowed: tuple[str, ...], target: str) -> str:
    spelled = {choice.lower(): choice for choice in allowed}.get(value.lower())
    if spelled is None:
        raise arm_errors.invalid_parameter(
            target=target, detail=f"'{value}' is not a valid {target}: one of {', '.join(allowed)}."
        )
    return spelled


def _check_security(vm_security: str, os_disk: Disk) -> None:
    """A Trusted launch VM boots a Trusted launch OS disk, a confidential VM a confidential one, and a
    Standard VM neither (Azure's "Security type of VM is not compatible with the security type of
    attached OS Disk.")."""
    disk_type = os_disk.profile.security_type or ""
    disk_family = (
        "TrustedLaunch" if disk_type == "TrustedLaunch" else "ConfidentialVM" if disk_type else "Standard"
    )
    if disk_family != vm_security:
        raise arm_errors.vm_security_type_mismatch()
