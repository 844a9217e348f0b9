"""The base page blob: inspect, create, resize, write, read its state, commit a restore point.

A small adapter over azure-storage-blob aio. It knows the Azure surface (lease, resize, Put Page,
Put Page From URL, Snapshot Blob, metadata) and the replication state kept in the base blob's
metadata; it owns no concurrency and no retry policy of its own for chunk writes (see engine.copier).
The metadata codecs (the base blob's state, a restore point's record) are target.state; keeping the
lease renewed is target.lease.

Who retries what, at this layer: control calls (properties, metadata, lease, resize, snapshot) go
through the SDK's storage retry policy (`recovery.storage_retry`: 3 retries, short exponential
backoff). Chunk writes (`copy_from_url`, `put_pages`, `clear`) do not go through the SDK at all
(plumbing.page_writes: plain requests on the shared pool, the SDK's exceptions) and are not retried
there: engine.copier's retry loop (plumbing.retry) owns those retries (it also honours Retry-After and
re-grants an expired source SAS, which the SDK cannot do). Retries are therefore never stacked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Self

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

from replicator.core import messages, permissions, premium, stripes
from replicator.core.errors import LimitError, LockedError, ReplicationError, UserError
from replicator.core.ranges import Op, Range
from replicator.core.stripes import stripe_blob_name
from replicator.plumbing import recovery, urlcheck
from replicator.plumbing.blobio import read_range
from replicator.plumbing.credentials import CachedToken, async_credential, client_kwargs, ssl_context
from replicator.plumbing.page_writes import PageWrite, PageWriter
from replicator.settings.config import Config
from replicator.target import account, manifest
from replicator.target.lease import renewed
from replicator.target.state import RestorePoint, RestorePointMeta, State
from replicator.target.stripe_set import LeaseSet, StripeSet, StripeSnapshot, orphans

log = logging.getLogger(__name__)

STORAGE_SCOPE = "https://storage.azure.com/.default"
"""The token scope of Azure Storage's data plane (a copy source read with this identity's token)."""


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
        self._bearer = None if self._token is None else CachedToken(self._token, STORAGE_SCOPE)
        self._writer = PageWriter(self._authorization, ssl_context())
        self._blob = BlobClient(
            url.account_url, url.container, url.blob, credential=self._credential, **client_kwargs()
        )
        self._container = ContainerClient(
            url.account_url, url.container, credential=self._credential, **client_kwargs()
        )
        self._lease: LeaseSet | None = None
        self._lease_wait = config.lease_wait_seconds
        self._lease_seconds = config.lease_seconds
        self.stripes = StripeSet(self._container, self._blob, url.blob, url.display)
        self._base_size = 0  # the base blob's size, as inspect() read it and resize() left it
        self.stripe_snapshots: list[StripeSnapshot] = []  # every stripe snapshot the last listing found
        self._orphans: list[StripeSnapshot] = []  # those of them no restore point holds

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._blob.close()
        await self._container.close()
        await self._writer.close()
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
        self._base_size = props.size
        return Inspection(True, props.size, state, leased, props.last_modified)

    async def account_kind(self) -> tuple[premium.TargetKind, str | None]:
        """The target account's SKU and kind, read once per run (target.account.read_kind)."""
        return await account.read_kind(self._blob, self.url.display)

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
            # a striped target's base blob is stripe 0 (core.stripes); its stripes are made under the lease
            base_length = stripes.layout(size)[0].length
            await self._blob.create_page_blob(base_length, match_condition=MatchConditions.IfMissing)
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
        self._lease = leases = LeaseSet(lease)
        try:
            async with renewed(leases, self._lease_seconds, self.url.display):
                yield
        finally:
            self._lease = None

    @property
    def client(self) -> BlobClient:
        """The base blob's client, for reads outside this adapter (--verify compares through it)."""
        return self._blob

    def stripe_clients(self, size: int) -> list[tuple[int, int, BlobClient]]:
        """(export offset, length, blob) of every stripe of an export of `size` bytes (--verify)."""
        return [(s.start, s.length, self.stripes.client(s.index)) for s in stripes.layout(size)]

    def route(self, r: Range) -> list[tuple[BlobClient, Range]]:
        """The stripe blobs holding the export range `r`, each with its part of `r` in its offsets."""
        return [(self.stripes.client(index), op.range) for index, op in stripes.split(Op("copy", r))]

    def _lease_of(self, index: int) -> Any:
        """The lease this run holds on stripe `index` (0: the base blob), or None."""
        if self._lease is None:
            return None
        return self._lease.base if index == 0 else self._lease.stripes.get(index)

    def _lease_kw(self, index: int = 0) -> dict[str, Any]:
        """The lease argument of an SDK call on stripe `index`, when this run holds its lease."""
        lease = self._lease_of(index)
        return {"lease": lease} if lease is not None else {}

    async def resize(self, size: int) -> bool:
        """Size the target for an export of `size` bytes: the base blob to stripe 0's length, and
        (a source over 8 TiB) stripes 1.. created, sized and leased (StripeSet.fit), under the lease.
        True when a blob's size changed (the only requests a one-blob target makes are that resize)."""
        base_length = stripes.layout(size)[0].length
        changed = base_length != self._base_size
        with self._authorized("write"):
            if changed:
                await self._blob.resize_blob(base_length, **self._lease_kw())
                self._base_size = base_length
            if self._lease is not None:
                # a killed run's stripe leases expire with its base lease (renewed together): wait one lease
                fitted = await self.stripes.fit(size, self._lease, self._lease_seconds, self._lease_seconds)
                changed = changed or fitted
        return changed

    async def write_state(self, state: State) -> None:
        """Replace the base blob's metadata with `state` (Set Blob Metadata replaces every key)."""
        with self._authorized("write"):
            await self._blob.set_blob_metadata(state.to_metadata(), **self._lease_kw())

    async def copy_from_url(self, op: Op, source_url: str, source_authorization: str | None = None) -> None:
        """Put Page From URL: the service copies `op.range` of the source into the same range here.

        `source_authorization` (`Bearer <token>`, the only scheme Azure accepts there) travels as
        `x-ms-copy-source-authorization`: the disk token of an Entra-ID-protected source. This blob
        keeps its own credential."""
        r = op.range
        index, url, local = self._route(r)  # read at the export offset, written at the stripe's
        write = PageWrite(local, self._lease_id(index), source_url, r, source_authorization)
        await self._writer.send(url, write)

    async def put_pages(self, op: Op, data: bytes, md5: bytes) -> None:
        """Put Page with Content-MD5 (`md5`: the digest of `data`, as checked when it was read), so a
        body corrupted on the way is refused instead of written, without hashing it twice."""
        index, url, local = self._route(op.range)
        await self._writer.send(url, PageWrite(local, self._lease_id(index), md5=md5), data)

    async def clear(self, op: Op) -> None:
        index, url, local = self._route(op.range)
        await self._writer.send(url, PageWrite(local, self._lease_id(index), clear=True))

    def _route(self, r: Range) -> tuple[int, str, Range]:
        """The stripe holding `r`, its blob's URL (SAS included), and `r` in its offsets."""
        index, blob, local = self.stripes.route(r)
        return index, blob.url, local

    def _lease_id(self, index: int) -> str | None:
        """The lease ID a write to stripe `index` (0: the base blob) carries, when this run holds it."""
        lease = self._lease_of(index)
        return lease.id if lease is not None else None

    async def commit(self, meta: RestorePointMeta) -> str:
        """Take the restore point: a blob snapshot carrying `meta`; returns its timestamp (the ID).

        Exactly one, even when an answer is lost (recovery.commit_once: tagged with a `commit_id`).
        A striped target snapshots stripes 1.. first and the base blob LAST: the base blob's snapshot
        is the commit, and its `stripe_snapshots` name theirs. A run killed in between leaves stripe
        snapshots no restore point holds; this commit (or a prune) deletes them (`clean_orphans`).
        """
        commit_id = recovery.new_commit_id()
        with self._authorized("snapshot"), self._snapshot_rules():  # a premium stripe has the same rules
            meta = replace(meta, stripe_snapshots=await self.stripes.snapshot(self._lease))
        tagged = meta.to_metadata() | {"commit_id": commit_id}

        async def create() -> str:
            with self._authorized("snapshot"), self._snapshot_rules():
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
        await self.clean_orphans()
        return first

    async def clean_orphans(self) -> None:
        """Delete the stripe snapshots the last listing (`restore_points`) found no restore point
        holds: left by a run killed between its stripe snapshots and its commit, or by a prune killed
        between a restore point and its stripes. Under the lease; no request when there are none."""
        for item in self._orphans:
            log.info(
                "deleting snapshot %s of %s: no restore point holds it",
                item.snapshot,
                self.stripes.name(item.index),
            )
            try:
                await self.stripes.delete_snapshot(item)
            except HttpResponseError as exc:
                if exc.status_code != 403:
                    raise
                log.warning(
                    "the target credential cannot delete the orphaned stripe snapshot %s of %s (%s); "
                    "prune with a credential that can",
                    item.snapshot,
                    self.stripes.name(item.index),
                    messages.describe(exc),
                )
                break
        self._orphans = []

    @contextlib.contextmanager
    def _snapshot_rules(self) -> Iterator[None]:
        """A premium page blob's refusals of Snapshot Blob as what to do about them: its 100 snapshots
        (prune; the run checks this before copying where it can list) or its one snapshot per ten
        minutes (run again later: the copy is checkpointed, so the rerun only finishes it and commits)."""
        try:
            yield
        except HttpResponseError as exc:
            code = messages.error_code(exc)
            if code == "SnapshotCountExceeded":
                raise UserError(
                    f"{self.url.display} holds the {premium.SNAPSHOT_LIMIT} snapshots a premium page blob "
                    f"can hold (409 SnapshotCountExceeded); prune it (replicate prune --target URL --keep N) "
                    "and run again: the copy is checkpointed, nothing is copied twice."
                ) from None
            if code == "SnapshotOperationRateExceeded":
                minutes = premium.SNAPSHOT_INTERVAL_SECONDS // 60
                raise LimitError(
                    f"{self.url.display} is a premium page blob, which takes one snapshot every {minutes} "
                    "minutes (409 SnapshotOperationRateExceeded); run again later: the copy is "
                    "checkpointed and the rerun commits it.",
                    retry_after_seconds=premium.SNAPSHOT_INTERVAL_SECONDS,
                ) from None
            raise

    async def check_not_a_prefix(self) -> None:
        """UserError (exit 2) when --target names a virtual machine's prefix, not a blob: no blob by its
        name, but group manifests under `<name>/.groups/` (target.manifest). Both live in one flat
        namespace, so without this a disk's run would quietly create a blob named like the VM's folder.
        A credential that cannot list (a blob SAS) or a missing container finds nothing: that is no
        prefix the tool wrote either."""
        folder = f"{self.url.blob}/{manifest.FOLDER}/"
        try:
            async for _ in self._container.list_blobs(name_starts_with=folder, results_per_page=1):
                raise UserError(
                    f"--target {self.url.display} is a virtual machine's prefix (its group manifests are "
                    f"under {folder}), not a page blob; give the disk a blob URL of its own "
                    "(https://<account>.blob.core.windows.net/<container>/<name>.vhd), or pass the VM's "
                    "ID as --source to replicate the VM into this prefix."
                )
        except HttpResponseError as exc:
            if exc.status_code not in (403, 404):
                raise

    async def restore_points(self, *, required: bool = True) -> list[RestorePoint]:
        """Every blob snapshot of the base blob, oldest first (bounded by the number of restore points).

        Listing is a container operation (permissions.OPERATIONS["list"]). `required` callers (list,
        prune, restore, status) get the UserError naming what is missing; the others (duplicate
        detection after a commit, adopting a commit a killed run lost) go on without it, which costs
        at worst a duplicate restore point.
        """
        points, striped = [], []
        self.stripe_snapshots, self._orphans = [], []  # nothing is known until this listing succeeds
        try:
            async for item in self._container.list_blobs(
                name_starts_with=self.url.blob, include=["snapshots", "metadata"]
            ):
                if item.name == self.url.blob and item.snapshot:
                    points.append(RestorePoint(item.snapshot, dict(item.metadata or {})))
                elif item.snapshot and (index := self.stripes.stripe_of(item.name)) is not None:
                    striped.append(StripeSnapshot(index, item.snapshot))
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
        self.stripe_snapshots = striped
        self._orphans = orphans([p.meta.stripe_snapshots for p in points], striped)
        return sorted(points, key=lambda p: p.id)

    async def delete_restore_point(self, point_id: str, stripe_snapshots: tuple[str, ...] = ()) -> None:
        """Delete one restore point (prune), under the lease when this instance holds it: its blob
        snapshot first (the commit record), then its stripes' snapshots (a prune killed in between
        leaves orphans the next commit or prune deletes, never a restore point missing a stripe)."""
        # A client from the container shares its pipeline and connections (nothing to close).
        client = self._container.get_blob_client(self.url.blob, snapshot=point_id)
        with self._authorized("delete"):
            await client.delete_blob(**self._lease_kw())
            for index, snapshot in enumerate(stripe_snapshots, 1):
                await self.stripes.delete_snapshot(StripeSnapshot(index, snapshot))

    def point_client(self, point_id: str) -> BlobClient:
        """A client of restore point `point_id` (its blob snapshot), for reads outside this adapter
        (a drill compares through it); it shares this target's pipeline, so there is nothing to close."""
        return self._container.get_blob_client(self.url.blob, snapshot=point_id)

    def stripe_point_client(self, index: int, snapshot: str) -> BlobClient:
        """A client of stripe `index`'s blob snapshot `snapshot` (core.stripes: stripe 0 is the base
        blob), sharing this target's pipeline like `point_client`."""
        return self._container.get_blob_client(stripe_blob_name(self.url.blob, index), snapshot=snapshot)

    async def copy_source(self, client: BlobClient) -> tuple[str, str | None]:
        """How another blob's Put Page From URL reads `client`'s blob (snapshot): its URL with the
        target's SAS, or, for a target reached with a token, the bare URL and `Bearer <token>` of
        this identity for `x-ms-copy-source-authorization` ("Put Page From URL", Storage's OAuth
        source authorization). Both are secrets: never logged."""
        return client.url, await self._authorization()

    async def _authorization(self) -> str | None:
        """`Bearer <token>` of this target's identity (cached: CachedToken), None for a SAS target
        (a client built with the SAS carries it in its URL)."""
        return None if self._bearer is None else f"Bearer {await self._bearer.get()}"

    async def read(self, r: Range, snapshot: str | None = None, stripe: int = 0) -> bytes:
        """The bytes of `r` of the base blob, or of restore point `snapshot` (of stripe `stripe`'s blob:
        core.stripes)."""
        with self._authorized("read"):
            if snapshot is None:
                return await read_range(self._blob, r)
            async with BlobClient(
                self.url.account_url,
                self.url.container,
                stripe_blob_name(self.url.blob, stripe),
                snapshot=snapshot,
                credential=self._credential,
                **client_kwargs(),
            ) as client:
                return await read_range(client, r)
