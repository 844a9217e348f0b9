"""Blob snapshots: Snapshot Blob freezes the blob's top layer; Delete Blob's snapshot rules."""

from __future__ import annotations

import json
from collections.abc import Callable

from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.rows import (
    KEY,
    LIVE,
    BlobRows,
    is_managed_account,
    row_key,
    snapshot_id,
)
from replicator.emulator.errors import blob as blob_errors


class Snapshots(BlobRows):
    """Snapshot and delete operations of the blob backend."""

    def snapshot_blob(
        self,
        account: str,
        container: str,
        blob: str,
        metadata: dict[str, str] | None = None,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
        allowed: Callable[[list[str]], None] | None = None,
    ) -> str:
        """Freeze the blob's top layer as the snapshot; the blob continues on a new empty layer.

        As in Azure, a snapshot needs no lease ID on a leased blob, but a given one must match.
        Without `metadata` the snapshot keeps the blob's metadata. `allowed(existing)` sees the blob's
        snapshot timestamps in the same transaction and raises to refuse (a premium account's rules).
        """
        with self._tx():
            row = self._row(account, container, blob, None)
            if lease_id is not None:
                self._check_lease(row, lease_id, write=False)
            self._check_conditions(row, conditions, read=False)
            if allowed is not None:
                allowed(self.snapshot_ids(account, container, blob))
            snap = snapshot_id(self._ticks.tick())
            self.store.freeze(row["layer"])
            snap_meta = json.loads(row["metadata"]) if metadata is None else metadata
            snapshot_key = (account, container, blob, snap)
            self._insert_blob(
                snapshot_key,
                row["blob_type"],
                row["layer"],
                row["size"],
                snap_meta,
                row["content_type"],
                read_only=bool(row["read_only"]),
            )
            # A snapshot reports the base blob's ETag, Last-Modified and creation time of that moment.
            self._update(
                snapshot_key, created=row["created"], etag=row["etag"], last_modified=row["last_modified"]
            )
            self._update(row_key(row), layer=self.store.new_layer(row["layer"]))
            return snap

    def existing_size(self, account: str, container: str, blob: str) -> int | None:
        """The base blob's size, None when it does not exist (the link model's premium tiers)."""
        row = self._select(f"SELECT size FROM blobs WHERE {KEY}", (account, container, blob, LIVE)).fetchone()
        return None if row is None else int(row["size"])

    def snapshot_ids(self, account: str, container: str, blob: str) -> list[str]:
        """The timestamps of the blob's snapshots, oldest first."""
        rows = self._select(
            "SELECT snapshot FROM blobs WHERE account = ? AND container = ? AND name = ? AND snapshot != ''"
            " ORDER BY snapshot",
            (account, container, blob),
        )
        return [r["snapshot"] for r in rows]

    def delete_blob(
        self,
        account: str,
        container: str,
        blob: str,
        snapshot: str | None = None,
        *,
        delete_snapshots: str | None = None,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> None:
        """Delete one snapshot, or the blob with `delete_snapshots` "include" (all) or "only" (keep base).

        ARM calls this without options to drop a whole resource, so there a base blob goes together
        with its snapshots when `delete_snapshots` is None and the account is a managed one.
        """
        with self._tx():
            row = self._row(account, container, blob, snapshot)
            where = "account = ? AND container = ? AND name = ?"
            if snapshot is not None:
                if delete_snapshots is not None:
                    raise blob_errors.invalid_query_parameter_value(
                        "x-ms-delete-snapshots must not be sent when deleting a snapshot."
                    )
                self._db.execute(
                    f"DELETE FROM blobs WHERE {where} AND snapshot = ?", (account, container, blob, snapshot)
                )
                return
            if delete_snapshots not in (None, "include", "only"):
                raise blob_errors.invalid_header_value("x-ms-delete-snapshots must be include or only.")
            self._check_lease(row, lease_id, write=delete_snapshots != "only")
            self._check_conditions(row, conditions, read=False)
            has_snapshots = self._db.execute(
                f"SELECT 1 FROM blobs WHERE {where} AND snapshot != ''", (account, container, blob)
            ).fetchone()
            if delete_snapshots is None and has_snapshots and not is_managed_account(account):
                raise blob_errors.snapshots_present()
            if delete_snapshots == "only":
                self._db.execute(
                    f"DELETE FROM blobs WHERE {where} AND snapshot != ''", (account, container, blob)
                )
            else:
                self._db.execute(f"DELETE FROM blobs WHERE {where}", (account, container, blob))
