"""The blob plane's state: containers, page/block blobs, snapshots, leases, stored access policies.

No HTTP here: blob.py parses requests into calls on this class and serializes what it returns
(blob_model.py); every failure is a coded `BlobError` from errors.py. Page data lives in the
layered `PageStore`; this module keeps the bookkeeping (which blob version is which layer, sizes,
metadata, leases) in the same SQLite database, so one transaction covers both. The rules it applies
are pure and live beside it: leases.py (the lease state machine), conditions.py (conditional
headers), signing.py (grant SAS URLs).

Why one module of about 800 lines: every operation is one transaction over the same blob rows and
layers, and its length is Azure's operation surface (some twenty operations, each with its lease ID
and conditions); splitting the class would spread one transaction's invariants over several files.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from replicator.emulator import errors
from replicator.emulator.blob import leases, signing
from replicator.emulator.blob.conditions import Conditions, check_conditions
from replicator.emulator.blob.leases import Lease
from replicator.emulator.blob.model import (
    BlobProps,
    ContainerProps,
    LeaseResult,
    PageRangeList,
    SnapshotRef,
    StoredPolicy,
)
from replicator.emulator.blob.store import PAGE, PageStore

TIB = 1024**4
MAX_PAGE_BLOB = 8 * TIB  # Azure's page blob limit for ordinary accounts
MAX_MANAGED_BLOB = 64 * TIB + 512  # managed disks: 64 TiB of data plus the VHD footer
DIFF_BOUNDARY = 4 * TIB + 512  # Azure refuses diffs across a resize over 4 TiB (plus footer)
MAX_PUT_PAGE = 4 * 1024 * 1024  # Put Page writes at most 4 MiB

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    account TEXT NOT NULL, name TEXT NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL,
    metadata TEXT NOT NULL, PRIMARY KEY (account, name));
CREATE TABLE IF NOT EXISTS blobs (
    account TEXT NOT NULL, container TEXT NOT NULL, name TEXT NOT NULL, snapshot TEXT NOT NULL,
    blob_type TEXT NOT NULL, layer INTEGER NOT NULL, size INTEGER NOT NULL, metadata TEXT NOT NULL,
    content_type TEXT NOT NULL, etag TEXT NOT NULL, last_modified REAL NOT NULL, created REAL NOT NULL,
    read_only INTEGER NOT NULL, lease_id TEXT, lease_state TEXT NOT NULL, lease_duration INTEGER,
    lease_expiry REAL, break_at REAL,
    PRIMARY KEY (account, container, name, snapshot));
CREATE TABLE IF NOT EXISTS policies (
    account TEXT NOT NULL, container TEXT NOT NULL, id TEXT NOT NULL, permissions TEXT NOT NULL,
    start REAL, expiry REAL, PRIMARY KEY (account, container, id));
"""

LIVE = ""  # the `snapshot` column value of a base blob
KEY = "account = ? AND container = ? AND name = ? AND snapshot = ?"  # a blob row's primary key
BlobKey = tuple[str, str, str, str]  # its values: account, container, name, snapshot (LIVE for the blob)


class _Clock:
    """Strictly increasing 100 ns ticks: snapshot ids and ETags never repeat within a process run."""

    def __init__(self) -> None:
        self._last = 0

    def tick(self) -> int:
        now = time.time_ns() // 100
        self._last = max(now, self._last + 1)
        return self._last


def snapshot_id(ticks: int) -> str:
    """Azure's snapshot timestamp, 7 fractional digits: 2026-11-25T20:49:46.1234567Z."""
    secs, frac = divmod(ticks, 10_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:07d}Z"


def is_managed_account(account: str) -> bool:
    """Managed-disk accounts accept only grant_sas SAS on the blob plane, as in Azure."""
    return account.startswith("md-")


def _aligned(value: int, what: str) -> None:
    if value < 0 or value % PAGE:
        raise errors.invalid_page_range(f"The {what} {value} is not a non-negative multiple of 512.")


