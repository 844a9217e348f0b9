"""The target: one page blob (the base blob, rewritten by each run) and its restore points (blob snapshots).

A small adapter over azure-storage-blob aio. It knows the Azure surface (lease, resize, Put Page,
Put Page From URL, Snapshot Blob, metadata) and the replication state kept in the base blob's
metadata; it owns no concurrency and no retry policy of its own for chunk writes (see pipeline.py).

Who retries what, at this layer: control calls (properties, metadata, lease, resize, snapshot) go
through the SDK's storage retry policy (`recovery.storage_retry`: 3 retries, short exponential backoff). Chunk
writes (`copy_from_url`, `put_pages`, `clear`) pass `retry_total=0` so the SDK does not retry them:
the pipeline's retry loop (plumbing.retry) owns those retries (it also honours Retry-After and re-grants an
expired source SAS, which the SDK cannot do). Retries are therefore never stacked.

Target state schema (metadata of the base blob; values are ASCII strings):

    replicator_schema                 "1"
    source_disk_id, source_disk_unique_id
    last_snapshot_id, last_snapshot_unique_id, last_snapshot_time, last_snapshot_name
    last_restore_point                blob snapshot timestamp holding last_snapshot
    inprogress_snapshot_id, inprogress_snapshot_unique_id, inprogress_snapshot_time,
    inprogress_snapshot_name          the source snapshot being written (absent when idle)
    inprogress_base_id                the source snapshot of the diff base ("" for a full copy)
    inprogress_base_unique_id         its uniqueId: a base re-created under the same name is not the base
    inprogress_mode, inprogress_reason
    inprogress_checkpoint             every op of the plan below this offset is written
    inprogress_total_bytes            the size being written: the checkpoint is an offset of this many
                                      bytes (`replicate status` shows checkpoint of total)

A restore point is a blob snapshot whose metadata holds (RestorePointMeta, the one codec that writes
and reads it): source_disk_id, source_disk_unique_id, snapshot_id, snapshot_unique_id, snapshot_time,
snapshot_name, size_bytes, logical_sector_size, mode ("full" | "diff"), reason, base_snapshot_id; and
commit_id, the tag `commit` finds it by after a lost answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobType
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, ContainerClient

from replicator.core import messages, permissions
from replicator.core.errors import LockedError, ReplicationError, UserError
from replicator.core.ranges import Op, Range
from replicator.observe.jsonlog import event
from replicator.plumbing import recovery, retry, urlcheck
from replicator.plumbing.blobio import read_range, read_range_md5
from replicator.plumbing.credentials import async_credential, transport_kwargs
from replicator.settings.config import Config

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
"""Default lease length (--lease-duration): rides out a renewal hiccup, yet a killed run frees the
target within a minute."""
RENEW_EVERY_SECONDS = 15
"""Renew at a quarter of the lease, so three consecutive renewal failures still leave the lease held."""
MAX_BLOB_BYTES = 8 * 1024**4
"""Largest page blob (8 TiB): a larger source cannot be replicated into one."""
SCHEMA = "1"


RENEW_RETRY_SECONDS = 2.0
"""Bound of the wait between renewal attempts after a transient failure (full jitter, not doubled: the
lease must be renewed before it expires; retried until then)."""
RELEASE_TIMEOUT_SECONDS = 30.0
"""Bound on releasing the lease at the end of a run; an unreleased lease expires on its own."""


async def keep_renewed(renew: Callable[[], Awaitable[object]], lease_seconds: float) -> BaseException:
    """Renew a lease every quarter of `lease_seconds` until cancelled; returns why it was lost.

    Lost means the service refused a renewal for good (409 LeaseIdMismatch or LeaseLost: broken or
    taken by someone else; any other non-transient answer, e.g. 403), or no renewal succeeded before
    the lease would expire. Every other failure (timeouts, resets, 5xx, anything unexpected) is
    retried until then (retry.backoff, clipped to the expiry): a renewer that dies silently would
    leave the run writing without a lease.
    """
    loop = asyncio.get_running_loop()
    interval = lease_seconds * RENEW_EVERY_SECONDS / LEASE_SECONDS
    expires = loop.time() + lease_seconds  # measured from before the request: conservative
    while True:
        await asyncio.sleep(interval)
        failures = 0
        while True:
            sent = loop.time()
            left = expires - sent
            if left <= 0:
                return TimeoutError(f"no renewal succeeded within the {lease_seconds:g} s lease")
            try:
                async with asyncio.timeout(left):
                    await renew()
                expires = sent + lease_seconds
                break
            except Exception as exc:
                if isinstance(exc, HttpResponseError) and not retry.is_transient(exc):
                    return exc
                log.info("renewing the lease failed (%s); retrying", messages.describe(exc))
                failures += 1
                wait = retry.backoff(failures, first=RENEW_RETRY_SECONDS, cap=RENEW_RETRY_SECONDS, exc=exc)
            await asyncio.sleep(min(wait, interval, max(0.0, expires - loop.time())))


def client_kwargs() -> dict[str, Any]:
    """Transport (pooled TLS with the configured CA) and retry policy of every storage client we build."""
    return {**transport_kwargs(), "retry_policy": recovery.storage_retry(recovery.CONTROL_RETRIES)}


@dataclass(frozen=True)
class SnapshotRef:
    """The identity of a source snapshot as recorded on the target."""

    id: str
    unique_id: str
    time: str  # ISO 8601 creation time
    name: str


@dataclass(frozen=True)
class InProgress:
    """A replication that started and has not committed: what the next run resumes."""

    snapshot: SnapshotRef
    base_id: str | None  # None: full copy
    mode: str
    reason: str
    checkpoint: int
    base_unique_id: str | None = None  # the base's uniqueId; None for a full copy (or an older writer)
    total_bytes: int | None = None  # the size being written (checkpoint of total); None: an older writer


@dataclass(frozen=True)
class State:
    """The replication state kept in the base blob's metadata."""

    disk_id: str | None = None
    disk_unique_id: str | None = None
    last: SnapshotRef | None = None
    last_restore_point: str | None = None
    in_progress: InProgress | None = None

    def to_metadata(self) -> dict[str, str]:
        meta = {"replicator_schema": SCHEMA}
        if self.disk_id:
            meta |= {"source_disk_id": self.disk_id, "source_disk_unique_id": self.disk_unique_id or ""}
        if self.last:
            meta |= _ref_meta("last_snapshot", self.last)
            meta["last_restore_point"] = self.last_restore_point or ""
        if self.in_progress:
            p = self.in_progress
            meta |= _ref_meta("inprogress_snapshot", p.snapshot)
            meta |= {
                "inprogress_base_id": p.base_id or "",
                "inprogress_base_unique_id": p.base_unique_id or "",
                "inprogress_mode": p.mode,
                "inprogress_reason": p.reason,
                "inprogress_checkpoint": str(p.checkpoint),
            }
            if p.total_bytes is not None:
                meta["inprogress_total_bytes"] = str(p.total_bytes)
        return {k: _ascii(v) for k, v in meta.items()}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> State:
        meta = {k.lower(): v for k, v in meta.items()}
        if "replicator_schema" not in meta:
            return cls()
        if meta["replicator_schema"] != SCHEMA:
            raise UserError(
                f"the target was written by an unknown replicator schema {meta['replicator_schema']!r}."
            )
        progress = None
        if ref := _meta_ref("inprogress_snapshot", meta):
            progress = InProgress(
                ref,
                meta.get("inprogress_base_id") or None,
                meta.get("inprogress_mode", "full"),
                meta.get("inprogress_reason", ""),
                int(meta.get("inprogress_checkpoint") or 0),
                meta.get("inprogress_base_unique_id") or None,
                int(meta["inprogress_total_bytes"]) if meta.get("inprogress_total_bytes") else None,
            )
        return cls(
            meta.get("source_disk_id") or None,
            meta.get("source_disk_unique_id") or None,
            _meta_ref("last_snapshot", meta),
            meta.get("last_restore_point") or None,
            progress,
        )


