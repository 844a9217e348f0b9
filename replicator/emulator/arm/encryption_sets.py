"""Disk encryption sets, as far as a disk needs one: a regional resource a disk names by ID.

Why only this much: a restored disk may need customer-managed keys, and those do not cross regions
(Azure's "Server-side encryption of Azure managed disks", Restrictions: the key vault, the disk
encryption set and the disks it encrypts are in one subscription and region), so the emulator must
refuse a disk that names a set in another region. No keys exist: `activeKey` and `identity` are
kept as given and nothing is encrypted. Not emulated: key rotation, the key vault, the check that a
set in use is not deleted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from replicator.emulator.arm import ids
from replicator.emulator.arm.listing import named, one_row
from replicator.emulator.errors import arm as arm_errors

SET_TYPES = ("EncryptionAtRestWithCustomerKey", "EncryptionAtRestWithPlatformAndCustomerKeys",
             "ConfidentialVmEncryptedWithCustomerKey")  # fmt: skip
"""DiskEncryptionSetType; the first is the default."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS encryption_sets(
    rg_key TEXT NOT NULL, name_key TEXT NOT NULL, resource_group TEXT NOT NULL, name TEXT NOT NULL,
    location TEXT NOT NULL, encryption_type TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (rg_key, name_key));
"""


@dataclass(frozen=True)
class EncryptionSet:
    id: str
    name: str
    location: str
    encryption_type: str
    body: dict[str, Any]  # tags, identity and properties.activeKey as the PUT gave them


class EncryptionSets:
    """The encryption_sets table of arm.sqlite."""

    def __init__(
        self, db: sqlite3.Connection, resource_id: Callable[[str, str, str], str], subscription: str
    ):
        self._db = db
        self._resource_id = resource_id
        self._subscription = subscription
        db.executescript(SCHEMA)

    def put(self, resource_group: str, name: str, location: str, body: dict[str, Any]) -> EncryptionSet:
        kind = (body.get("properties") or {}).get("encryptionType") or SET_TYPES[0]
        canonical = {t.lower(): t for t in SET_TYPES}.get(str(kind).lower())
        if canonical is None:
            raise arm_errors.invalid_parameter(
                target="properties.encryptionType",
                detail=f"encryptionType '{kind}' is not one of {', '.join(SET_TYPES)}.",
            )
        kept = {key: body[key] for key in ("tags", "identity", "properties") if key in body}
        self._db.execute(
            "INSERT OR REPLACE INTO encryption_sets VALUES (?,?,?,?,?,?,?)",
            (
                resource_group.lower(),
                name.lower(),
                resource_group,
                name,
                location,
                canonical,
                json.dumps(kept),
            ),
        )
        return self.get(resource_group, name)

    def get(self, resource_group: str, name: str) -> EncryptionSet:
        row = one_row(self._db, "encryption_sets", named(resource_group, name))
        if row is None:
            raise arm_errors.resource_not_found(type="diskEncryptionSets", name=name, group=resource_group)
        return EncryptionSet(
            id=self._resource_id("diskEncryptionSets", row["resource_group"], row["name"]),
            name=row["name"],
            location=row["location"],
            encryption_type=row["encryption_type"],
            body=json.loads(row["body"]),
        )

    def by_id(self, resource_id: str) -> EncryptionSet:
        """The set a disk or snapshot names in encryption.diskEncryptionSetId."""
        parsed = ids.parse(resource_id)
        if parsed is None or not parsed.is_a("diskEncryptionSets", self._subscription):
            raise arm_errors.invalid_parameter(
                target="encryption.diskEncryptionSetId",
                detail=f"'{resource_id}' is not a Microsoft.Compute/diskEncryptionSets resource ID of this "
                "subscription.",
            )
        return self.get(parsed.resource_group, parsed.name)

    def delete(self, resource_group: str, name: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM encryption_sets WHERE rg_key=? AND name_key=?",
            (resource_group.lower(), name.lower()),
        )
        return cursor.rowcount > 0
