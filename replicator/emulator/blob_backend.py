"""Typed blob-plane backend: containers, page/block blobs, snapshots, leases, stored access policies.

No HTTP here: blob.py parses requests into calls on this class and serializes what it returns;
every failure is a coded `BlobError` from errors.py. Page data lives in the layered `PageStore`;
this module keeps the bookkeeping (which blob version is which layer, sizes, metadata, leases) in
the same SQLite database, so one transaction covers both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from replicator.emulator import errors
from replicator.emulator.store import PAGE, PageStore

TIB = 1024**4
MAX_PAGE_BLOB = 8 * TIB  # Azure's page blob limit for ordinary accounts
MAX_MANAGED_BLOB = 64 * TIB + 512  # managed disks: 64 TiB of data plus the VHD footer
DIFF_BOUNDARY = 4 * TIB + 512  # Azure refuses diffs across a resize over 4 TiB (plus footer)
MAX_PUT_PAGE = 4 * 1024 * 1024  # Put Page writes at most 4 MiB
API_VERSION = "2026-10-06"  # the installed SDK's x-ms-version: the default answer and grant_sas `sv`

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


@dataclass(frozen=True)
class StoredPolicy:
    """A stored access policy of a container (Set Container ACL): what a SAS with `si=id` may do."""

    id: str
    permissions: str
    start: float | None
    expiry: float | None


KEY = "account = ? AND container = ? AND name = ? AND snapshot = ?"  # a blob row's primary key


@dataclass(frozen=True)
class SnapshotRef:
    """A blob version by name: `snapshot` None is the live blob."""

    account: str
    container: str
    blob: str
    snapshot: str | None


@dataclass(frozen=True)
class Conditions:
    """HTTP conditional headers, already parsed (dates as epoch seconds)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: float | None = None
    if_unmodified_since: float | None = None


@dataclass(frozen=True)
class LeaseInfo:
    state: str  # available, leased, expired, breaking, broken
    status: str  # locked, unlocked
    duration: str | None  # infinite, fixed (only while leased)


@dataclass(frozen=True)
class BlobProps:
    """What Get Blob Properties and List Blobs report about one blob version."""

    account: str
    container: str
    name: str
    snapshot: str | None
    blob_type: str  # PageBlob, BlockBlob
    size: int
    metadata: dict[str, str]
    content_type: str
    etag: str
    last_modified: float
    created: float
    lease: LeaseInfo
    read_only: bool
    layer: int


@dataclass(frozen=True)
class ContainerProps:
    account: str
    name: str
    etag: str
    last_modified: float
    metadata: dict[str, str]


@dataclass(frozen=True)
class LeaseResult:
    lease_id: str | None
    lease_time: int | None  # seconds left of a break
    props: BlobProps


@dataclass(frozen=True)
class PageRangeList:
    """One Get Page Ranges answer: (start, end_exclusive, is_data) runs and the marker to continue."""

    size: int
    ranges: list[tuple[int, int, bool]]
    next_marker: str | None
    props: BlobProps


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


