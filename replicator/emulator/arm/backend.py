"""Microsoft.Compute disks and snapshots, their SAS grants and limits, persisted (no HTTP here).

State lives in `DIR/arm.sqlite` so it survives a restart; disk and snapshot *data* live in the
blob plane (`BlobBackend`), one md-* account and container per resource, blob `abcd`, as Azure lays
them out behind a managed-disk SAS:

- a disk is a page blob; a 512-byte-sector disk is a fixed VHD (data + 512-byte footer), a
  4096-byte-sector disk is raw data;
- an incremental snapshot is a blob snapshot of the disk's blob, exposed read-only under the
  snapshot's own container, so diffs between snapshots of one disk find their common lineage;
- a full snapshot is a copy-on-write copy (its own lineage).

It answers in the typed model of model.py; every refusal is an `ArmError` from errors/arm.py.
Limits are an `ArmLimits` so tests can shrink them. What a disk's blob holds (VHD footer, sizes,
grow, import) is disk_data.py's.
A disk's failover-grade properties (its `DiskProfile`: rules in disk_profile.py) are a JSON row of
`profiles`; the VM a disk is attached to is a row of `attachments` (vms.py attaches). Disk restore
points (restore_points.py) are frozen versions like incremental snapshots: `capture`, `release` and
grants.py's `grant_frozen` are the snapshot machinery both use.
Not faithful (see docs/emulator.md): operations finish at once, resource groups exist implicitly.

Disks and snapshots stay in one module: they refer to each other (a snapshot's family, limits and
blob are its disk's) in one database, so their rules read best side by side; what they share is
written once ("disks and snapshots alike"). Grants (grants.py), the profile rules (disk_profile.py)
and disk encryption sets (encryption_sets.py) live beside it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replicator.emulator.arm import disk_profile, ids
from replicator.emulator.arm.creation_log import CreationLog
from replicator.emulator.arm.disk_data import (
    DiskData,
    checked_size,
    sector_size,
    tail,
    utc,
)
from replicator.emulator.arm.encryption_sets import EncryptionSets
from replicator.emulator.arm.grants import Grants
from replicator.emulator.arm.listing import named, one_row, rows_page
from replicator.emulator.arm.model import (
    SKUS,
    V2_SKUS,
    ArmLimits,
    DataLocation,
    Disk,
    DiskProfile,
    DiskSpec,
    DiskUpdate,
    Page,
    Snapshot,
    SnapshotSpec,
)
from replicator.emulator.arm.uploads import Uploads, disk_size
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.errors import arm as arm_errors

OPERATION_RETENTION_SECONDS = 3600  # finished LRO records older than this are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS disks(
    rg_key TEXT NOT NULL, name_key TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
    location TEXT NOT NULL, sku TEXT NOT NULL, size_bytes INTEGER NOT NULL, original_size INTEGER NOT NULL,
    sector_size INTEGER NOT NULL, unique_id TEXT NOT NULL UNIQUE, family_id TEXT NOT NULL,
    time_created REAL NOT NULL, create_option TEXT NOT NULL, source_uri TEXT, storage_account_id TEXT,
    tags TEXT NOT NULL, data_access_auth_mode TEXT, PRIMARY KEY (rg_key, name_key));
CREATE TABLE IF NOT EXISTS snapshots(
    rg_key TEXT NOT NULL, name_key TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
    location TEXT NOT NULL, sku TEXT NOT NULL, incremental INTEGER NOT NULL, family_id TEXT,
    source_resource_id TEXT NOT NULL, source_unique_id TEXT NOT NULL, source_sku TEXT NOT NULL,
    sector_size INTEGER NOT NULL, size_bytes INTEGER NOT NULL, unique_id TEXT NOT NULL UNIQUE,
    time_created REAL NOT NULL, blob_snapshot TEXT NOT NULL, tags TEXT NOT NULL,
    data_access_auth_mode TEXT, PRIMARY KEY (rg_key, name_key));
CREATE TABLE IF NOT EXISTS profiles(unique_id TEXT PRIMARY KEY, profile TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments(disk_unique_id TEXT PRIMARY KEY, vm_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations(id TEXT PRIMARY KEY, output TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS failed_operations(id TEXT PRIMARY KEY, error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failed_snapshots(unique_id TEXT PRIMARY KEY);
"""

