"""The blob plane's typed values: what wire.py serializes and the backend (backend.py)
returns, so the wire format needs no database and the backend no HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from replicator.emulator.blob.leases import LeaseInfo


@dataclass(frozen=True)
class SnapshotRef:
    """A blob version by name: `snapshot` None is the live blob."""

    account: str
    container: str
    blob: str
    snapshot: str | None


@dataclass(frozen=True)
class StoredPolicy:
    """A stored access policy of a container (Set Container ACL): what a SAS with `si=id` may do."""

    id: str
    permissions: str
    start: float | None
    expiry: float | None


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