def _ascii(value: str) -> str:
    """Metadata travels in HTTP headers: keep it ASCII (percent-encode anything else)."""
    return value if value.isascii() else quote(value, safe="/:-_.~ ")


def _ref_meta(prefix: str, ref: SnapshotRef) -> dict[str, str]:
    return {f"{prefix}_{f.name}": getattr(ref, f.name) for f in fields(SnapshotRef)}


def _meta_ref(prefix: str, meta: Mapping[str, str]) -> SnapshotRef | None:
    if not meta.get(f"{prefix}_id"):
        return None
    return SnapshotRef(**{f.name: meta.get(f"{prefix}_{f.name}", "") for f in fields(SnapshotRef)})


@dataclass(frozen=True)
class RestorePointMeta:
    """What a restore point records about the source snapshot it holds: its blob snapshot's metadata.

    The restore point's counterpart of `State`, and like it the only code that spells its keys: the
    pipeline writes it at commit; `list`, `restore`, `status` and the next run read it back. The keys
    are the field names and every value is an ASCII string (the wire format since the first release,
    so restore points written by any version read the same). A key that is absent (a blob snapshot
    taken by hand copies the base blob's metadata instead) reads as the field's default.
    """

    source_disk_id: str = ""
    source_disk_unique_id: str = ""
    snapshot_id: str = ""
    snapshot_unique_id: str = ""
    snapshot_time: str = ""  # the source snapshot's ISO 8601 creation time
    snapshot_name: str = ""
    size_bytes: int = 0
    logical_sector_size: int = 512
    mode: str = ""  # "full" | "diff"
    reason: str = ""
    base_snapshot_id: str = ""  # "" for a full copy

    def to_metadata(self) -> dict[str, str]:
        return {f.name: _ascii(str(getattr(self, f.name))) for f in fields(self)}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> RestorePointMeta:
        """Decode listed metadata (keys in any case; other keys, such as commit_id, are ignored)."""
        meta = {k.lower(): v for k, v in meta.items()}
        text = {f.name: meta.get(f.name, "") for f in fields(cls)}
        return cls(
            **text
            | {
                "size_bytes": int(text["size_bytes"] or 0),
                "logical_sector_size": int(text["logical_sector_size"] or 512),
            }
        )


