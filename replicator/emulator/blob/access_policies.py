"""Stored access policies: Set Container ACL, and the grant_sas policies ARM registers and revokes.

A SAS with `si=<policy id>` is valid only while its policy exists, which is how revoking a managed
disk's grant invalidates URLs already handed out (auth.py reads `policy`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from replicator.emulator.blob import signing
from replicator.emulator.blob.model import StoredPolicy
from replicator.emulator.blob.rows import BlobRows
from replicator.emulator.errors import blob as blob_errors


class AccessPolicies(BlobRows):
    """Stored access policy operations of the blob backend."""

    def grant_sas(
        self, account: str, container: str, blob: str, permissions: str, expiry: datetime
    ) -> tuple[str, str]:
        """Register a stored access policy and return (policy id, SAS URL of the blob signed with it)."""
        if set(permissions) - set("rw") or not permissions:
            raise blob_errors.invalid_input(
                f"grant_sas permissions must be 'r' or 'rw', not {permissions!r}."
            )
        policy_id = str(uuid.uuid4())
        with self._tx():
            self._row(account, container, blob, None)
            self._db.execute(
                "INSERT INTO policies VALUES (?, ?, ?, ?, NULL, ?)",
                (account, container, policy_id, permissions, expiry.timestamp()),
            )
        return policy_id, signing.policy_sas_url(
            self.account_key, self.base_url, account, container, blob, policy_id
        )

    def set_policies(self, account: str, container: str, policies: list[StoredPolicy]) -> None:
        """Set Container ACL: `policies` replace the container's stored access policies."""
        with self._tx():
            self._existing_container(account, container)
            self._db.execute("DELETE FROM policies WHERE account = ? AND container = ?", (account, container))
            self._db.executemany(
                "INSERT INTO policies VALUES (?, ?, ?, ?, ?, ?)",
                [(account, container, p.id, p.permissions, p.start, p.expiry) for p in policies],
            )

    def revoke_sas(self, account: str, container: str, policy_id: str) -> None:
        with self._tx():
            self._db.execute(
                "DELETE FROM policies WHERE account = ? AND container = ? AND id = ?",
                (account, container, policy_id),
            )

    def policy(self, account: str, container: str, policy_id: str) -> StoredPolicy | None:
        """A container's stored access policy, or None when it does not exist (revoked or replaced)."""
        row = self._select(
            "SELECT * FROM policies WHERE account = ? AND container = ? AND id = ?",
            (account, container, policy_id),
        ).fetchone()
        return (
            None if row is None else StoredPolicy(row["id"], row["permissions"], row["start"], row["expiry"])
        )
