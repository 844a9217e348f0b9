"""Which managed-disk containers need an Entra ID token besides their SAS, and for which resource type.

ARM keeps this in step with a disk's or snapshot's `dataAccessAuthMode` (arm/backend.py), as it
registers the grant SAS policies (access_policies.py): the blob plane knows containers, not ARM
resources, so ARM tells it. auth.py reads it for every read through a managed-disk SAS.
"""

from __future__ import annotations

from replicator.emulator.blob.rows import BlobRows


class Protection(BlobRows):
    """The `entra_protected` rows: (account, container) -> "disks" or "snapshots"."""

    def set_protection(self, account: str, container: str, resource_type: str | None) -> None:
        """Protect the container as a resource of `resource_type` ("disks" or "snapshots"); None: lift it."""
        with self._tx():
            self._db.execute(
                "DELETE FROM entra_protected WHERE account = ? AND container = ?", (account, container)
            )
            if resource_type is not None:
                self._db.execute(
                    "INSERT INTO entra_protected VALUES (?, ?, ?)", (account, container, resource_type)
                )

    def protection(self, account: str, container: str) -> str | None:
        """The resource type whose download action reading the container needs, or None (no token)."""
        row = self._select(
            "SELECT resource_type FROM entra_protected WHERE account = ? AND container = ?",
            (account, container),
        ).fetchone()
        return None if row is None else row["resource_type"]