class BlobBackend:
    """The blob plane's state. Synchronous and short per call (a test emulator may block briefly)."""

    def __init__(self, data_dir: Path, *, account_key: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / "blob.sqlite", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.store = PageStore(self._db, data_dir / "pages.dat")
        self.account_key = account_key
        self.base_url = ""  # set once the server knows its port
        self._clock = _Clock()

    def close(self) -> None:
        self.store.close()
        self._db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _etag(self) -> str:
        return f'"0x{self._clock.tick():X}"'

    def _select(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        """Rows read by column name (the page store keeps plain tuples on the same connection)."""
        cursor = self._db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, args)

    # -- containers -----------------------------------------------------------------------------
    def create_container(self, account: str, container: str, metadata: dict[str, str] | None = None) -> None:
        with self._tx():
            if self._container_row(account, container) is not None:
                raise errors.container_already_exists()
            self._insert_container(account, container, metadata or {})

    def _insert_container(self, account: str, container: str, metadata: dict[str, str]) -> None:
        self._db.execute(
            "INSERT INTO containers VALUES (?, ?, ?, ?, ?)",
            (account, container, self._etag(), time.time(), json.dumps(metadata)),
        )

    def _container_row(self, account: str, container: str) -> sqlite3.Row | None:
        return self._select(
            "SELECT etag, last_modified, metadata FROM containers WHERE account = ? AND name = ?",
            (account, container),
        ).fetchone()

    def container_properties(self, account: str, container: str) -> ContainerProps:
        row = self._container_row(account, container)
        if row is None:
            raise errors.container_not_found()
        metadata = json.loads(row["metadata"])
        return ContainerProps(account, container, row["etag"], row["last_modified"], metadata)

    def delete_container(self, account: str, container: str) -> None:
        """Deletes the container, its blobs and policies. Page data stays in the data file (no GC)."""
        with self._tx():
            if self._container_row(account, container) is None:
                raise errors.container_not_found()
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

    # -- blob rows ------------------------------------------------------------------------------
    def _row(self, account: str, container: str, blob: str, snapshot: str | None) -> sqlite3.Row:
        row = self._select(
            f"SELECT * FROM blobs WHERE {KEY}", (account, container, blob, snapshot or LIVE)
        ).fetchone()
        if row is None:
            if self._container_row(account, container) is None:
                raise errors.container_not_found()
            raise errors.blob_not_found()
        return row

    def _version(self, ref: SnapshotRef) -> sqlite3.Row:
        return self._row(ref.account, ref.container, ref.blob, ref.snapshot)

    def _props(self, row: sqlite3.Row) -> BlobProps:
        return BlobProps(
            account=row["account"],
            container=row["container"],
            name=row["name"],
            snapshot=row["snapshot"] or None,
            blob_type=row["blob_type"],
            layer=row["layer"],
            size=row["size"],
            metadata=json.loads(row["metadata"]),
            content_type=row["content_type"],
            etag=row["etag"],
            last_modified=row["last_modified"],
            created=row["created"],
            read_only=bool(row["read_only"]),
            lease=_lease(row).info(time.time()),
        )

    def get_properties(
        self,
        account: str,
        container: str,
        blob: str,
        snapshot: str | None = None,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> BlobProps:
        """A version's properties for a read: a given lease ID must match, conditions may answer 304."""
        row = self._row(account, container, blob, snapshot)
        if lease_id is not None:
            _check_lease(row, lease_id, write=False)
        _check_conditions(row, conditions, read=True)
        return self._props(row)

    def _writable(
        self,
        account: str,
        container: str,
        blob: str,
        lease_id: str | None,
        conditions: Conditions | None,
        *,
        page_blob: bool = True,
    ) -> sqlite3.Row:
        row = self._row(account, container, blob, None)
        if row["read_only"]:
            raise errors.authorization_permission_mismatch("This blob is a read-only managed snapshot.")
        if page_blob and row["blob_type"] != "PageBlob":
            raise errors.invalid_blob_type()
        _check_lease(row, lease_id, write=True)
        _check_conditions(row, conditions, read=False)
        return row

    def _update(self, key: BlobKey, **changes: object) -> None:
        sets = ", ".join(f"{k} = ?" for k in changes)
        self._db.execute(f"UPDATE blobs SET {sets} WHERE {KEY}", (*changes.values(), *key))

    def _touch(self, row: sqlite3.Row, **changes: object) -> BlobProps:
        """Update a blob row as a content or property change (new ETag and Last-Modified); its new props."""
        self._update(_key(row), etag=self._etag(), last_modified=time.time(), **changes)
        return self._props(self._row(*_key(row)))

    def _insert_blob(
        self,
        key: BlobKey,
        blob_type: str,
        layer: int,
        size: int,
        metadata: dict[str, str],
        content_type: str,
        *,
        read_only: bool = False,
    ) -> None:
        """A new blob version row, without a lease."""
        now = time.time()
        row = {
            **dict(zip(("account", "container", "name", "snapshot"), key, strict=True)),
            "blob_type": blob_type,
            "layer": layer,
            "size": size,
            "metadata": json.dumps(metadata),
            "content_type": content_type,
            "etag": self._etag(),
            "last_modified": now,
            "created": now,
            "read_only": int(read_only),
            "lease_state": "available",
        }
        columns, marks = ", ".join(row), ", ".join("?" * len(row))
        self._db.execute(f"INSERT INTO blobs ({columns}) VALUES ({marks})", tuple(row.values()))

    def _ensure_container(self, account: str, container: str) -> None:
        if self._container_row(account, container) is None:
            self._insert_container(account, container, {})

    def _replaceable(
        self, account: str, container: str, blob: str, lease_id: str | None, conditions: Conditions | None
    ) -> None:
        """Put Blob over an existing blob: same lease/condition rules as a write, then the old one goes."""
        try:
            self._writable(account, container, blob, lease_id, conditions, page_blob=False)
        except errors.BlobError as exc:
            if exc.code != "BlobNotFound":
                raise
            check_conditions(conditions, None, None, read=False)
            return
        self._db.execute(f"DELETE FROM blobs WHERE {KEY}", (account, container, blob, LIVE))

    # -- page blobs -----------------------------------------------------------------------------
    def max_size(self, account: str) -> int:
        return MAX_MANAGED_BLOB if is_managed_account(account) else MAX_PAGE_BLOB

    def _check_size(self, account: str, size: int) -> None:
        if size < 0 or size % PAGE or size > self.max_size(account):
            raise errors.invalid_header_value(
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
            self._update(_key(row), layer=self.store.new_layer(layer))
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
            self._row_container(account, container)
            self._replaceable(account, container, blob, lease_id, conditions)
            layer = self.store.new_layer(None)
            self.store.write(layer, 0, data)
            key = (account, container, blob, LIVE)
            self._insert_blob(key, "BlockBlob", layer, len(data), metadata or {}, content_type)
            return self._props(self._row(account, container, blob, None))

    def _row_container(self, account: str, container: str) -> None:
        if self._container_row(account, container) is None:
            raise errors.container_not_found()

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
            raise errors.invalid_page_range(
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
            raise errors.request_body_too_large(f"A Put Page writes at most {MAX_PUT_PAGE} bytes.")
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

    def snapshot_blob(
        self,
        account: str,
        container: str,
        blob: str,
        metadata: dict[str, str] | None = None,
        *,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> str:
        """Freeze the blob's top layer as the snapshot; the blob continues on a new empty layer.

        As in Azure, a snapshot needs no lease ID on a leased blob, but a given one must match.
        Without `metadata` the snapshot keeps the blob's metadata.
        """
        with self._tx():
            row = self._row(account, container, blob, None)
            if lease_id is not None:
                _check_lease(row, lease_id, write=False)
            _check_conditions(row, conditions, read=False)
            snap = snapshot_id(self._clock.tick())
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
            self._update(_key(row), layer=self.store.new_layer(row["layer"]))
            return snap

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
                    raise errors.invalid_query_parameter_value(
                        "x-ms-delete-snapshots must not be sent when deleting a snapshot."
                    )
                self._db.execute(
                    f"DELETE FROM blobs WHERE {where} AND snapshot = ?", (account, container, blob, snapshot)
                )
                return
            if delete_snapshots not in (None, "include", "only"):
                raise errors.invalid_header_value("x-ms-delete-snapshots must be include or only.")
            _check_lease(row, lease_id, write=delete_snapshots != "only")
            _check_conditions(row, conditions, read=False)
            has_snapshots = self._db.execute(
                f"SELECT 1 FROM blobs WHERE {where} AND snapshot != ''", (account, container, blob)
            ).fetchone()
            if delete_snapshots is None and has_snapshots and not is_managed_account(account):
                raise errors.snapshots_present()
            if delete_snapshots == "only":
                self._db.execute(
                    f"DELETE FROM blobs WHERE {where} AND snapshot != ''", (account, container, blob)
                )
            else:
                self._db.execute(f"DELETE FROM blobs WHERE {where}", (account, container, blob))

    def blob_size(self, account: str, container: str, blob: str, snapshot: str | None = None) -> int:
        return self._row(account, container, blob, snapshot)["size"]

    # -- page ranges ----------------------------------------------------------------------------
    def page_ranges(
        self,
        account: str,
        container: str,
        blob: str,
        snapshot: str | None,
        *,
        start: int = 0,
        end: int | None = None,
        previous: SnapshotRef | None = None,
        marker: str | None = None,
        limit: int,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> PageRangeList:
        """Valid ranges of a version, or (with `previous`) its diff against an ancestor version.

        `[start, end)` is the window (clipped to the size); at most `limit` runs per answer, and a
        `next_marker` (opaque) while more remain.
        """
        props = self.get_properties(
            account, container, blob, snapshot, lease_id=lease_id, conditions=conditions
        )
        window_end = props.size if end is None else min(end, props.size)
        pos = max(start, _decode_marker(marker)) if marker else start
        if previous is None:
            runs: Iterator[tuple[int, int, bool]] = (
                (s, e, True) for s, e in self.store.valid_ranges(props.layer, pos, window_end)
            )
        else:
            base = self._diff_base(props, previous)
            runs = self.store.diff(props.layer, base, pos, window_end)
        out: list[tuple[int, int, bool]] = []
        next_marker = None
        for run in runs:
            if len(out) == limit:
                next_marker = _encode_marker(out[-1][1])
                break
            out.append(run)
        return PageRangeList(props.size, out, next_marker, props)

    def _diff_base(self, props: BlobProps, previous: SnapshotRef) -> int:
        try:
            prev = self._version(previous)
        except errors.BlobError as exc:
            raise errors.previous_snapshot_not_found() from exc
        if previous.snapshot is None and not prev["read_only"]:
            raise errors.previous_snapshot_not_found("The previous version must be a snapshot.")
        if (props.size > DIFF_BOUNDARY) != (prev["size"] > DIFF_BOUNDARY):
            raise errors.snapshot_diff_across_resize_not_supported()
        if not self.store.is_ancestor(prev["layer"], props.layer):
            raise errors.previous_snapshot_operation_not_supported()
        return prev["layer"]

    # -- leases ---------------------------------------------------------------------------------
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
            _check_conditions(row, conditions, read=False)
            outcome = leases.act(
                _lease(row),
                action,
                lease_id=lease_id,
                proposed_id=proposed_id,
                duration=duration,
                break_period=break_period,
                now=time.time(),
            )
            stored = outcome.lease
            self._update(
                _key(row),
                lease_id=stored.id,
                lease_state=stored.state,
                lease_duration=stored.duration,
                lease_expiry=stored.expiry,
                break_at=stored.break_at,
            )
            props = self._props(self._row(account, container, blob, None))
            return LeaseResult(outcome.lease_id, outcome.lease_time, props)

    # -- stored access policies and grant_sas ---------------------------------------------------
    def grant_sas(
        self, account: str, container: str, blob: str, permissions: str, expiry: datetime
    ) -> tuple[str, str]:
        """Register a stored access policy and return (policy id, SAS URL of the blob signed with it)."""
        if set(permissions) - set("rw") or not permissions:
            raise errors.invalid_input(f"grant_sas permissions must be 'r' or 'rw', not {permissions!r}.")
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
            if self._container_row(account, container) is None:
                raise errors.container_not_found()
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


def _key(row: sqlite3.Row) -> BlobKey:
    return row["account"], row["container"], row["name"], row["snapshot"]


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        row["lease_id"], row["lease_state"], row["lease_duration"], row["lease_expiry"], row["break_at"]
    )


def _check_lease(row: sqlite3.Row, lease_id: str | None, *, write: bool) -> None:
    leases.check(_lease(row), lease_id, write=write, now=time.time())


def _check_conditions(row: sqlite3.Row, conditions: Conditions | None, *, read: bool) -> None:
    check_conditions(conditions, row["etag"], row["last_modified"], read=read)


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"pr1:{offset}".encode()).decode().rstrip("=")


def _decode_marker(marker: str) -> int:
    try:
        text = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode()
        kind, offset = text.split(":")
        if kind != "pr1":
            raise ValueError(kind)
        return int(offset)
    except ValueError as exc:
        raise errors.invalid_query_parameter_value("The marker is not one this server returned.") from exc


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises (a coded error or a bug)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