_COLUMNS_AS_IS = ("resource_group", "name", "location", "sku", "size_bytes", "sector_size", "unique_id",
                  "family_id", "data_access_auth_mode")  # fmt: skip
"""The `Resource` fields that disks and snapshots rows both store as they are."""


@dataclass
class ArmBackend:
    """Disks, snapshots, grants and LRO records of one subscription, persisted in SQLite."""

    db_path: Path
    blobs: BlobBackend
    subscription_id: str
    limits: ArmLimits = field(default_factory=ArmLimits)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._db = sqlite3.connect(self.db_path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        for kind in ("disks", "snapshots"):  # a data dir from before dataAccessAuthMode (issue 13)
            if "data_access_auth_mode" not in {
                r["name"] for r in self._db.execute(f"PRAGMA table_info({kind})")
            }:
                self._db.execute(f"ALTER TABLE {kind} ADD COLUMN data_access_auth_mode TEXT")
        self._data = DiskData(self.blobs)
        self.encryption_sets = EncryptionSets(self._db, self.resource_id, self.subscription_id)
        self.grants = Grants(self._db, self.blobs, self.limits, self.clock)
        self.creations = CreationLog(self._db)
        self.uploads = Uploads(self._db)

    @property
    def db(self) -> sqlite3.Connection:
        """The one connection to arm.sqlite, shared with vms.py and restore_points.py."""
        return self._db

    def close(self) -> None:
        self._db.close()

    # --- ids --------------------------------------------------------------------------------

    def resource_id(self, kind: str, resource_group: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.Compute/{kind}/{name}"
        )

    # --- disks ------------------------------------------------------------------------------

    def put_disk(self, resource_group: str, name: str, spec: DiskSpec) -> Disk:
        """Create, or (PUT on an existing disk) update size and tags as Azure's createOrUpdate does."""
        if self._row("disks", resource_group, name) is not None:
            update = DiskUpdate(spec.size_gb, spec.sku, spec.tags, spec.data_access_auth_mode)
            return self.update_disk(resource_group, name, update)
        if spec.sku not in SKUS:
            raise arm_errors.invalid_parameter(
                target="sku.name", detail=f"The disk sku '{spec.sku}' is not supported."
            )
        sector = sector_size(spec)
        profile = self.checked_profile(spec.profile, "disks", name, spec.location, spec.create_option)
        unique_id = str(uuid.uuid4())
        where = DataLocation.of(unique_id)
        now = self.clock()
        if spec.create_option == "Empty":
            if spec.size_gb is None:
                raise arm_errors.invalid_parameter(
                    target="diskSizeGB",
                    detail="Required parameter 'diskSizeGB' is missing (null) for createOption Empty.",
                )
            size = checked_size(spec.sku, spec.size_gb)
            self._data.create_empty(where, sector, size, created=now, unique_id=unique_id)
            original = size
        elif spec.create_option == "Import":
            size, original = self._data.import_blob(where, spec, sector, now=now)
        elif spec.create_option == "Upload":  # an empty blob of the upload's size, footer and all
            size = original = disk_size(spec.upload_size_bytes, spec.source_uri, sector)
            self.blobs.create_page_blob(where.account, where.container, where.blob, size + tail(sector))
        else:
            raise arm_errors.invalid_parameter(
                target="creationData.createOption",
                detail=f"createOption '{spec.create_option}' is not supported by the emulator "
                "(Empty, Import, Upload).",
            )
        try:
            self._db.execute(
                "INSERT INTO disks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    resource_group.lower(), name.lower(), resource_group, name, spec.location, spec.sku,
                    size, original, sector, unique_id, str(uuid.uuid4()), now, spec.create_option,
                    spec.source_uri, spec.storage_account_id, json.dumps(spec.tags or {}),
                    spec.data_access_auth_mode,
                ),
            )  # fmt: skip
            self.save_profile(unique_id, profile)
            if spec.create_option == "Upload":
                self.uploads.begin(unique_id, size + tail(sector))
        except BaseException:
            self.blobs.delete_container(where.account, where.container)
            raise
        self._protect("disks", unique_id, spec.data_access_auth_mode)
        return self.get_disk(resource_group, name)

    def get_disk(self, resource_group: str, name: str) -> Disk:
        return self._disk(self._existing("disks", resource_group, name))

    def update_disk(self, resource_group: str, name: str, update: DiskUpdate) -> Disk:
        row = self._existing("disks", resource_group, name)
        disk = self._disk(row)
        if update.sku is not None and update.sku != disk.sku:
            raise arm_errors.property_change_not_allowed(target="sku", resource=disk.id)
        if update.size_gb is not None:
            new_size = checked_size(disk.sku, update.size_gb)
            if new_size < disk.size_bytes:
                raise arm_errors.disk_shrink_not_allowed(resource=disk.id)
            if new_size > disk.size_bytes:
                self._grow(row, disk, new_size)
        if update.tags is not None:
            self._db.execute(
                "UPDATE disks SET tags=? WHERE unique_id=?", (json.dumps(update.tags), disk.unique_id)
            )
        self._set_data_access("disks", disk.unique_id, update.data_access_auth_mode)
        return self.get_disk(resource_group, name)

    def grant_disk(self, resource_group: str, name: str, access: str, duration_seconds: int) -> str:
        disk = self.get_disk(resource_group, name)
        permissions = {"Read": "r", "Write": "rw"}.get(access)
        if permissions is None:
            raise arm_errors.invalid_parameter(
                target="grantAccessData.access",
                detail=f"Access level '{access}' is not valid for a disk (Read, Write).",
            )
        if disk.managed_by and access == "Read":  # Write stands in for the VM's own writes
            raise arm_errors.disk_attached_read(name=disk.name, vm=disk.managed_by)
        self.uploads.check_grant(disk.id, disk.unique_id, access, self.grants.active(disk.unique_id))
        return self.grants.grant(disk.unique_id, access, permissions, duration_seconds)

    def _grow(self, row: sqlite3.Row, disk: Disk, new_size: int) -> None:
        """A disk grows only detached and without an active SAS; its blob grows with it (disk_data)."""
        if disk.managed_by:
            raise arm_errors.disk_attached_resize()
        self.uploads.check_usable(disk.id, disk.unique_id, self.grants.active(disk.unique_id), "resize")
        if self.grants.active(disk.unique_id):
            raise arm_errors.active_sas_conflict(resource=disk.id, operation="resize")
        self._data.grow(
            DataLocation.of(disk.unique_id),
            disk.sector_size,
            disk.size_bytes,
            new_size,
            original=row["original_size"],
            created=row["time_created"],
            unique_id=disk.unique_id,
        )
        self._db.execute("UPDATE disks SET size_bytes=? WHERE unique_id=?", (new_size, disk.unique_id))

    # --- snapshots --------------------------------------------------------------------------

    def put_snapshot(self, resource_group: str, name: str, spec: SnapshotSpec) -> Snapshot:
        existing = self._row("snapshots", resource_group, name)
        if existing is not None:
            return self._update_snapshot(existing, spec)
        if spec.create_option != "Copy":
            raise arm_errors.invalid_parameter(
                target="creationData.createOption",
                detail=f"createOption '{spec.create_option}' is not supported for snapshots by the emulator "
                "(Copy).",
            )
        disk = self._source_disk(spec.source_resource_id)
        self.uploads.check_usable(disk.id, disk.unique_id, self.grants.active(disk.unique_id), "snapshot")
        if spec.location.replace(" ", "").lower() != disk.location.replace(" ", "").lower():
            raise arm_errors.invalid_parameter(
                target="location",
                detail=f"The snapshot must be in the location of its source disk {disk.id} "
                f"({disk.location}).",
            )
        now = self.clock()
        if spec.incremental:
            self._check_snapshot_limits(disk, now)
        elif disk.sku in V2_SKUS:
            raise arm_errors.full_snapshot_of_v2_disk(resource=disk.id, sku=disk.sku)
        profile = disk_profile.of_snapshot(disk.profile, spec.profile)
        profile = self.checked_profile(profile, "snapshots", name, spec.location, None)
        unique_id, blob_snapshot = self.capture(disk, incremental=spec.incremental)
        self.save_profile(unique_id, profile)
        sku = spec.sku or "Standard_LRS"  # incremental snapshots always live on standard HDD
        self._db.execute(
            "INSERT INTO snapshots VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                resource_group.lower(), name.lower(), resource_group, name, spec.location, sku,
                int(spec.incremental), disk.family_id if spec.incremental else None, disk.id,
                disk.unique_id, disk.sku, disk.sector_size, disk.size_bytes, unique_id, now,
                blob_snapshot, json.dumps(spec.tags or {}), spec.data_access_auth_mode,
            ),
        )  # fmt: skip
        self._protect("snapshots", unique_id, spec.data_access_auth_mode)
        if spec.incremental:
            self.creations.record(disk.unique_id, now)
        return self.get_snapshot(resource_group, name)

    def corrupt_byte(self, disk: Disk, offset: int) -> None:
        """Invert one byte of the disk's data (a corrupt_import fault rule: middleware/arm_faults.py)."""
        where = DataLocation.of(disk.unique_id)
        page = offset - offset % 512
        data = bytearray(self.blobs.read(where.account, where.container, where.blob, None, page, 512))
        data[offset - page] ^= 0xFF
        self.blobs.write_pages(where.account, where.container, where.blob, page, bytes(data))

    def fail_snapshot(self, resource_group: str, name: str) -> Snapshot:
        """The snapshot's create ended Failed (a fault rule): it stays, in provisioningState Failed."""
        unique_id = self._existing("snapshots", resource_group, name)["unique_id"]
        self._db.execute("INSERT OR IGNORE INTO failed_snapshots VALUES (?)", (unique_id,))
        return self.get_snapshot(resource_group, name)

    def get_snapshot(self, resource_group: str, name: str) -> Snapshot:
        return self._snapshot(self._existing("snapshots", resource_group, name))

    def grant_snapshot(self, resource_group: str, name: str, access: str, duration_seconds: int) -> str:
        snap = self.get_snapshot(resource_group, name)
        if snap.provisioning_state == "Failed":
            raise arm_errors.snapshot_failed(resource=snap.id)
        return self.grants.grant_frozen(
            snap.id, snap.unique_id, snap.family_id, snap.completion_percent, access, duration_seconds
        )

    # --- frozen versions: incremental snapshots and disk restore points alike ---------------

    def capture(self, disk: Disk, *, incremental: bool = True) -> tuple[str, str]:
        """Freeze the disk's blob now: a new unique ID whose container holds the frozen version (an
        incremental one is the disk blob's snapshot itself, so diffs share its lineage; a full one a
        copy-on-write copy), and the disk blob's snapshot ID."""
        source = DataLocation.of(disk.unique_id)
        blob_snapshot = self.blobs.snapshot_blob(source.account, source.container, source.blob)
        ref = SnapshotRef(source.account, source.container, source.blob, blob_snapshot)
        unique_id = str(uuid.uuid4())
        where = DataLocation.of(unique_id)
        if incremental:
            self.blobs.read_only_alias(where.account, where.container, where.blob, ref)
        else:
            blob_size = disk.size_bytes + tail(disk.sector_size)
            self.blobs.create_page_blob(where.account, where.container, where.blob, blob_size, source=ref)
        return unique_id, blob_snapshot

    def release(self, unique_id: str, source_unique_id: str, blob_snapshot: str) -> None:
        """Delete a frozen version's data, and its blob snapshot of the disk while the disk exists."""
        where = DataLocation.of(unique_id)
        self.blobs.delete_container(where.account, where.container)
        if self._db.execute("SELECT 1 FROM disks WHERE unique_id=?", (source_unique_id,)).fetchone():
            source = DataLocation.of(source_unique_id)
            self.blobs.delete_blob(source.account, source.container, source.blob, blob_snapshot)
        self._db.execute("DELETE FROM profiles WHERE unique_id=?", (unique_id,))

    def completion(self, source_sku: str, incremental: bool, created: float) -> float:
        """PremiumV2/Ultra incremental snapshots copy in the background: 0 -> 100 linearly."""
        if not (incremental and source_sku in V2_SKUS) or self.limits.completion_seconds <= 0:
            return 100.0
        elapsed = self.clock() - created
        return round(min(100.0, max(0.0, 100.0 * elapsed / self.limits.completion_seconds)), 1)

    # --- what vms.py and restore_points.py need of disks ------------------------------------

    def checked_profile(
        self, given: DiskProfile, kind: str, name: str, location: str, create_option: str | None
    ) -> DiskProfile:
        return disk_profile.checked(
            given,
            resource=f"Microsoft.Compute/{kind}/{name}",
            location=location,
            create_option=create_option,
            encryption_set=self.encryption_sets.by_id,
        )

    def disk_by_id(self, resource_id: str, target: str) -> Disk:
        """The disk a request body names by ID (`target`: the field, for the refusal)."""
        parsed = ids.parse(resource_id)
        if parsed is None or not parsed.is_a("disks", self.subscription_id):
            raise arm_errors.invalid_parameter(
                target=target,
                detail=f"'{resource_id}' is not a Microsoft.Compute/disks resource ID of subscription "
                f"{self.subscription_id}.",
            )
        return self.get_disk(parsed.resource_group, parsed.name)

    def attach(self, disk: Disk, vm_id: str | None) -> None:
        """Record the VM that owns the disk (its managedBy), or None to detach it."""
        self._db.execute("DELETE FROM attachments WHERE disk_unique_id=?", (disk.unique_id,))
        if vm_id is not None:
            self._db.execute("INSERT INTO attachments VALUES (?,?)", (disk.unique_id, vm_id))

    # --- disks and snapshots alike ----------------------------------------------------------

    def get(self, kind: str, resource_group: str, name: str) -> Disk | Snapshot:
        """`kind` is the ARM path segment: "disks" or "snapshots"."""
        return self._model(kind, self._existing(kind, resource_group, name))

    def list(self, kind: str, resource_group: str | None, skip_token: str | None) -> Page:
        """One page of a resource group's or the subscription's disks or snapshots (listing.py)."""
        scope = {} if resource_group is None else {"rg_key": resource_group.lower()}
        rows, next_key = rows_page(self._db, kind, scope, skip_token, self.limits.page_size)
        return Page([self._model(kind, r) for r in rows], next_key)

    def delete(self, kind: str, resource_group: str, name: str) -> bool:
        """False when there was no such resource (Azure answers 204 then). A disk's snapshots survive it;
        a snapshot takes its blob snapshot of the disk with it."""
        row = self._row(kind, resource_group, name)
        if row is None:
            return False
        resource = self._model(kind, row)
        if isinstance(resource, Disk) and resource.managed_by:
            raise arm_errors.disk_attached_delete(resource=resource.id, vm=resource.managed_by)
        if self.grants.active(resource.unique_id):
            raise arm_errors.active_sas_conflict(resource=resource.id, operation="delete")
        where = DataLocation.of(resource.unique_id)
        if isinstance(resource, Snapshot):
            self.release(resource.unique_id, resource.source_unique_id, row["blob_snapshot"])
        else:
            self.blobs.delete_container(where.account, where.container)
            self._db.execute("DELETE FROM profiles WHERE unique_id=?", (resource.unique_id,))
        self.blobs.set_protection(where.account, where.container, None)
        self.grants.forget(resource.unique_id)
        self.uploads.forget(resource.unique_id)
        self._db.execute("DELETE FROM failed_snapshots WHERE unique_id=?", (resource.unique_id,))
        self._db.execute(f"DELETE FROM {kind} WHERE unique_id=?", (resource.unique_id,))
        return True

    def revoke(self, kind: str, resource_group: str, name: str) -> None:
        """End every SAS of the resource (endGetAccess); an ActiveUpload disk's upload ends with it."""
        unique_id = self._existing(kind, resource_group, name)["unique_id"]
        if kind == "disks":
            self.uploads.end(unique_id, self.grants.active(unique_id))
        self.grants.revoke(unique_id)

    # --- long-running operation records -----------------------------------------------------

    def record_operation(self, output: dict[str, Any] | None, error: dict[str, str] | None = None) -> str:
        """Every emulated operation finishes at once; its record answers the SDK's status polls. With
        `error` (ARM's code and message) it ended Failed."""
        now = self.clock()
        self._db.execute("DELETE FROM operations WHERE created < ?", (now - OPERATION_RETENTION_SECONDS,))
        self._db.execute("DELETE FROM failed_operations WHERE id NOT IN (SELECT id FROM operations)")
        op_id = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO operations VALUES (?,?,?)",
            (op_id, None if output is None else json.dumps(output), now),
        )
        if error is not None:
            self._db.execute("INSERT INTO failed_operations VALUES (?,?)", (op_id, json.dumps(error)))
        return op_id

    def operation(self, op_id: str) -> tuple[datetime, dict[str, Any] | None, dict[str, str] | None]:
        """When the operation finished, its output, and its error when it ended Failed."""
        row = self._db.execute(
            "SELECT o.output, o.created, f.error FROM operations o LEFT JOIN failed_operations f"
            " ON f.id = o.id WHERE o.id=?",
            (op_id,),
        ).fetchone()
        if row is None:
            raise arm_errors.operation_not_found(operation=op_id)
        output, error = (None if row[key] is None else json.loads(row[key]) for key in ("output", "error"))
        return utc(row["created"]), output, error

    # --- internals: rows --------------------------------------------------------------------

    def _row(self, kind: str, resource_group: str, name: str) -> sqlite3.Row | None:
        return one_row(self._db, kind, named(resource_group, name))

    def _existing(self, kind: str, resource_group: str, name: str) -> sqlite3.Row:
        row = self._row(kind, resource_group, name)
        if row is None:
            raise arm_errors.resource_not_found(type=kind, name=name, group=resource_group)
        return row

    def _model(self, kind: str, row: sqlite3.Row) -> Disk | Snapshot:
        return self._disk(row) if kind == "disks" else self._snapshot(row)

    def _common(self, kind: str, row: sqlite3.Row, managed_by: str | None = None) -> dict[str, Any]:
        """The `Resource` fields, read alike from a disks or a snapshots row."""
        granted = self.grants.active(row["unique_id"])
        upload = self.uploads.state(row["unique_id"], granted) if kind == "disks" else None
        return {
            "id": self.resource_id(kind, row["resource_group"], row["name"]),
            "time_created": utc(row["time_created"]),
            "tags": json.loads(row["tags"]),
            "disk_state": "Attached" if managed_by else upload or ("ActiveSAS" if granted else "Unattached"),
            "profile": self.profile(row["unique_id"]),
            **{key: row[key] for key in _COLUMNS_AS_IS},
        }

    def profile(self, unique_id: str) -> DiskProfile:
        row = self._db.execute("SELECT profile FROM profiles WHERE unique_id=?", (unique_id,)).fetchone()
        return disk_profile.loads(row["profile"])

    def save_profile(self, unique_id: str, profile: DiskProfile) -> None:
        self._db.execute("INSERT INTO profiles VALUES (?,?)", (unique_id, disk_profile.dumps(profile)))

    def _disk(self, row: sqlite3.Row) -> Disk:
        extra = {key: row[key] for key in ("create_option", "source_uri", "storage_account_id")}
        owner = self._db.execute(
            "SELECT vm_id FROM attachments WHERE disk_unique_id=?", (row["unique_id"],)
        ).fetchone()
        managed_by = owner["vm_id"] if owner else None
        return Disk(
            **self._common("disks", row, managed_by),
            **extra,
            managed_by=managed_by,
            upload_size_bytes=self.uploads.size(row["unique_id"]),
        )

    def _snapshot(self, row: sqlite3.Row) -> Snapshot:
        return Snapshot(
            **self._common("snapshots", row),
            incremental=bool(row["incremental"]),
            source_resource_id=row["source_resource_id"],
            source_unique_id=row["source_unique_id"],
            completion_percent=self.completion(
                row["source_sku"], bool(row["incremental"]), row["time_created"]
            ),
            provisioning_state="Failed"
            if self._db.execute(
                "SELECT 1 FROM failed_snapshots WHERE unique_id=?", (row["unique_id"],)
            ).fetchone()
            else "Succeeded",
        )

    # --- internals: snapshots ---------------------------------------------------------------

    def _source_disk(self, source_resource_id: str) -> Disk:
        parsed = ids.parse(source_resource_id)
        if parsed is None or parsed.kind.lower() != "disks":
            raise arm_errors.invalid_parameter(
                target="creationData.sourceResourceId",
                detail=f"sourceResourceId '{source_resource_id}' is not a "
                "Microsoft.Compute/disks resource ID.",
            )
        if parsed.subscription.lower() != self.subscription_id.lower():
            raise arm_errors.invalid_parameter(
                target="creationData.sourceResourceId",
                detail="An incremental snapshot must be created in the subscription of its disk.",
            )
        return self.get_disk(parsed.resource_group, parsed.name)

    def _update_snapshot(self, row: sqlite3.Row, spec: SnapshotSpec) -> Snapshot:
        snap = self._snapshot(row)
        if spec.source_resource_id.lower() != snap.source_resource_id.lower():
            raise arm_errors.property_change_not_allowed(
                target="creationData.sourceResourceId", resource=snap.id
            )
        if spec.incremental != snap.incremental:
            raise arm_errors.property_change_not_allowed(target="incremental", resource=snap.id)
        if spec.tags is not None:
            self._db.execute(
                "UPDATE snapshots SET tags=? WHERE unique_id=?", (json.dumps(spec.tags), snap.unique_id)
            )
        self._set_data_access("snapshots", snap.unique_id, spec.data_access_auth_mode)
        return self.get_snapshot(snap.resource_group, snap.name)

    def _check_snapshot_limits(self, disk: Disk, now: float) -> None:
        limits = self.limits
        total = self._db.execute(
            "SELECT COUNT(*) AS total FROM snapshots WHERE source_unique_id=? AND incremental=1",
            (disk.unique_id,),
        ).fetchone()["total"]
        if total >= limits.snapshots_per_disk:
            raise arm_errors.snapshot_total_limit(resource=disk.id, limit=limits.snapshots_per_disk)
        window = limits.snapshot_window_seconds
        full = self.creations.full(disk.unique_id, now, limits.snapshots_per_window, window)
        if full is not None:
            raise arm_errors.snapshot_rate_limit(
                resource=disk.id,
                limit=limits.snapshots_per_window,
                minutes=limits.snapshot_window_seconds // 60,
                retry_after=full.retry_after,
            )
        if disk.sku in V2_SKUS:
            rows = self._db.execute(
                "SELECT * FROM snapshots WHERE source_unique_id=? AND incremental=1", (disk.unique_id,)
            ).fetchall()
            pending = [r for r in rows if self.completion(disk.sku, True, r["time_created"]) < 100]
            if len(pending) >= limits.pending_per_disk:
                raise arm_errors.snapshot_pending_limit(resource=disk.id, limit=limits.pending_per_disk)

    # --- internals: dataAccessAuthMode ------------------------------------------------------

    def _set_data_access(self, kind: str, unique_id: str, mode: str | None) -> None:
        """An update's dataAccessAuthMode (None: not given, unchanged); it applies to SAS already out."""
        if mode is not None:
            self._db.execute(
                f"UPDATE {kind} SET data_access_auth_mode=? WHERE unique_id=?", (mode, unique_id)
            )
            self._protect(kind, unique_id, mode)

    def _protect(self, kind: str, unique_id: str, mode: str | None) -> None:
        """Tell the blob plane whether reads of the resource's data need an Entra ID token (protection.py)."""
        where = DataLocation.of(unique_id)
        self.blobs.set_protection(
            where.account, where.container, kind if mode == "AzureActiveDirectory" else None
        )
