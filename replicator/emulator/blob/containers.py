"""Containers: Create, Get Properties, Delete, and List Blobs over their blob rows."""

from __future__ import annotations

import json

from replicator.emulator.blob.model import BlobProps, ContainerProps
from replicator.emulator.blob.rows import LIVE, BlobRows
from replicator.emulator.errors import blob as blob_errors


class Containers(BlobRows):
    """Container operations of the blob backend."""

    def create_container(self, account: str, container: str, metadata: dict[str, str] | None = None) -> None:
        with self._tx():
            if self._container_row(account, container) is not None:
                raise blob_errors.container_already_exists()
            self._insert_container(account, container, metadata or {})

    def container_properties(self, account: str, container: str) -> ContainerProps:
        row = self._container_row(account, container)
        if row is None:
            raise blob_errors.container_not_found()
        metadata = json.loads(row["metadata"])
        return ContainerProps(account, container, row["etag"], row["last_modified"], metadata)

    def delete_container(self, account: str, container: str) -> None:
        """Deletes the container, its blobs and policies. Page data stays in the data file (no GC)."""
        with self._tx():
            self._existing_container(account, container)
            for table, column in (("containers", "name"), ("blobs", "container"), ("policies", "container")):
                self._db.execute(
                    f"DELETE FROM {table} WHERE account = ? AND {column} = ?", (account, container)
                )

    def list_blobs(
        self,
        account: str,
        container: str,
        *,
        prefix: str = "",
        marker: str = "",
        limit: int = 5000,
        include_snapshots: bool = False,
    ) -> tuple[list[BlobProps], str | None]:
        """Blobs in name order (snapshots before their base blob, as Azure lists them)."""
        self.container_properties(account, container)
        rows = self._select(
            "SELECT * FROM blobs WHERE account = ? AND container = ? AND name >= ? AND substr(name, 1, ?) = ?"
            " ORDER BY name, snapshot = '', snapshot",
            (account, container, marker, len(prefix), prefix),
        )
        out: list[BlobProps] = []
        for row in rows:
            if row["snapshot"] != LIVE and not include_snapshots:
                continue
            if len(out) == limit:
                return out, row["name"]
            out.append(self._props(row))
        return out, None
