"""SAS grants (beginGetAccess / endGetAccess) of disks, snapshots and disk restore points.

A grant is a stored access policy that the blob plane checks (blob/access_policies.py) on the
resource's container, and a row here with its expiry and, for a frozen version (an incremental
snapshot or a disk restore point), its incremental snapshot family: Azure allows 5 SAS at a time per
family, and a disk restore point is an incremental snapshot of its disk underneath, so both count
against one budget (assumed for disk restore points: Azure documents the limit for snapshots).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from replicator.emulator.arm.disk_data import utc
from replicator.emulator.arm.model import ArmLimits, DataLocation
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.errors import arm as arm_errors

SCHEMA = """
CREATE TABLE IF NOT EXISTS grants(
    policy_id TEXT PRIMARY KEY, unique_id TEXT NOT NULL, access TEXT NOT NULL, expiry REAL NOT NULL,
    family_id TEXT);
"""


@dataclass
class Grants:
    """The grants table of arm.sqlite and the policies it stands for in the blob plane."""

    db: sqlite3.Connection
    blobs: BlobBackend
    limits: ArmLimits
    clock: Callable[[], float]

    def __post_init__(self) -> None:
        self.db.executescript(SCHEMA)

    def active(self, unique_id: str) -> bool:
        """An unexpired SAS of the resource is out (its diskState is ActiveSAS)."""
        query = "SELECT 1 FROM grants WHERE unique_id=? AND expiry > ?"
        return self.db.execute(query, (unique_id, self.clock())).fetchone() is not None

    def grant(
        self,
        unique_id: str,
        access: str,
        permissions: str,
        duration_seconds: int,
        family_id: str | None = None,
    ) -> str:
        """A fresh SAS URL on the resource's blob, valid `duration_seconds` (capped); earlier ones stay."""
        if duration_seconds < 1:
            raise arm_errors.invalid_parameter(
                target="grantAccessData.durationInSeconds",
                detail="durationInSeconds must be a positive number of seconds.",
            )
        where = DataLocation.of(unique_id)
        now = self.clock()
        for (policy_id,) in self.db.execute(
            "SELECT policy_id FROM grants WHERE unique_id=? AND expiry <= ?", (unique_id, now)
        ).fetchall():
            self.blobs.revoke_sas(where.account, where.container, policy_id)
        self.db.execute("DELETE FROM grants WHERE unique_id=? AND expiry <= ?", (unique_id, now))
        expiry = now + min(duration_seconds, self.limits.sas_max_seconds)
        policy_id, url = self.blobs.grant_sas(
            where.account, where.container, where.blob, permissions, utc(expiry)
        )
        self.db.execute(
            "INSERT INTO grants VALUES (?,?,?,?,?)", (policy_id, unique_id, access, expiry, family_id)
        )
        return url

    def grant_frozen(
        self,
        resource_id: str,
        unique_id: str,
        family_id: str | None,
        percent: float,
        access: str,
        duration_seconds: int,
    ) -> str:
        """Read access (the only one: a frozen version is read-only) once its background copy is done
        (`percent` 100), within its family's SAS budget (a re-grant does not count twice)."""
        if access == "Write":
            raise arm_errors.write_access_on_snapshot(resource=resource_id)
        if access != "Read":
            raise arm_errors.invalid_parameter(
                target="grantAccessData.access",
                detail=f"Access level '{access}' is not valid for a snapshot (Read).",
            )
        if percent < 100:
            raise arm_errors.snapshot_not_complete(resource=resource_id, percent=percent)
        if family_id is not None and not self.active(unique_id):
            granted = self.db.execute(
                "SELECT COUNT(DISTINCT unique_id) AS granted FROM grants WHERE family_id = ? AND expiry > ?",
                (family_id, self.clock()),
            ).fetchone()["granted"]
            if granted >= self.limits.sas_per_family:
                raise arm_errors.sas_family_limit(
                    resource=resource_id, family=family_id, limit=self.limits.sas_per_family
                )
        return self.grant(unique_id, "Read", "r", duration_seconds, family_id)

    def revoke(self, unique_id: str) -> None:
        """End every SAS of the resource (endGetAccess); its URLs then get 403 from the blob plane."""
        where = DataLocation.of(unique_id)
        for (policy_id,) in self.db.execute(
            "SELECT policy_id FROM grants WHERE unique_id=?", (unique_id,)
        ).fetchall():
            self.blobs.revoke_sas(where.account, where.container, policy_id)
        self.forget(unique_id)

    def forget(self, unique_id: str) -> None:
        """Drop the rows of a deleted resource (its container, and so its policies, are gone)."""
        self.db.execute("DELETE FROM grants WHERE unique_id=?", (unique_id,))
