"""VM restore points: restore point collections, restore points, and their disk restore points.

What Azure documents, and the emulator does ("Overview of Virtual Machine restore points", "Support
matrix for VM restore points", "Troubleshoot restore point failures", the Restore Points, Restore
Point Collections and Disk Restore Point REST pages):
- a collection belongs to one VM (`source.id`) in the VM's region; deleting it deletes its restore
  points;
- a restore point captures every disk of the VM not in `excludeDisks` at one instant, one disk
  restore point each, named `<disk name>_<GUID>`; underneath each is an incremental snapshot of its
  disk (backend.py's `capture`), so its SAS reads pages and diffs like a snapshot's, in the disk's
  snapshot family (familyId) and its SAS budget;
- `consistencyMode` CrashConsistent, or ApplicationConsistent (also when omitted), which needs the VM
  agent: an emulated VM has none unless the control says so (`agent_ready`), else Azure's
  VMAgentStatusCommunicationError;
- Ultra and Premium SSD v2 disks are not supported in crash-consistent mode ("Exclude these disks"):
  refused unless excluded (the code and text follow Azure's refusal of shared disks; assumed);
- limits: 3 creates per VM per hour per consistency mode (429 with Retry-After, Compute's throttling
  answer), 500 restore points per VM across collections (VMRestorePointClientError), 10,000
  collections per subscription and region (code assumed); all in `ArmLimits`;
- a restore point cannot be updated, and is not deleted while a disk restore point has an active SAS
  (DiskRestorePointUsedByCustomer);
- a disk restore point takes its disk's failover-grade properties but platform-key encryption ("The
  encryption of source disk won't be enabled on the restore point").
Where crash consistency is not guaranteed although the restore point is created (read/write host
caching, Azure Boost VM families with several data disks), Azure exposes no property; the restore
point's sourceMetadata carries each disk's caching and the VM size, from which a client can tell.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from replicator.emulator.arm import disk_profile
from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.disk_data import utc
from replicator.emulator.arm.listing import named, one_row, rows_page
from replicator.emulator.arm.model import V2_SKUS, DiskProfile, Page
from replicator.emulator.arm.vms import Vm, VmDisk, Vms
from replicator.emulator.errors import arm as arm_errors

CRASH = "CrashConsistent"
APPLICATION = "ApplicationConsistent"
_MODES = {CRASH.lower(): CRASH, APPLICATION.lower(): APPLICATION}

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections(
    rg_key TEXT NOT NULL, name_key TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
    location TEXT NOT NULL, region TEXT NOT NULL, source_vm TEXT NOT NULL, source_location TEXT NOT NULL,
    collection_id TEXT NOT NULL, tags TEXT NOT NULL, PRIMARY KEY (rg_key, name_key));
CREATE TABLE IF NOT EXISTS restore_points(
    rg_key TEXT NOT NULL, rpc_key TEXT NOT NULL, name_key TEXT NOT NULL, name TEXT NOT NULL,
    vm_id TEXT NOT NULL, consistency TEXT NOT NULL, excluded TEXT NOT NULL, metadata TEXT NOT NULL,
    time_created REAL NOT NULL, PRIMARY KEY (rg_key, rpc_key, name_key));
CREATE TABLE IF NOT EXISTS disk_restore_points(
    rg_key TEXT NOT NULL, rpc_key TEXT NOT NULL, rp_key TEXT NOT NULL, name_key TEXT NOT NULL,
    name TEXT NOT NULL, unique_id TEXT NOT NULL UNIQUE, location TEXT NOT NULL, disk_id TEXT NOT NULL,
    disk_unique_id TEXT NOT NULL, disk_sku TEXT NOT NULL, family_id TEXT NOT NULL,
    blob_snapshot TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, sector_size INTEGER NOT NULL, time_created REAL NOT NULL,
    PRIMARY KEY (rg_key, rpc_key, rp_key, name_key));
"""


@dataclass(frozen=True)
class Collection:
    id: str
    resource_group: str
    name: str
    location: str
    source_vm: str  # the VM's ARM ID
    source_location: str
    collection_id: str  # restorePointCollectionId, a GUID
    tags: dict[str, str]