def sign(account_key: str, string_to_sign: str) -> str:
    digest = hmac.new(base64.b64decode(account_key), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


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

    def _container_row(self, account: str, container: str) -> tuple | None:
        return self._db.execute(
            "SELECT etag, last_modified, metadata FROM containers WHERE account = ? AND name = ?",
            (account, container),
        ).fetchone()

    def container_properties(self, account: str, container: str) -> ContainerProps:
        row = self._container_row(account, container)
        if row is None:
            raise errors.container_not_found()
        return ContainerProps(account, container, row[0], row[1], json.loads(row[2]))

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
        rows = self._db.execute(
            "SELECT * FROM blobs WHERE account = ? AND container = ? AND name >= ? AND substr(name, 1, ?) = ?"
            " ORDER BY name, snapshot = '', snapshot",
            (account, container, marker, len(prefix), prefix),
        )
        out: list[BlobProps] = []
        for row in rows:
            if row[3] != LIVE and not include_snapshots:
                continue
            if len(out) == limit:
                return out, row[2]
            out.append(self._props(row))
        return out, None

    # -- blob rows ------------------------------------------------------------------------------
    def _row(self, account: str, container: str, blob: str, snapshot: str | None) -> tuple:
        row = self._db.execute(
            "SELECT * FROM blobs WHERE account = ? AND container = ? AND name = ? AND snapshot = ?",
            (account, container, blob, snapshot or LIVE),
        ).fetchone()
        if row is None:
            if self._container_row(account, container) is None:
                raise errors.container_not_found()
            raise errors.blob_not_found()
        return row

    def _lease(self, row: tuple) -> tuple[str, str | None]:
        """The effective lease state now (leases expire and breaks finish with time) and its id."""
        state, lease_id, expiry, break_at = row[14], row[13], row[16], row[17]
        now = time.time()
        if state == "leased" and expiry is not None and expiry <= now:
            state = "expired"
        if state == "breaking" and break_at is not None and break_at <= now:
            state = "broken"
        return state, lease_id

    def _props(self, row: tuple) -> BlobProps:
        state, _ = self._lease(row)
        leased = state in ("leased", "breaking")
        duration = None
        if state == "leased":
            duration = "infinite" if row[15] == -1 else "fixed"
        return BlobProps(
            account=row[0],
            container=row[1],
            name=row[2],
            snapshot=row[3] or None,
            blob_type=row[4],
            layer=row[5],
            size=row[6],
            metadata=json.loads(row[7]),
            content_type=row[8],
            etag=row[9],
            last_modified=row[10],
            created=row[11],
            read_only=bool(row[12]),
            lease=LeaseInfo(state, "locked" if leased else "unlocked", duration),
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
            self._check_lease(row, lease_id, write=False)
        props = self._props(row)
        _check_conditions(props, conditions, read=True)
        return props

    def _check_lease(self, row: tuple, lease_id: str | None, *, write: bool) -> None:
        state, current = self._lease(row)
        if state in ("leased", "breaking"):
            if lease_id is None:
                if write:
                    raise errors.lease_id_missing()
                return
            if lease_id != current:
                raise errors.lease_id_mismatch_with_blob_operation()
        elif lease_id is not None:
            raise errors.lease_not_present_with_blob_operation()

    def _writable(
        self,
        account: str,
        container: str,
        blob: str,
        lease_id: str | None,
        conditions: Conditions | None,
        *,
        page_blob: bool = True,
    ) -> tuple:
        row = self._row(account, container, blob, None)
        if row[12]:
            raise errors.authorization_permission_mismatch("This blob is a read-only managed snapshot.")
        if page_blob and row[4] != "PageBlob":
            raise errors.invalid_blob_type()
        self._check_lease(row, lease_id, write=True)
        _check_conditions(self._props(row), conditions, read=False)
        return row

    def _update(self, row: tuple, **changes: object) -> None:
        sets = ", ".join(f"{k} = ?" for k in changes)
        self._db.execute(f"UPDATE blobs SET {sets} WHERE {KEY}", (*changes.values(), *row[:4]))

    def _touch(self, row: tuple, **changes: object) -> None:
        """Update a blob row as a content or property change: new ETag and Last-Modified."""
        self._update(row, etag=self._etag(), last_modified=time.time(), **changes)

    def _insert_blob(
        self,
        account: str,
        container: str,
        blob: str,
        snapshot: str,
        blob_type: str,
        layer: int,
        size: int,
        metadata: dict[str, str],
        content_type: str,
        *,
        read_only: bool = False,
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " NULL, 'available', NULL, NULL, NULL)",
            (
                account,
                container,
                blob,
                snapshot,
                blob_type,
                layer,
                size,
                json.dumps(metadata),
                content_type,
                self._etag(),
                now,
                now,
                int(read_only),
            ),
        )

    def _ensure_container(self, account: str, container: str) -> None:
        if self._container_row(account, container) is None:
            self._insert_container(account, container, {})

    def _replaceable(
        self, account: str, container: str, blob: str, lease_id: str | None, conditions: Conditions | None
    ) -> None:
        """Put Blob over an existing blob: same lease/condition rules as a write, then the old one goes."""
        try:
            row = self._row(account, container, blob, None)
        except errors.BlobError as exc:
            if exc.code == "ContainerNotFound":
                raise
            _check_conditions(None, conditions, read=False)
            return
        if row[12]:
            raise errors.authorization_permission_mismatch("This blob is a read-only managed snapshot.")
        self._check_lease(row, lease_id, write=True)
        _check_conditions(self._props(row), conditions, read=False)
        self._db.execute(
            "DELETE FROM blobs WHERE account = ? AND container = ? AND name = ? AND snapshot = ?",
            (account, container, blob, LIVE),
        )

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
                source_size = self._row(source.account, source.container, source.blob, source.snapshot)[6]
                if size < source_size:
                    self.store.clear(layer, size, source_size - size)
            self._insert_blob(
                account, container, blob, LIVE, "PageBlob", layer, size, metadata or {}, content_type
            )
            return self._props(self._row(account, container, blob, None))

    def _frozen_layer(self, source: SnapshotRef) -> int:
        """The frozen layer holding `source`'s content; a live source is frozen by an implicit snapshot."""
        row = self._row(source.account, source.container, source.blob, source.snapshot)
        layer = row[5]
        if not self.store.is_frozen(layer):
            self.store.freeze(layer)
            self._update(row, layer=self.store.new_layer(layer))
        return layer

    def read_only_alias(self, account: str, container: str, blob: str, source: SnapshotRef) -> None:
        """A read-only blob whose content IS the frozen source version (same layer: shared lineage)."""
        with self._tx():
            self._ensure_container(account, container)
            layer = self._frozen_layer(source)
            src = self._row(source.account, source.container, source.blob, source.snapshot)
            self._replaceable(account, container, blob, None, None)
            self._insert_blob(
                account,
                container,
                blob,
                LIVE,
                "PageBlob",
                layer,
                src[6],
                json.loads(src[7]),
                src[8],
                read_only=True,
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
            self._insert_blob(
                account, container, blob, LIVE, "BlockBlob", layer, len(data), metadata or {}, content_type
            )
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
            if size < row[6]:
                self.store.clear(row[5], size, row[6] - size)
            self._touch(row, size=size)
            return self._props(self._row(account, container, blob, None))

    def _page_target(self, row: tuple, offset: int, length: int) -> None:
        _aligned(offset, "offset")
        _aligned(length, "length")
        if length == 0 or offset + length > row[6]:
            raise errors.invalid_page_range(
                f"The page range {offset}-{offset + length - 1} is empty or beyond the blob size {row[6]}."
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
            apply(row[5])
            self._touch(row)
            return self._props(self._row(ref.account, ref.container, ref.blob, None))

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
        source_layer = self._row(source.account, source.container, source.blob, source.snapshot)[5]
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
        row = self._row(account, container, blob, snapshot)
        return self.store.read(row[5], offset, length)

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
            self._touch(row, metadata=json.dumps(metadata))
            return self._props(self._row(account, container, blob, None))

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
            self._touch(row, content_type=content_type)
            return self._props(self._row(account, container, blob, None))

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
                self._check_lease(row, lease_id, write=False)
            _check_conditions(self._props(row), conditions, read=False)
            snap = snapshot_id(self._clock.tick())
            self.store.freeze(row[5])
            snap_meta = json.loads(row[7]) if metadata is None else metadata
            self._insert_blob(
                account,
                container,
                blob,
                snap,
                row[4],
                row[5],
                row[6],
                snap_meta,
                row[8],
                read_only=bool(row[12]),
            )
            # A snapshot reports the base blob's ETag, Last-Modified and creation time of that moment.
            self._update((*row[:3], snap), created=row[11], etag=row[9], last_modified=row[10])
            self._update(row, layer=self.store.new_layer(row[5]))
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
            self._check_lease(row, lease_id, write=delete_snapshots != "only")
            _check_conditions(self._props(row), conditions, read=False)
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
        return self._row(account, container, blob, snapshot)[6]

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
            prev = self._row(previous.account, previous.container, previous.blob, previous.snapshot)
        except errors.BlobError as exc:
            raise errors.previous_snapshot_not_found() from exc
        if previous.snapshot is None and not prev[12]:
            raise errors.previous_snapshot_not_found("The previous version must be a snapshot.")
        if (props.size > DIFF_BOUNDARY) != (prev[6] > DIFF_BOUNDARY):
            raise errors.snapshot_diff_across_resize_not_supported()
        if not self.store.is_ancestor(prev[5], props.layer):
            raise errors.previous_snapshot_operation_not_supported()
        return prev[5]

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
        """Azure's blob lease state machine: acquire, renew, release, change, break."""
        with self._tx():
            row = self._row(account, container, blob, None)
            _check_conditions(self._props(row), conditions, read=False)
            state, current = self._lease(row)
            if action == "acquire":
                new_id = self._acquire(row, state, current, proposed_id, duration)
                return self._lease_result(row, new_id, None)
            if action == "break":
                return self._lease_result(row, None, self._break(row, state, break_period))
            if lease_id is None:
                raise errors.missing_required_header("x-ms-lease-id is required for this lease action.")
            if current is None or state == "available":
                raise errors.lease_not_present_with_lease_operation()
            if action == "change":
                if proposed_id is None:
                    raise errors.missing_required_header(
                        "x-ms-proposed-lease-id is required to change a lease."
                    )
                if state == "breaking":
                    raise errors.lease_is_breaking_and_cannot_be_changed()
                if state != "leased":
                    raise errors.lease_not_present_with_lease_operation()
                if current not in (lease_id, proposed_id):  # proposed == current: a retried change
                    raise errors.lease_id_mismatch_with_lease_operation()
                self._update(row, lease_id=proposed_id)
                return self._lease_result(row, proposed_id, None)
            if lease_id != current:
                raise errors.lease_id_mismatch_with_lease_operation()
            if action == "renew":
                if state in ("breaking", "broken"):
                    raise errors.lease_is_broken_and_cannot_be_renewed()
                expiry = None if row[15] == -1 else time.time() + row[15]
                self._update(row, lease_state="leased", lease_expiry=expiry)
                return self._lease_result(row, current, None)
            if action == "release":
                self._update(
                    row, lease_id=None, lease_state="available", lease_duration=None, lease_expiry=None
                )
                return self._lease_result(row, None, None)
            raise errors.invalid_header_value(f"Unknown x-ms-lease-action {action!r}.")

    def _acquire(
        self, row: tuple, state: str, current: str | None, proposed_id: str | None, duration: int | None
    ) -> str:
        """Acquiring again with the current ID renews with the new duration, as in Azure."""
        if duration is None or not (duration == -1 or 15 <= duration <= 60):
            raise errors.invalid_header_value("x-ms-lease-duration must be -1 or between 15 and 60.")
        if state == "breaking":
            if proposed_id == current:
                raise errors.lease_is_breaking_and_cannot_be_acquired()
            raise errors.lease_already_present()
        if state == "leased" and proposed_id != current:
            raise errors.lease_already_present()
        new_id = proposed_id or str(uuid.uuid4())
        expiry = None if duration == -1 else time.time() + duration
        self._update(
            row,
            lease_id=new_id,
            lease_state="leased",
            lease_duration=duration,
            lease_expiry=expiry,
            break_at=None,
        )
        return new_id

    def _break(self, row: tuple, state: str, break_period: int | None) -> int:
        """Break: immediately for an infinite lease without a period, else after min(period, time left).

        Returns the seconds until the lease is broken (x-ms-lease-time).
        """
        if break_period is not None and not 0 <= break_period <= 60:
            raise errors.invalid_header_value("x-ms-lease-break-period must be between 0 and 60.")
        if state == "available":
            raise errors.lease_not_present_with_lease_operation()
        now = time.time()
        if state in ("expired", "broken"):
            self._update(row, lease_state="broken", break_at=now)
            return 0
        left = row[17] - now if state == "breaking" else None if row[15] == -1 else row[16] - now
        period = float(break_period if break_period is not None else left or 0)
        if left is not None:
            period = min(period, max(left, 0.0))
        self._update(row, lease_state="breaking", break_at=now + period)
        return math.ceil(period)

    def _lease_result(self, row: tuple, lease_id: str | None, lease_time: int | None) -> LeaseResult:
        return LeaseResult(lease_id, lease_time, self._props(self._row(row[0], row[1], row[2], None)))

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
        fields = {"sv": API_VERSION, "sr": "b", "si": policy_id}
        sig = sign(self.account_key, service_string_to_sign(account, f"/{container}/{blob}", fields))
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {**fields, "sig": sig}.items())
        return policy_id, f"{self.base_url}/{account}/{container}/{quote(blob)}?{query}"

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

    def policy(
        self, account: str, container: str, policy_id: str
    ) -> tuple[str, float | None, float | None] | None:
        """(permissions, start, expiry) of a stored access policy, or None when it does not exist."""
        return self._db.execute(
            "SELECT permissions, start, expiry FROM policies WHERE account = ? AND container = ? AND id = ?",
            (account, container, policy_id),
        ).fetchone()


def service_string_to_sign(account: str, path: str, q: dict[str, str]) -> str:
    """The service SAS string-to-sign of azure-storage-blob (sv 2020-12-06 and later, no delegation key)."""
    fields = ["sp", "st", "se"]
    head = "".join(q.get(k, "") + "\n" for k in fields) + f"/blob/{account}{path}\n"
    tail = ["si", "sip", "spr", "sv", "sr", "snapshot", "ses", "rscc", "rscd", "rsce", "rscl", "rsct"]
    return head + "\n".join(q.get(k, "") for k in tail)


def _check_conditions(props: BlobProps | None, conditions: Conditions | None, *, read: bool) -> None:
    """If-Match / If-None-Match / If-(Un)Modified-Since; a failed read precondition is 304 (status only)."""
    if conditions is None:
        return
    etag = props.etag if props else None
    modified = int(props.last_modified) if props else None
    if conditions.if_match is not None and (etag is None or conditions.if_match not in ("*", etag)):
        raise errors.condition_not_met()
    if (
        conditions.if_unmodified_since is not None
        and modified is not None
        and modified > conditions.if_unmodified_since
    ):
        raise errors.condition_not_met()
    not_modified = (
        conditions.if_none_match is not None and etag is not None and conditions.if_none_match in ("*", etag)
    ) or (
        conditions.if_modified_since is not None
        and modified is not None
        and modified <= conditions.if_modified_since
    )
    if not_modified:
        raise errors.not_modified() if read else errors.condition_not_met()


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
