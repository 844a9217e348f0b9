"""Page blobs: create (empty, as a copy-on-write copy, or as a read-only alias), resize, and the
page writes: Put Page, Clear Page and Put Page From URL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.model import BlobProps, SnapshotRef
from replicator.emulator.blob.rows import (
    LIVE,
    BlobRows,
    is_managed_account,
    row_key,
)
from replicator.emulator.blob.store import PAGE
from replicator.emulator.errors import blob as blob_errors

TIB = 1024**4
MAX_PAGE_BLOB = 8 * TIB  # Azure's page blob limit for ordinary accounts
MAX_MANAGED_BLOB = 64 * TIB + 512  # managed disks: 64 TiB of data plus the VHD footer
MAX_PUT_PAGE = 4 * 1024 * 1024  # Put Page writes at most 4 MiB


def _aligned(value: int, what: str) -> None:
    if value < 0 or value % PAGE:
        raise blob_errors.invalid_page_range(f"The {what} {value} is not a non-negative multiple of 512.")


class PageBlobs(BlobRows):
    """Page blob operations of the blob backend."""

    def max_size(self, account: str) -> int:
        return MAX_MANAGED_BLOB if is_managed_account(account) else MAX_PAGE_BLOB

    def _check_size(self, account: str, size: int) -> None:
        if size < 0 or size % PAGE or size > self.max_size(account):
            raise blob_errors.invalid_header_value(
                f"The page blob size {size} must be a multiple of 512 and at most {self.max_size(account)}."
            )

    def create_page_blob(
        self,
        account: str,
        container: str,
        blob: str,
        size: int,
        *,
        metadata: dict[str, str] | None = None,
        source: SnapshotRef | None = None,
        content_type: str = "application/octet-stream",
        lease_id: str | None = None,
        conditions: Conditions | None = None,
        create_container: bool = True,
    ) -> BlobProps:
        """Create (or replace) a page blob; with `source`, it starts as a copy-on-write copy of it."""
        self._check_size(account, size)
        with self._tx():
            if create_container:
                self._ensure_container(account, container)
            parent = self._frozen_layer(source) if source is not None else None
            self._replaceable(account, container, blob, lease_id, conditions)
            layer = self.store.new_layer(parent)
            if source is not None:
                source_size = self._version(source)["size"]
                if size < source_size:
                    self.store.clear(layer, size, source_size - size)
            self._insert_blob(
                (account, container, blob, LIVE), "PageBlob", layer, size, metadata or {}, content_type
            )
            return self._props(self._row(account, container, blob, None))

    def _frozen_layer(self, source: SnapshotRef) -> int:
        """The frozen layer holding `source`'s content; a live source is frozen by an implicit snapshot."""
        row = self._version(source)
        layer = row["layer"]
        if not self.store.is_frozen(layer):
            self.store.freeze(layer)
            self._update(row_key(row), layer=self.store.new_layer(layer))
        return layer

    def read_only_alias(self, account: str, container: str, blob: str, source: SnapshotRef) -> None:
        """A read-only blob whose content IS the frozen source version (same layer: shared lineage)."""
        with self._tx():
            self._ensure_container(account, container)
            layer = self._frozen_layer(source)
            src = self._version(source)
            self._replaceable(account, container, blob, None, None)
            metadata = json.loads(src["metadata"])
            key = (account, container, blob, LIVE)
            self._insert_blob(
                key, "PageBlob", layer, src["size"], metadata, src["content_type"], read_only=True
            )

    def resize_page_blob(
        self,
        account: str,
        container: str,
        blob: str,
        size: int,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        """Shrinking leaves a clear tombstone beyond the new size, so that regrowth reads zeros."""
        self._check_size(account, size)
        with self._tx():
            row = self._writable(account, container, blob, lease_id, conditions)
            if size < row["size"]:
                self.store.clear(row["layer"], size, row["size"] - size)
            return self._touch(row, size=size)

    def _page_target(self, row: sqlite3.Row, offset: int, length: int) -> None:
        _aligned(offset, "offset")
        _aligned(length, "length")
        if length == 0 or offset + length > row["size"]:
            raise blob_errors.invalid_page_range(
                f"The page range {offset}-{offset + length - 1} is empty or beyond the blob size "
                f"{row['size']}."
            )

    def write_pages(
        self,
        account: str,
        container: str,
        blob: str,
        offset: int,
        data: bytes,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        if len(data) > MAX_PUT_PAGE:
            raise blob_errors.request_body_too_large(f"A Put Page writes at most {MAX_PUT_PAGE} bytes.")
        ref = SnapshotRef(account, container, blob, None)
        return self._page_write(
            ref, offset, len(data), lease_id, conditions, lambda layer: self.store.write(layer, offset, data)
        )

    def _page_write(
        self,
        ref: SnapshotRef,
        offset: int,
        length: int,
        lease_id: str | None,
        conditions: Conditions | None,
        apply: Callable[[int], None],
    ) -> BlobProps:
        """One page write, clear or copy: checks (lease, conditions, range), `apply(layer)`, new ETag."""
        with self._tx():
            row = self._writable(ref.account, ref.container, ref.blob, lease_id, conditions)
            self._page_target(row, offset, length)
            apply(row["layer"])
            return self._touch(row)

    def copy_pages(
        self,
        account: str,
        container: str,
        blob: str,
        offset: int,
        source: SnapshotRef,
        source_offset: int,
        length: int,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        """Put Page From URL's write: the source's bytes land at `offset` (by reference, see the store).

        The caller has checked the length against MAX_PUT_PAGE and the source range against its size.
        """
        source_layer = self._version(source)["layer"]
        ref = SnapshotRef(account, container, blob, None)
        return self._page_write(
            ref,
            offset,
            length,
            lease_id,
            conditions,
            lambda layer: self.store.copy(source_layer, source_offset, layer, offset, length),
        )

    def clear_pages(
        self,
        account: str,
        container: str,
        blob: str,
        offset: int,
        length: int,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        ref = SnapshotRef(account, container, blob, None)
        return self._page_write(
            ref, offset, length, lease_id, conditions, lambda layer: self.store.clear(layer, offset, length)
        )