@dataclass(frozen=True)
class CapturedDisk:
    """A disk as the restore point's sourceMetadata has it, with its disk restore point's ID."""

    role: str  # "os" or "data"
    lun: int | None
    name: str
    disk_id: str
    sku: str
    size_gb: int
    caching: str
    os_type: str | None
    disk_restore_point: str


@dataclass(frozen=True)
class RestorePoint:
    id: str
    name: str
    consistency_mode: str
    exclude_disks: tuple[str, ...]
    time_created: datetime
    vm_id: str  # the VM's vmId when it was captured
    vm_size: str
    location: str
    security_type: str | None
    disk_controller_type: str | None
    hyper_v_generation: str | None
    disks: tuple[CapturedDisk, ...]  # OS disk first, then data disks by LUN


@dataclass(frozen=True)
class DiskRestorePoint:
    id: str
    name: str
    unique_id: str
    location: str
    source_resource_id: str
    source_unique_id: str
    family_id: str
    sector_size: int
    time_created: datetime
    completion_percent: float
    profile: DiskProfile


class RestorePoints:
    """Collections, restore points and disk restore points in arm.sqlite; data through ArmBackend."""

    def __init__(self, arm: ArmBackend, vms: Vms, agent_ready: Callable[[], bool]) -> None:
        """`agent_ready`: whether emulated VMs report a VM agent (application consistency needs one)."""
        self.arm = arm
        self.vms = vms
        self.agent_ready = agent_ready
        self._db = arm.db
        self._db.executescript(SCHEMA)

    # --- collections ------------------------------------------------------------------------

    def put_collection(
        self,
        resource_group: str,
        name: str,
        location: str,
        source_id: str | None,
        tags: dict[str, str] | None,
    ) -> tuple[Collection, bool]:
        """Create (True) or update the tags of (False) a local collection of a VM."""
        row = self._collection_row(resource_group, name)
        arm_id = self.arm.resource_id("restorePointCollections", resource_group, name)
        if row is not None:
            if source_id is not None and source_id.lower() != row["source_vm"].lower():
                raise arm_errors.property_change_not_allowed(target="source.id", resource=arm_id)
            if tags is not None:
                self._db.execute("UPDATE collections SET tags=? WHERE collection_id=?",
                                 (json.dumps(tags), row["collection_id"]))  # fmt: skip
            return self.get_collection(resource_group, name), False
        if not source_id:
            raise arm_errors.invalid_parameter(
                target="properties.source.id", detail="Required parameter 'source.id' is missing (null)."
            )
        vm = self.vms.by_id(source_id, "properties.source.id")
        region = _region(location)
        if region != _region(vm.location):
            raise arm_errors.invalid_parameter(
                target="location",
                detail=f"The collection must be in its VM's location ({vm.location}): cross-region "
                "collections (copies of restore points) are not emulated.",
            )
        count = self._db.execute(
            "SELECT COUNT(*) AS n FROM collections WHERE region=?", (region,)
        ).fetchone()["n"]
        if count >= self.arm.limits.collections_per_region:
            raise arm_errors.collections_per_region(
                resource=arm_id, limit=self.arm.limits.collections_per_region, location=location
            )
        self._db.execute(
            "INSERT INTO collections VALUES (?,?,?,?,?,?,?,?,?,?)",
            (resource_group.lower(), name.lower(), resource_group, name, location, region, vm.id, vm.location,
             str(uuid.uuid4()), json.dumps(tags or {})),
        )  # fmt: skip
        return self.get_collection(resource_group, name), True

    def get_collection(self, resource_group: str, name: str) -> Collection:
        row = self._collection_row(resource_group, name)
        if row is None:
            raise arm_errors.resource_not_found(
                type="restorePointCollections", name=name, group=resource_group
            )
        return self._collection(row)

    def list_collections(self, resource_group: str | None, skip_token: str | None) -> Page:
        scope = {} if resource_group is None else {"rg_key": resource_group.lower()}
        rows, next_key = rows_page(self._db, "collections", scope, skip_token, self.arm.limits.page_size)
        return Page([self._collection(row) for row in rows], next_key)

    def points_of(self, resource_group: str, collection: str) -> list[RestorePoint]:
        rows = self._db.execute(
            "SELECT * FROM restore_points WHERE rg_key=? AND rpc_key=? ORDER BY time_created, name_key",
            (resource_group.lower(), collection.lower()),
        ).fetchall()
        return [self._point(row) for row in rows]

    def delete_collection(self, resource_group: str, name: str) -> bool:
        """Delete the collection and every restore point in it; False if there was none."""
        row = self._collection_row(resource_group, name)
        if row is None:
            return False
        points = self.points_of(resource_group, name)
        for point in points:
            self._check_no_sas(resource_group, name, point.name)
        for point in points:
            self.delete_point(resource_group, name, point.name)
        self._db.execute("DELETE FROM collections WHERE collection_id=?", (row["collection_id"],))
        return True

    # --- restore points ---------------------------------------------------------------------

    def create_point(
        self, resource_group: str, collection: str, name: str, mode: str | None, exclude: tuple[str, ...]
    ) -> RestorePoint:
        """Capture every disk of the collection's VM not excluded, at one instant."""
        rpc = self.get_collection(resource_group, collection)
        arm_id = f"{rpc.id}/restorePoints/{name}"
        if self._point_row(resource_group, collection, name) is not None:
            raise arm_errors.restore_point_exists(resource=arm_id)
        consistency = _MODES.get((mode or APPLICATION).lower())
        if consistency is None:
            raise arm_errors.invalid_parameter(
                target="properties.consistencyMode",
                detail=f"consistencyMode '{mode}' is not accepted: {CRASH} or {APPLICATION}.",
            )
        vm = self.vms.by_id(rpc.source_vm, "properties.source.id")
        disks = self._included(vm, exclude)
        if consistency == CRASH:
            for attached in disks:
                if attached.disk.sku in V2_SKUS:
                    raise arm_errors.crash_consistency_unsupported(
                        sku=attached.disk.sku, disk=attached.disk.id
                    )
        elif not self.agent_ready():
            raise arm_errors.vm_agent_not_reporting(vm=vm.name)
        now = self.arm.clock()
        self._check_limits(vm, consistency, now)
        captured = []
        for attached in disks:  # one instant: nothing else runs between these captures
            drp_name = f"{attached.disk.name}_{uuid.uuid4()}"
            unique_id, blob_snapshot = self.arm.capture(attached.disk)
            disk = attached.disk
            self._db.execute(
                "INSERT INTO disk_restore_points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (resource_group.lower(), collection.lower(), name.lower(), drp_name.lower(), drp_name,
                 unique_id, rpc.location, disk.id, disk.unique_id, disk.sku, disk.family_id, blob_snapshot,
                 disk.size_bytes, disk.sector_size, now),
            )  # fmt: skip
            self.arm.save_profile(unique_id, disk_profile.of_restore_point(disk.profile))
            captured.append(
                CapturedDisk(
                    role="data" if attached.lun is not None else "os",
                    lun=attached.lun,
                    name=disk.name,
                    disk_id=disk.id,
                    sku=disk.sku,
                    size_gb=disk.size_gb,
                    caching=attached.caching,
                    os_type=attached.os_type,
                    disk_restore_point=f"{arm_id}/diskRestorePoints/{drp_name}",
                )
            )
        metadata = {
            "vm_size": vm.vm_size, "location": vm.location, "security_type": vm.security_type,
            "disk_controller_type": vm.disk_controller_type,
            "hyper_v_generation": vm.os_disk.disk.profile.hyper_v_generation,
            "disks": [asdict(disk) for disk in captured],
        }  # fmt: skip
        self._db.execute(
            "INSERT INTO restore_points VALUES (?,?,?,?,?,?,?,?,?)",
            (resource_group.lower(), collection.lower(), name.lower(), name, vm.vm_id, consistency,
             json.dumps(list(exclude)), json.dumps(metadata), now),
        )  # fmt: skip
        self.arm.creations.record(f"{vm.vm_id}/{consistency}", now)
        return self.get_point(resource_group, collection, name)

    def get_point(self, resource_group: str, collection: str, name: str) -> RestorePoint:
        row = self._point_row(resource_group, collection, name)
        if row is None:
            self.get_collection(resource_group, collection)
            raise arm_errors.resource_not_found(
                type=f"restorePointCollections/{collection}/restorePoints", name=name, group=resource_group
            )
        return self._point(row)

    def delete_point(self, resource_group: str, collection: str, name: str) -> bool:
        """Delete a restore point and its disk restore points' data; False if there was none."""
        if self._point_row(resource_group, collection, name) is None:
            return False
        self._check_no_sas(resource_group, collection, name)
        for row in self._disk_point_rows(resource_group, collection, name):
            self.arm.grants.forget(row["unique_id"])
            self.arm.release(row["unique_id"], row["disk_unique_id"], row["blob_snapshot"])
        keys = (resource_group.lower(), collection.lower(), name.lower())
        self._db.execute("DELETE FROM disk_restore_points WHERE rg_key=? AND rpc_key=? AND rp_key=?", keys)
        self._db.execute("DELETE FROM restore_points WHERE rg_key=? AND rpc_key=? AND name_key=?", keys)
        return True

    # --- disk restore points ----------------------------------------------------------------

    def get_disk_point(self, resource_group: str, collection: str, point: str, name: str) -> DiskRestorePoint:
        keys = {"rg_key": resource_group, "rpc_key": collection, "rp_key": point, "name_key": name}
        row = one_row(self._db, "disk_restore_points", {k: v.lower() for k, v in keys.items()})
        if row is None:
            self.get_point(resource_group, collection, point)
            raise arm_errors.resource_not_found(
                type=f"restorePointCollections/{collection}/restorePoints/{point}/diskRestorePoints",
                name=name,
                group=resource_group,
            )
        return self._disk_point(row)

    def list_disk_points(
        self, resource_group: str, collection: str, point: str, skip_token: str | None
    ) -> Page:
        self.get_point(resource_group, collection, point)
        scope = {"rg_key": resource_group.lower(), "rpc_key": collection.lower(), "rp_key": point.lower()}
        rows, next_key = rows_page(
            self._db, "disk_restore_points", scope, skip_token, self.arm.limits.page_size, order=("name_key",)
        )
        return Page([self._disk_point(row) for row in rows], next_key)

    def grant_disk_point(
        self, resource_group: str, collection: str, point: str, name: str, access: str, duration_seconds: int
    ) -> str:
        drp = self.get_disk_point(resource_group, collection, point, name)
        return self.arm.grants.grant_frozen(
            drp.id, drp.unique_id, drp.family_id, drp.completion_percent, access, duration_seconds
        )

    def revoke_disk_point(self, resource_group: str, collection: str, point: str, name: str) -> None:
        self.arm.grants.revoke(self.get_disk_point(resource_group, collection, point, name).unique_id)

    def is_disk_restore_point(self, container: str) -> bool:
        """Whether a blob-plane container holds a disk restore point's data (its unique ID)."""
        query = "SELECT 1 FROM disk_restore_points WHERE unique_id=?"
        return self._db.execute(query, (container,)).fetchone() is not None

    # --- internals --------------------------------------------------------------------------

    def _included(self, vm: Vm, exclude: tuple[str, ...]) -> list[VmDisk]:
        excluded = {disk_id.lower() for disk_id in exclude}
        own = {attached.disk.id.lower() for attached in vm.disks}
        for disk_id in exclude:
            if disk_id.lower() not in own:
                raise arm_errors.invalid_parameter(
                    target="properties.excludeDisks",
                    detail=f"excludeDisks names {disk_id}, which is not a disk of VM {vm.id}.",
                )
        disks = [attached for attached in vm.disks if attached.disk.id.lower() not in excluded]
        if not disks:
            raise arm_errors.invalid_parameter(
                target="properties.excludeDisks",
                detail=f"excludeDisks leaves no disk of VM {vm.id} to capture.",
            )
        return disks

    def _check_limits(self, vm: Vm, mode: str, now: float) -> None:
        limits = self.arm.limits
        total = self._db.execute(
            "SELECT COUNT(*) AS n FROM restore_points WHERE vm_id=?", (vm.vm_id,)
        ).fetchone()["n"]
        if total >= limits.restore_points_per_vm:
            raise arm_errors.restore_points_per_vm()
        window = limits.restore_point_window_seconds
        full = self.arm.creations.full(f"{vm.vm_id}/{mode}", now, limits.restore_points_per_window, window)
        if full is not None:
            raise arm_errors.throttled(
                policy=f"Create{mode}RestorePoint{window // 60}Min",
                retry_after=full.retry_after,
                allowed=limits.restore_points_per_window,
                measured=full.count + 1,
                start=utc(now - window).isoformat(),
                end=utc(now).isoformat(),
            )

    def _check_no_sas(self, resource_group: str, collection: str, point: str) -> None:
        for row in self._disk_point_rows(resource_group, collection, point):
            if self.arm.grants.active(row["unique_id"]):
                raise arm_errors.disk_restore_point_in_use(resource=self._disk_point(row).id)

    def _collection_row(self, resource_group: str, name: str) -> sqlite3.Row | None:
        return one_row(self._db, "collections", named(resource_group, name))

    def _point_row(self, resource_group: str, collection: str, name: str) -> sqlite3.Row | None:
        keys = {"rg_key": resource_group.lower(), "rpc_key": collection.lower(), "name_key": name.lower()}
        return one_row(self._db, "restore_points", keys)

    def _disk_point_rows(self, resource_group: str, collection: str, point: str) -> list[sqlite3.Row]:
        return self._db.execute(
            "SELECT * FROM disk_restore_points WHERE rg_key=? AND rpc_key=? AND rp_key=?",
            (resource_group.lower(), collection.lower(), point.lower()),
        ).fetchall()

    def _collection(self, row: sqlite3.Row) -> Collection:
        return Collection(
            id=self.arm.resource_id("restorePointCollections", row["resource_group"], row["name"]),
            resource_group=row["resource_group"],
            name=row["name"],
            location=row["location"],
            source_vm=row["source_vm"],
            source_location=row["source_location"],
            collection_id=row["collection_id"],
            tags=json.loads(row["tags"]),
        )

    def _point(self, row: sqlite3.Row) -> RestorePoint:
        collection = self._collection_row(row["rg_key"], row["rpc_key"])
        assert collection is not None  # a collection's restore points go with it
        metadata = json.loads(row["metadata"])
        rpc_id = self.arm.resource_id(
            "restorePointCollections", collection["resource_group"], collection["name"]
        )
        return RestorePoint(
            id=f"{rpc_id}/restorePoints/{row['name']}",
            name=row["name"],
            consistency_mode=row["consistency"],
            exclude_disks=tuple(json.loads(row["excluded"])),
            time_created=utc(row["time_created"]),
            vm_id=row["vm_id"],
            vm_size=metadata["vm_size"],
            location=metadata["location"],
            security_type=metadata["security_type"],
            disk_controller_type=metadata["disk_controller_type"],
            hyper_v_generation=metadata["hyper_v_generation"],
            disks=tuple(CapturedDisk(**disk) for disk in metadata["disks"]),
        )

    def _disk_point(self, row: sqlite3.Row) -> DiskRestorePoint:
        point = self._point_row(row["rg_key"], row["rpc_key"], row["rp_key"])
        assert point is not None  # a restore point's disk restore points go with it
        return DiskRestorePoint(
            id=f"{self._point(point).id}/diskRestorePoints/{row['name']}",
            name=row["name"],
            unique_id=row["unique_id"],
            location=row["location"],
            source_resource_id=row["disk_id"],
            source_unique_id=row["disk_unique_id"],
            family_id=row["family_id"],
            sector_size=row["sector_size"],
            time_created=utc(row["time_created"]),
            completion_percent=self.arm.completion(row["disk_sku"], True, row["time_created"]),
            profile=self.arm.profile(row["unique_id"]),
        )


def _region(location: str) -> str:
    return location.replace(" ", "").lower()
