"""The blob plane's SQLite tables and what every blob operation shares: rows read by column name,
transactions, ETags, and the lease and condition checks against a row.

The operations live in modules named for what they do (containers.py, blobs.py, page_blobs.py,
snapshots.py, page_ranges.py, access_policies.py), each a class over `BlobRows`; backend.py joins
them into the one `BlobBackend`. Page data lives in the layered `PageStore` on the same connection,
so one transaction covers the bookkeeping (which blob version is which layer, sizes, metadata,
leases) and the pages.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from replicator.emulator.blob import leases
from replicator.emulator.blob.conditions import Conditions, check_conditions
from replicator.emulator.blob.leases import Lease
from replicator.emulator.blob.model import BlobProps, SnapshotRef
from replicator.emulator.blob.store import PageStore
from replicator.emulator.errors import blob as blob_errors

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
CREATE TABLE IF NOT EXISTS entra_protected (
    account TEXT NOT NULL, container TEXT NOT NULL, resource_type TEXT NOT NULL,
    PRIMARY KEY (account, container));
"""

LIVE = ""  # the `snapshot` column value of a base blob
KEY = "account = ? AND container = ? AND name = ? AND snapshot = ?"  # a blob row's primary key
BlobKey = tuple[str, str, str, str]  # its values: account, container, name, snapshot (LIVE for the blob)


class _Ticks:
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


class BlobRows:
    """The database and the row helpers; synchronous and short per call (a test emulator may block).

    `clock` is the wall clock that leases expire by and Last-Modified reads (tests move it).
    """

    def __init__(self, data_dir: Path, *, account_key: str, clock: Callable[[], float] = time.time) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / "blob.sqlite", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.store = PageStore(self._db, data_dir / "pages.dat")
        self.account_key = account_key
        self.base_url = ""  # set once the server knows its port
        self.clock = clock
        self._ticks = _Ticks()

    def close(self) -> None:
        self.store.close()
        self._db.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _etag(self) -> str:
        return f'"0x{self._ticks.tick():X}"'

    def _select(self, sql: str, args: tuple[object, ...]) -> sqlite3.Cursor:
        """Rows read by column name (the page store reads its own rows on the same connection)."""
        cursor = self._db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, args)

    # -- containers -----------------------------------------------------------------------------
    def _container_row(self, account: str, container: str) -> sqlite3.Row | None:
        return self._select(
            "SELECT etag, last_modified, metadata FROM containers WHERE account = ? AND name = ?",
            (account, container),
        ).fetchone()

    def _insert_container(self, account: str, container: str, metadata: dict[str, str]) -> None:
        self._db.execute(
            "INSERT INTO containers VALUES (?, ?, ?, ?, ?)",
            (account, container, self._etag(), self.clock(), json.dumps(metadata)),
        )

    def _ensure_container(self, account: str, container: str) -> None:
        if self._container_row(account, container) is None:
            self._insert_container(account, container, {})

    def _existing_container(self, account: str, container: str) -> None:
        if self._container_row(account, container) is None:
            raise blob_errors.container_not_found()

    # -- blob rows ------------------------------------------------------------------------------
    def _row(self, account: str, container: str, blob: str, snapshot: str | None) -> sqlite3.Row:
        row = self._select(
            f"SELECT * FROM blobs WHERE {KEY}", (account, container, blob, snapshot or LIVE)
        ).fetchone()
        if row is None:
            self._existing_container(account, container)
            raise blob_errors.blob_not_found()
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
            lease=lease_of(row).info(self.clock()),
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
        self._check_conditions(row, conditions, read=True)
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
            raise blob_errors.authorization_permission_mismatch("This blob is a read-only managed snapshot.")
        if page_blob and row["blob_type"] != "PageBlob":
            raise blob_errors.invalid_blob_type()
        self._check_lease(row, lease_id, write=True)
        self._check_conditions(row, conditions, read=False)
        return row

    def _check_lease(self, row: sqlite3.Row, lease_id: str | None, *, write: bool) -> None:
        leases.check(lease_of(row), lease_id, write=write, now=self.clock())

    def _check_conditions(self, row: sqlite3.Row, conditions: Conditions | None, *, read: bool) -> None:
        check_conditions(conditions, row["etag"], row["last_modified"], read=read)

    def _update(self, key: BlobKey, **changes: object) -> None:
        sets = ", ".join(f"{k} = ?" for k in changes)
        self._db.execute(f"UPDATE blobs SET {sets} WHERE {KEY}", (*changes.values(), *key))

    def _touch(self, row: sqlite3.Row, **changes: object) -> BlobProps:
        """Update a blob row as a content or property change (new ETag and Last-Modified); its new props."""
        self._update(row_key(row), etag=self._etag(), last_modified=self.clock(), **changes)
        return self._props(self._row(*row_key(row)))

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
        now = self.clock()
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

    def _replaceable(
        self, account: str, container: str, blob: str, lease_id: str | None, conditions: Conditions | None
    ) -> None:
        """Put Blob over an existing blob: same lease/condition rules as a write, then the old one goes.

        If-None-Match: * over an existing blob is 409 BlobAlreadyExists, not a failed condition (412):
        Azure's answer, as azure-storage-blob's recorded page blob tests show.
        """
        try:
            self._row(account, container, blob, None)
        except blob_errors.BlobError as exc:
            if exc.code != "BlobNotFound":
                raise
            check_conditions(conditions, None, None, read=False)
            return
        if conditions is not None and conditions.if_none_match == "*":
            raise blob_errors.blob_already_exists()
        self._writable(account, container, blob, lease_id, conditions, page_blob=False)
        self._db.execute(f"DELETE FROM blobs WHERE {KEY}", (account, container, blob, LIVE))


def row_key(row: sqlite3.Row) -> BlobKey:
    """The primary key of a blob row, to update it."""
    return row["account"], row["container"], row["name"], row["snapshot"]


def lease_of(row: sqlite3.Row) -> Lease:
    """The row's lease columns as the pure state machine's value (leases.py)."""
    return Lease(
        row["lease_id"], row["lease_state"], row["lease_duration"], row["lease_expiry"], row["break_at"]
    )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises (a coded error or a bug)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