@dataclass(frozen=True)
class RestorePoint:
    """One blob snapshot of the target and the source snapshot it holds."""

    id: str  # the blob snapshot timestamp
    metadata: dict[str, str]  # as listed: RestorePointMeta's keys and the commit_id tag

    @property
    def meta(self) -> RestorePointMeta:
        return RestorePointMeta.from_metadata(self.metadata)


@dataclass(frozen=True)
class Inspection:
    """What the target looks like before a run touches it."""

    exists: bool
    size: int
    state: State
    leased: bool = False  # a run holds the lease now (list shows it; a run finds out by taking the lease)
    modified: datetime | None = None  # Last-Modified: the last write, metadata included (a checkpoint)


class PageBlobTarget:
    """The target base blob, its container and its restore points; one instance per run.

    `command` (a key of permissions.COMMANDS) says what the run will do here: a SAS in the URL that
    cannot do it is refused before any request, and a 403 becomes the same kind of sentence.
    """

    def __init__(self, config: Config, *, command: str) -> None:
        """Build the clients (no request yet). A SAS in the URL is used as is; else the token credential."""
        self.url = url = urlcheck.parse_target_url(config.target, allow_http=config.allow_http)
        permissions.check_sas(config.target, command)
        self._command = command
        self._sas = permissions.parse_sas(config.target)
        self._token = None if url.sas else async_credential(config)
        self._credential: Any = url.sas or self._token
        self._blob = BlobClient(
            url.account_url, url.container, url.blob, credential=self._credential, **client_kwargs()
        )
        self._container = ContainerClient(
            url.account_url, url.container, credential=self._credential, **client_kwargs()
        )
        self._lease: BlobLeaseClient | None = None
        self._lease_wait = config.lease_wait_seconds
        self._lease_seconds = config.lease_seconds

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._blob.close()
        await self._container.close()
        if self._token is not None:
            await self._token.close()

    async def inspect(self) -> Inspection:
        """Read the target's properties and state; UserError for a block blob or an unreachable endpoint."""
        try:
            # One retry only: this is the first contact, and an unreachable endpoint is reported
            # within seconds, not after the full control-call backoff.
            props = await self._blob.get_blob_properties(retry_total=1)
        except ResourceNotFoundError:
            return Inspection(False, 0, State())
        except ServiceRequestError as exc:
            # A certificate that cannot be verified is configuration (exit 2); no answer at all may be
            # a typo or an outage, and an unattended schedule must retry an outage: exit 1, not 2.
            error = UserError if messages.is_certificate_failure(exc) else ReplicationError
            raise error(messages.unreachable("target endpoint", self.url.account_url, exc)) from None
        except ClientAuthenticationError as exc:
            if messages.is_missing_credential(exc):
                raise UserError(messages.missing_credential(self.url.account_url)) from None
            if exc.status_code == 403:
                raise self._refused("read", exc) from None
            raise UserError(
                f"access to {self.url.display} was denied ({messages.describe(exc)}); "
                "check the credential or SAS."
            ) from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise self._refused("read", exc) from None
            raise
        if props.blob_type != BlobType.PAGEBLOB:
            raise UserError(
                f"the target {self.url.display} is a {props.blob_type} blob; it must be a page blob."
            )
        leased = props.lease.state == "leased" if props.lease else False
        state = State.from_metadata(props.metadata or {})
        return Inspection(True, props.size, state, leased, props.last_modified)

    def _refused(self, operation: str, exc: HttpResponseError) -> UserError:
        """A 403 on `operation` (a key of permissions.OPERATIONS) as the sentence naming what is missing."""
        code = messages.error_code(exc) or None
        return permissions.refused(self._command, operation, code, self._sas, self.url.display)

    @contextlib.contextmanager
    def _authorized(self, operation: str) -> Iterator[None]:
        """Turn a 403 of the block into `_refused`: the credential lacks what `operation` needs."""
        try:
            yield
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise self._refused(operation, exc) from None
            raise

    async def create(self, size: int) -> bool:
        """Create the container and the blob if missing; True when this call created the blob.

        Never trust True to mean "blank": another run may lease and write the blob before this run gets
        the lease; `is_blank`, under the lease, decides that.

        If-None-Match: * guarantees an existing blob (maybe being written by another run) is never reset.
        Creating the container is best-effort: a blob- or container-scoped SAS may not create one
        (Azure needs an account SAS or a role for that), and the blob write below then decides.
        """
        container_denied = False
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            container_denied = True
        try:
            await self._blob.create_page_blob(size, match_condition=MatchConditions.IfMissing)
        except ResourceExistsError:
            return False
        except ResourceNotFoundError:
            if not container_denied:
                raise
            raise UserError(
                f"the container {self.url.container} does not exist and the target's SAS cannot create it; "
                "create it, or use an account SAS (resource types including c) or a role "
                "(Storage Blob Data Contributor) instead."
            ) from None
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                return False
            if exc.status_code == 403:
                raise self._refused("create", exc) from None
            raise
        return True

    async def is_blank(self) -> bool:
        """True when the blob holds no replication state and no valid page: a full copy needs no clears.

        Decided under the lease (nobody else can write then), never from `create()`: a blob this run
        created may have been leased and written by another run before this one got the lease.
        One listing request of at most one range, whatever the blob's size.
        """
        with self._authorized("read"):
            props = await self._blob.get_blob_properties()
            if State.from_metadata(props.metadata or {}) != State():
                return False
            async for page in self._blob.list_page_ranges(results_per_page=1):
                if not page.cleared:
                    return False
        return True

    @contextlib.asynccontextmanager
    async def leased(self, wait_seconds: float | None = None) -> AsyncIterator[None]:
        """Hold the blob's lease for the block, renewing it in the background.

        Waits for a held lease up to `wait_seconds` (default: --lease-wait; a time budget passes less).
        A lost lease (renewal refused) cancels the block and surfaces as ReplicationError: writing on
        without the lease could interleave with another writer.
        """
        lease = BlobLeaseClient(self._blob)
        wait = self._lease_wait if wait_seconds is None else wait_seconds
        waited = f"waited {wait:.0f} s; " if wait else ""
        with self._authorized("lease"):
            acquired = await recovery.acquire_waiting(
                lambda: lease.acquire(lease_duration=self._lease_seconds),
                wait,
                lambda: log.warning(
                    "the lease on %s is held; waiting up to %.0f s "
                    "(a killed run's lease expires within %d s)",
                    self.url.display,
                    wait,
                    self._lease_seconds,
                ),
            )
        if not acquired:
            raise LockedError(
                f"another replication holds the lease on {self.url.display}; {waited}wait for it to finish "
                f"(a killed run's lease expires within {self._lease_seconds} s)."
            )
        self._lease = lease
        shown = self.url.display
        event("lease_acquired", logging.DEBUG, message=f"acquired the lease on {shown}", target=shown)
        owner = asyncio.current_task()
        lost: list[BaseException] = []

        async def renew() -> None:
            await lease.renew()
            event("lease_renewed", logging.DEBUG, message=f"renewed the lease on {shown}", target=shown)

        async def watch() -> None:
            lost.append(await keep_renewed(renew, self._lease_seconds))
            log.warning("lost the lease on %s: %s", self.url.display, messages.describe(lost[0]))
            if owner is not None:
                owner.cancel()

        renewer = asyncio.create_task(watch(), name="lease-renewer")
        try:
            yield
        except asyncio.CancelledError:
            if lost and owner is not None and owner.uncancel() == 0:
                raise ReplicationError(
                    f"lost the lease on {self.url.display} ({messages.describe(lost[0])}); stopped writing. "
                    "A rerun resumes from the checkpoint."
                ) from None
            raise
        finally:
            # Neither the renewer's end nor the release may replace the block's own outcome.
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({renewer})
            self._lease = None
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                    await asyncio.shield(lease.release())
                event("lease_released", logging.DEBUG, message=f"released the lease on {shown}", target=shown)
            except Exception as exc:  # it expires on its own within a lease
                log.warning("could not release the lease on %s: %s", self.url.display, messages.describe(exc))

    @property
    def client(self) -> BlobClient:
        """The base blob's client, for reads outside this adapter (--verify compares through it)."""
        return self._blob

    def _lease_kw(self) -> dict[str, Any]:
        return {"lease": self._lease} if self._lease is not None else {}

    async def resize(self, size: int) -> None:
        with self._authorized("write"):
            await self._blob.resize_blob(size, **self._lease_kw())

    async def write_state(self, state: State) -> None:
        """Replace the base blob's metadata with `state` (Set Blob Metadata replaces every key)."""
        with self._authorized("write"):
            await self._blob.set_blob_metadata(state.to_metadata(), **self._lease_kw())

    async def copy_from_url(self, op: Op, source_url: str) -> None:
        """Put Page From URL: the service copies `op.range` of the source into the same range here."""
        r = op.range
        await self._blob.upload_pages_from_url(
            source_url, r.start, r.length, r.start, retry_total=0, **self._lease_kw()
        )

    async def put_pages(self, op: Op, data: bytes, md5: bytes) -> None:
        """Put Page with Content-MD5 (`md5`: the digest of `data`, as checked when it was read), so a
        body corrupted on the way is refused instead of written, without hashing it twice."""
        await self._blob.upload_page(
            data,
            op.range.start,
            op.range.length,
            transactional_content_md5=md5,
            retry_total=0,
            **self._lease_kw(),
        )

    async def clear(self, op: Op) -> None:
        await self._blob.clear_page(op.range.start, op.range.length, retry_total=0, **self._lease_kw())

    async def commit(self, meta: RestorePointMeta) -> str:
        """Take the restore point: a blob snapshot carrying `meta`; returns its timestamp (the ID).

        Exactly one, even when an answer is lost (recovery.commit_once: tagged with a `commit_id`).
        """
        commit_id = recovery.new_commit_id()
        tagged = meta.to_metadata() | {"commit_id": commit_id}

        async def create() -> str:
            with self._authorized("snapshot"):
                result = await self._blob.create_snapshot(metadata=tagged, retry_total=0, **self._lease_kw())
            return str(result["snapshot"])

        async def tagged_points() -> list[str]:
            points = await self.restore_points(required=False)
            return [p.id for p in points if p.metadata.get("commit_id") == commit_id]

        async def find() -> str | None:
            return next(iter(await tagged_points()), None)

        taken = await recovery.commit_once(create, find)
        # aiohttp silently resends a PUT whose keep-alive connection closed without an answer, so
        # even one attempt may have taken two snapshots: keep the oldest, delete the rest (when the
        # credential can list and delete them: both are optional needs of replicate).
        first, *extra = await tagged_points() or [taken]
        for point in extra:
            log.info("deleting restore point %s, a duplicate of %s taken by a resent request", point, first)
            try:
                await self._container.get_blob_client(self.url.blob, snapshot=point).delete_blob()
            except HttpResponseError as exc:
                if exc.status_code != 403:
                    raise
                log.warning(
                    "the target credential cannot delete restore point %s, a duplicate of %s (%s); "
                    "prune it with a credential that can",
                    point,
                    first,
                    messages.describe(exc),
                )
        return first

    async def restore_points(self, *, required: bool = True) -> list[RestorePoint]:
        """Every blob snapshot of the base blob, oldest first (bounded by the number of restore points).

        Listing is a container operation (permissions.OPERATIONS["list"]). `required` callers (list,
        prune, restore, status) get the UserError naming what is missing; the others (duplicate
        detection after a commit, adopting a commit a killed run lost) go on without it, which costs
        at worst a duplicate restore point.
        """
        points = []
        try:
            async for item in self._container.list_blobs(
                name_starts_with=self.url.blob, include=["snapshots", "metadata"]
            ):
                if item.name == self.url.blob and item.snapshot:
                    points.append(RestorePoint(item.snapshot, dict(item.metadata or {})))
        except HttpResponseError as exc:
            if messages.is_missing_credential(exc):
                raise UserError(messages.missing_credential(self.url.account_url)) from None
            if exc.status_code != 403:
                raise
            if required:
                raise self._refused("list", exc) from None
            log.warning(
                "the target credential cannot list the container of %s (%s); restore points are not "
                "checked for duplicates",
                self.url.display,
                messages.describe(exc),
            )
            return []
        return sorted(points, key=lambda p: p.id)

    async def delete_restore_point(self, point_id: str) -> None:
        """Delete one blob snapshot (prune), under the lease when this instance holds it."""
        # A client from the container shares its pipeline and connections (nothing to close).
        client = self._container.get_blob_client(self.url.blob, snapshot=point_id)
        with self._authorized("delete"):
            await client.delete_blob(**self._lease_kw())

    async def read(self, r: Range, snapshot: str | None = None) -> bytes:
        """The bytes of `r` of the base blob, or of restore point `snapshot`."""
        with self._authorized("read"):
            if snapshot is None:
                return await read_range(self._blob, r)
            async with BlobClient(
                self.url.account_url,
                self.url.container,
                self.url.blob,
                snapshot=snapshot,
                credential=self._credential,
                **client_kwargs(),
            ) as client:
                return await read_range(client, r)


class SasBlobReader:
    """Ranged reads of a snapshot through its SAS URL (stream mode and --verify).

    One client per URL, replaced when the grant hands out a fresh URL, so reads share a connection pool.
    The SDK does not retry `read` (the caller's retry loop does, and re-grants on 403).
    """

    def __init__(self) -> None:
        self._url: str | None = None
        self._clients: list[BlobClient] = []  # older ones may still serve reads in flight; closed at the end

    def _client_for(self, url: str) -> BlobClient:
        if not self._clients or url != self._url:
            self._url = url
            self._clients.append(BlobClient.from_blob_url(url, **client_kwargs()))
        return self._clients[-1]

    async def read(self, url: str, r: Range) -> tuple[bytes, bytes]:
        """The bytes of `r` and their MD5 digest, checked against the service's Content-MD5."""
        return await read_range_md5(self._client_for(url), r, retry_total=0)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()
