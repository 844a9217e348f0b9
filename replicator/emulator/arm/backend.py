"""Microsoft.Compute disks, snapshots, SAS grants and their limits, persisted (no HTTP here).

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
Not faithful (see docs/emulator.md): operations finish at once, there are no VMs (disks are
never attached), resource groups exist implicitly.

Disks, snapshots and grants stay in one module: they refer to each other (a snapshot's family,
limits and blob are its disk's; a grant blocks deleting either) in one database, so their rules
read best side by side; what they share is written once ("disks and snapshots alike").
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from replicator.emulator.arm.disk_data import (
    DiskData,
    checked_size,
    sector_size,
    tail,
    utc,
)
from replicator.emulator.arm.model import (
    SKUS,
    V2_SKUS,
    ArmLimits,
    DataLocation,
    Disk,
    DiskSpec,
    DiskUpdate,
    Page,
    Snapshot,
    SnapshotSpec,
)
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.errors import arm as arm_errors

OPERATION_RETENTION_SECONDS = 3600  # finished LRO records older than this are pruned

_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<type>disks|snapshots)/(?P<name>[^/]+)$",
    re.IGNORECASE,
)

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
CREATE TABLE IF NOT EXISTS grants(
    policy_id TEXT PRIMARY KEY, unique_id TEXT NOT NULL, access TEXT NOT NULL, expiry REAL NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_log(disk_unique_id TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS operations(id TEXT PRIMARY KEY, output TEXT, created REAL NOT NULL);
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
        else:
            raise arm_errors.invalid_parameter(
                target="creationData.createOption",
                detail=f"createOption '{spec.create_option}' is not supported by the emulator "
                "(Empty, Import).",
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
        return self._grant(disk.unique_id, access, permissions, duration_seconds)

    def _grow(self, row: sqlite3.Row, disk: Disk, new_size: int) -> None:
        """A disk grows only without an active SAS; its blob grows with it (disk_data)."""
        if disk.disk_state != "Unattached":
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
        source = DataLocation.of(disk.unique_id)
        blob_snapshot = self.blobs.snapshot_blob(source.account, source.container, source.blob)
        ref = SnapshotRef(source.account, source.container, source.blob, blob_snapshot)
        unique_id = str(uuid.uuid4())
        where = DataLocation.of(unique_id)
        if spec.incremental:
            self.blobs.read_only_alias(where.account, where.container, where.blob, ref)
        else:
            blob_size = disk.size_bytes + tail(disk.sector_size)
            self.blobs.create_page_blob(where.account, where.container, where.blob, blob_size, source=ref)
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
            self._db.execute("INSERT INTO snapshot_log VALUES (?,?)", (disk.unique_id, now))
        return self.get_snapshot(resource_group, name)

    def get_snapshot(self, resource_group: str, name: str) -> Snapshot:
        return self._snapshot(self._existing("snapshots", resource_group, name))

    def grant_snapshot(self, resource_group: str, name: str, access: str, duration_seconds: int) -> str:
        snap = self.get_snapshot(resource_group, name)
        if access == "Write":
            raise arm_errors.write_access_on_snapshot(resource=snap.id)
        if access != "Read":
            raise arm_errors.invalid_parameter(
                target="grantAccessData.access",
                detail=f"Access level '{access}' is not valid for a snapshot (Read).",
            )
        if snap.completion_percent < 100:
            raise arm_errors.snapshot_not_complete(resource=snap.id, percent=snap.completion_percent)
        if snap.family_id is not None and not self._has_active_grant(snap.unique_id):
            granted = self._db.execute(
                "SELECT COUNT(DISTINCT s.unique_id) AS granted FROM snapshots s"
                " JOIN grants g ON g.unique_id = s.unique_id WHERE s.family_id = ? AND g.expiry > ?",
                (snap.family_id, self.clock()),
            ).fetchone()["granted"]
            if granted >= self.limits.sas_per_family:
                raise arm_errors.sas_family_limit(
                    resource=snap.id, family=snap.family_id, limit=self.limits.sas_per_family
                )
        return self._grant(snap.unique_id, access, "r", duration_seconds)

    # --- disks and snapshots alike ----------------------------------------------------------

    def get(self, kind: str, resource_group: str, name: str) -> Disk | Snapshot:
        """`kind` is the ARM path segment: "disks" or "snapshots"."""
        return self._model(kind, self._existing(kind, resource_group, name))

    def list(self, kind: str, resource_group: str | None, skip_token: str | None) -> Page:
        """Keyset paging on (resource group, name), so concurrent creates never shift a page."""
        clauses, args = [], []
        if resource_group is not None:
            clauses.append("rg_key = ?")
            args.append(resource_group.lower())
        if skip_token:
            rg_key, _, name_key = skip_token.partition("/")
            clauses.append("(rg_key, name_key) > (?, ?)")
            args += [rg_key, name_key]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT * FROM {kind} {where} ORDER BY rg_key, name_key LIMIT ?",
            (*args, self.limits.page_size + 1),
        ).fetchall()
        more = len(rows) > self.limits.page_size
        rows = rows[: self.limits.page_size]
        next_key = f"{rows[-1]['rg_key']}/{rows[-1]['name_key']}" if more else None
        return Page([self._model(kind, r) for r in rows], next_key)

    def delete(self, kind: str, resource_group: str, name: str) -> bool:
        """False when there was no such resource (Azure answers 204 then). A disk's snapshots survive it;
        a snapshot takes its blob snapshot of the disk with it."""
        row = self._row(kind, resource_group, name)
        if row is None:
            return False
        resource = self._model(kind, row)
        if resource.disk_state != "Unattached":
            raise arm_errors.active_sas_conflict(resource=resource.id, operation="delete")
        where = DataLocation.of(resource.unique_id)
        self.blobs.delete_container(where.account, where.container)
        self.blobs.set_protection(where.account, where.container, None)
        if (
            isinstance(resource, Snapshot)
            and self._db.execute(
                "SELECT 1 FROM disks WHERE unique_id=?", (resource.source_unique_id,)
            ).fetchone()
        ):
            source = DataLocation.of(resource.source_unique_id)
            self.blobs.delete_blob(source.account, source.container, source.blob, row["blob_snapshot"])
        self._db.execute("DELETE FROM grants WHERE unique_id=?", (resource.unique_id,))
        self._db.execute(f"DELETE FROM {kind} WHERE unique_id=?", (resource.unique_id,))
        return True

    def revoke(self, kind: str, resource_group: str, name: str) -> None:
        """End every SAS of the resource (endGetAccess)."""
        unique_id = self._existing(kind, resource_group, name)["unique_id"]
        where = DataLocation.of(unique_id)
        for (policy_id,) in self._db.execute(
            "SELECT policy_id FROM grants WHERE unique_id=?", (unique_id,)
        ).fetchall():
            self.blobs.revoke_sas(where.account, where.container, policy_id)
        self._db.execute("DELETE FROM grants WHERE unique_id=?", (unique_id,))

    # --- long-running operation records -----------------------------------------------------

    def record_operation(self, output: dict[str, Any] | None) -> str:
        """Every emulated operation finishes at once; its record answers the SDK's status polls."""
        now = self.clock()
        self._db.execute("DELETE FROM operations WHERE created < ?", (now - OPERATION_RETENTION_SECONDS,))
        op_id = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO operations VALUES (?,?,?)",
            (op_id, None if output is None else json.dumps(output), now),
        )
        return op_id

    def operation(self, op_id: str) -> tuple[datetime, dict[str, Any] | None]:
        row = self._db.execute("SELECT output, created FROM operations WHERE id=?", (op_id,)).fetchone()
        if row is None:
            raise arm_errors.operation_not_found(operation=op_id)
        return utc(row["created"]), None if row["output"] is None else json.loads(row["output"])

    # --- internals: rows --------------------------------------------------------------------

    def _row(self, kind: str, resource_group: str, name: str) -> sqlite3.Row | None:
        return self._db.execute(
            f"SELECT * FROM {kind} WHERE rg_key=? AND name_key=?", (resource_group.lower(), name.lower())
        ).fetchone()

    def _existing(self, kind: str, resource_group: str, name: str) -> sqlite3.Row:
        row = self._row(kind, resource_group, name)
        if row is None:
            raise arm_errors.resource_not_found(type=kind, name=name, group=resource_group)
        return row

    def _model(self, kind: str, row: sqlite3.Row) -> Disk | Snapshot:
        return self._disk(row) if kind == "disks" else self._snapshot(row)

    def _common(self, kind: str, row: sqlite3.Row) -> dict[str, Any]:
        """The `Resource` fields, read alike from a disks or a snapshots row."""
        return {
            "id": self.resource_id(kind, row["resource_group"], row["name"]),
            "time_created": utc(row["time_created"]),
            "tags": json.loads(row["tags"]),
            "disk_state": "ActiveSAS" if self._has_active_grant(row["unique_id"]) else "Unattached",
            **{key: row[key] for key in _COLUMNS_AS_IS},
        }

    def _disk(self, row: sqlite3.Row) -> Disk:
        extra = {key: row[key] for key in ("create_option", "source_uri", "storage_account_id")}
        return Disk(**self._common("disks", row), **extra)

    def _snapshot(self, row: sqlite3.Row) -> Snapshot:
        return Snapshot(
            **self._common("snapshots", row),
            incremental=bool(row["incremental"]),
            source_resource_id=row["source_resource_id"],
            source_unique_id=row["source_unique_id"],
            completion_percent=self._completion(row),
        )

    # --- internals: snapshots ---------------------------------------------------------------

    def _completion(self, row: sqlite3.Row) -> float:
        """PremiumV2/Ultra incremental snapshots copy in the background: 0 -> 100 linearly."""
        if not (row["incremental"] and row["source_sku"] in V2_SKUS):
            return 100.0
        if self.limits.completion_seconds <= 0:
            return 100.0
        elapsed = self.clock() - row["time_created"]
        return round(min(100.0, max(0.0, 100.0 * elapsed / self.limits.completion_seconds)), 1)

    def _source_disk(self, source_resource_id: str) -> Disk:
        match = _RESOURCE_ID.match(source_resource_id or "")
        if match is None or match["type"].lower() != "disks":
            raise arm_errors.invalid_parameter(
                target="creationData.sourceResourceId",
                detail=f"sourceResourceId '{source_resource_id}' is not a "
                "Microsoft.Compute/disks resource ID.",
            )
        if match["sub"].lower() != self.subscription_id.lower():
            raise arm_errors.invalid_parameter(
                target="creationData.sourceResourceId",
                detail="An incremental snapshot must be created in the subscription of its disk.",
            )
        return self.get_disk(match["rg"], match["name"])

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
        window_start = now - limits.snapshot_window_seconds
        recent = [
            r["created"]
            for r in self._db.execute(
                "SELECT created FROM snapshot_log WHERE disk_unique_id=? AND created > ? ORDER BY created",
                (disk.unique_id, window_start),
            )
        ]
        if len(recent) >= limits.snapshots_per_window:
            retry_after = math.ceil(recent[-limits.snapshots_per_window] - window_start)
            raise arm_errors.snapshot_rate_limit(
                resource=disk.id,
                limit=limits.snapshots_per_window,
                minutes=limits.snapshot_window_seconds // 60,
                retry_after=retry_after,
            )
        self._db.execute(
            "DELETE FROM snapshot_log WHERE disk_unique_id=? AND created <= ?", (disk.unique_id, window_start)
        )
        if disk.sku in V2_SKUS:
            rows = self._db.execute(
                "SELECT * FROM snapshots WHERE source_unique_id=? AND incremental=1", (disk.unique_id,)
            ).fetchall()
            if sum(self._completion(r) < 100 for r in rows) >= limits.pending_per_disk:
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

    # --- internals: grants and listing ------------------------------------------------------

    def _has_active_grant(self, unique_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM grants WHERE unique_id=? AND expiry > ?", (unique_id, self.clock())
            ).fetchone()
            is not None
        )

    def _grant(self, unique_id: str, access: str, permissions: str, duration_seconds: int) -> str:
        if duration_seconds < 1:
            raise arm_errors.invalid_parameter(
                target="grantAccessData.durationInSeconds",
                detail="durationInSeconds must be a positive number of seconds.",
            )
        where = DataLocation.of(unique_id)
        now = self.clock()
        for (policy_id,) in self._db.execute(
            "SELECT policy_id FROM grants WHERE unique_id=? AND expiry <= ?", (unique_id, now)
        ).fetchall():
            self.blobs.revoke_sas(where.account, where.container, policy_id)
        self._db.execute("DELETE FROM grants WHERE unique_id=? AND expiry <= ?", (unique_id, now))
        expiry = now + min(duration_seconds, self.limits.sas_max_seconds)
        policy_id, url = self.blobs.grant_sas(
            where.account, where.container, where.blob, permissions, utc(expiry)
        )
        self._db.execute("INSERT INTO grants VALUES (?,?,?,?)", (policy_id, unique_id, access, expiry))
        return url
