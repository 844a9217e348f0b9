"""What every blob has, page or block: Put Blob (block), reads, properties, metadata and the lease."""

from __future__ import annotations

import json
from collections.abc import Iterator

from replicator.emulator.blob import leases
from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.model import BlobProps, LeaseResult
from replicator.emulator.blob.rows import (
    LIVE,
    BlobRows,
    lease_of,
    row_key,
)


class Blobs(BlobRows):
    """Blob operations of the blob backend that do not depend on the blob type."""

    def put_block_blob(
        self,
        account: str,
        container: str,
        blob: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        """Enough of Put Blob for a block blob to exist and be read (its bytes live in one layer)."""
        with self._tx():
            self._existing_container(account, container)
            self._replaceable(account, container, blob, lease_id, conditions)
            layer = self.store.new_layer(None)
            self.store.write(layer, 0, data)
            key = (account, container, blob, LIVE)
            self._insert_blob(key, "BlockBlob", layer, len(data), metadata or {}, content_type)
            return self._props(self._row(account, container, blob, None))

    def read(
        self, account: str, container: str, blob: str, snapshot: str | None, offset: int, length: int
    ) -> bytes:
        """Bytes of a version; the caller has clipped `[offset, offset + length)` to its size."""
        return self.store.read(self._row(account, container, blob, snapshot)["layer"], offset, length)

    def read_chunks(self, props: BlobProps, offset: int, length: int, chunk: int) -> Iterator[bytes]:
        """A version's bytes in pieces of at most `chunk`, for streaming responses."""
        end = offset + length
        while offset < end:
            n = min(chunk, end - offset)
            yield self.store.read(props.layer, offset, n)
            offset += n

    def blob_size(self, account: str, container: str, blob: str, snapshot: str | None = None) -> int:
        return self._row(account, container, blob, snapshot)["size"]

    def set_metadata(
        self,
        account: str,
        container: str,
        blob: str,
        metadata: dict[str, str],
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        with self._tx():
            row = self._writable(account, container, blob, lease_id, conditions, page_blob=False)
            return self._touch(row, metadata=json.dumps(metadata))

    def set_content_type(
        self,
        account: str,
        container: str,
        blob: str,
        content_type: str,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        with self._tx():
            row = self._writable(account, container, blob, lease_id, conditions, page_blob=False)
            return self._touch(row, content_type=content_type)

    def lease(
        self,
        account: str,
        container: str,
        blob: str,
        action: str,
        *,
        lease_id: str | None = None,
        proposed_id: str | None = None,
        duration: int | None = None,
        break_period: int | None = None,
        conditions: Conditions | None = None,
    ) -> LeaseResult:
        """Lease Blob: the state machine is leases.act; this stores its outcome."""
        with self._tx():
            row = self._row(account, container, blob, None)
            self._check_conditions(row, conditions, read=False)
            outcome = leases.act(
                lease_of(row),
                action,
                lease_id=lease_id,
                proposed_id=proposed_id,
                duration=duration,
                break_period=break_period,
                now=self.clock(),
            )
            stored = outcome.lease
            self._update(
                row_key(row),
                lease_id=stored.id,
                lease_state=stored.state,
                lease_duration=stored.duration,
                lease_expiry=stored.expiry,
                break_at=stored.break_at,
            )
            props = self._props(self._row(account, container, blob, None))
            return LeaseResult(outcome.lease_id, outcome.lease_time, props)
