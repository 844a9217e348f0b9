"""The stripe blobs beside the base blob: where a source larger than one page blob (8 TiB) lands.

The layout is core.stripes (the one layout): stripe 0 is the base blob, stripe k >= 1 the blob
`<base>.stripe<k>` in the same container, each sized to its stripe. This adapter owns their clients,
routes an export range to the blob and offset that hold it, creates and sizes the stripes a source
needs, guards them with the base blob's lease ID, snapshots them before the base blob's commit, and
names the stripe snapshots no restore point holds (orphans: a run killed between its stripe snapshots
and its commit leaves them). A target of one blob (every source of at most 8 TiB) makes no request
here: `fit` of one stripe returns at once, and routing returns the base blob and the same range.

Ownership: a stripe blob carries `STRIPE_MARKER` in its metadata from its creation on (Put Blob sets
it, If-None-Match: *). A blob by a stripe's name without it is someone else's: refused (UserError,
exit 2), never written, resized or deleted.

Lease: one lease guards the set. Writers take the base blob's lease first (PageBlobTarget.leased),
then each stripe's with the same ID (Lease Blob, action acquire, `x-ms-proposed-lease-id`: "Optional
for acquire"; acquiring with the ID already held succeeds), so every stripe write carries the one ID.
`LeaseSet` renews them together and releases the stripes before the base blob. Readers (list, prune,
status) take only the base blob's lease: it is the set's.

Shrinking: Azure disks never shrink (diskSizeGB: "Resizes are only allowed if the disk is not
attached to a running VM, and can only increase the disk's size", the ManagedDisk.DiskSizeGB
reference), so a stripe past the source's layout is never expected; one found is left untouched
(no restore point of the smaller size reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobType
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, ContainerClient

from replicator.core import stripes
from replicator.core.errors import LockedError, UserError
from replicator.core.ranges import Range
from replicator.plumbing import recovery

log = logging.getLogger(__name__)

STRIPE_MARKER = "replicator_stripe"
"""Metadata key on every stripe blob the replicator created; its value is the stripe's index."""


@dataclass
class LeaseSet:
    """The base blob's lease and the stripes' leases of the same ID: renewed and released together
    (target.lease.renewed drives it like one lease)."""

    base: BlobLeaseClient
    stripes: dict[int, BlobLeaseClient] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.base.id)

    async def renew(self) -> None:
        """Base first, then every stripe at once; any refusal is the set's (the run stops)."""
        await self.base.renew()
        await asyncio.gather(*(lease.renew() for lease in self.stripes.values()))

    async def release(self) -> None:
        """The stripes first, the base blob last: while the base is held no other run can start on
        the set. A stripe left held expires within one lease (a new run's acquire waits it out)."""
        try:
            results = await asyncio.gather(
                *(lease.release() for lease in self.stripes.values()), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    log.warning("could not release a stripe's lease: %s", result)
        finally:
            self.stripes.clear()
            await self.base.release()


@dataclass(frozen=True)
class StripeSnapshot:
    """One blob snapshot of a stripe blob (k >= 1), as the container listing shows it."""

    index: int
    snapshot: str


class StripeSet:
    """The stripe blobs of one target: clients, routing, creation, sizes, leases, snapshots."""

    def __init__(self, container: ContainerClient, base: BlobClient, base_name: str, shown: str) -> None:
        self._container = container
        self._clients: dict[int, BlobClient] = {0: base}
        self._base_name = base_name
        self._shown = shown  # the base blob as it may be printed (no SAS)
        self.count = 1  # stripes of the size the last `fit` was given
        self.adopted = False  # `fit` found a stripe blob that existed before it: not blank whatever the base

    def name(self, index: int) -> str:
        return stripes.stripe_blob_name(self._base_name, index)

    def client(self, index: int, snapshot: str | None = None) -> BlobClient:
        """Stripe `index`'s blob (or one of its snapshots); shares the container's pipeline."""
        if snapshot is not None:
            return self._container.get_blob_client(self.name(index), snapshot=snapshot)
        if index not in self._clients:
            self._clients[index] = self._container.get_blob_client(self.name(index))
        return self._clients[index]

    def route(self, r: Range) -> tuple[int, BlobClient, Range]:
        """The stripe holding the export range `r` (within one stripe: core.stripes.cut), its blob,
        and `r` in that blob's offsets."""
        index, local = stripes.locate(r)
        return index, self.client(index), local

    def stripe_of(self, name: str) -> int | None:
        """The index of the stripe blob `name` (k >= 1), or None when it is not one of this set's."""
        prefix = self.name(1)[:-1]
        suffix = name[len(prefix) :] if name.startswith(prefix) else ""
        return int(suffix) if suffix.isdigit() and self.name(int(suffix)) == name else None

    async def fit(self, size: int, leases: LeaseSet, lease_seconds: int, wait_seconds: float) -> bool:
        """Make stripes 1.. of an export of `size` bytes exist at their lengths, ours, under `leases`.

        Called under the base blob's lease. Per stripe: one Get Blob Properties (or a Put Blob
        creating it with the marker), one Lease Blob the first time in a run, a resize when its
        length changed (a source grown within or past its last stripe). Stripe 0 is the base
        blob's, sized by PageBlobTarget. True when a stripe was created or resized.
        """
        self.count = stripes.stripe_count(size)
        changed = False
        for stripe in stripes.layout(size)[1:]:
            client = self.client(stripe.index)
            current = await self._own_size(stripe.index, client, stripe.length)
            self.adopted = self.adopted or current is not None
            changed = changed or current != stripe.length
            if stripe.index not in leases.stripes:
                await self._acquire(stripe.index, client, leases, lease_seconds, wait_seconds)
            if current is not None and current != stripe.length:
                log.info(
                    "resizing stripe %s from %d to %d bytes", self.name(stripe.index), current, stripe.length
                )
                await client.resize_blob(stripe.length, lease=leases.stripes[stripe.index])
        return changed

    async def _own_size(self, index: int, client: BlobClient, length: int) -> int | None:
        """The stripe blob's size, or None when this call created it (at `length`); UserError when
        it is not the replicator's."""
        try:
            props = await client.get_blob_properties()
        except ResourceNotFoundError:
            try:
                await client.create_page_blob(
                    length, metadata={STRIPE_MARKER: str(index)}, match_condition=MatchConditions.IfMissing
                )
                return None
            except ResourceExistsError:  # created meanwhile: judged like any existing blob below
                props = await client.get_blob_properties()
        marker = {k.lower(): v for k, v in (props.metadata or {}).items()}.get(STRIPE_MARKER)
        if marker != str(index) or props.blob_type != BlobType.PAGEBLOB:
            raise UserError(
                f"the blob {self.name(index)} beside the target {self._shown} was not created by the "
                f"replicator (no {STRIPE_MARKER} marker); the source needs it as stripe {index}: move or "
                "delete it, or use another target blob name."
            )
        return int(props.size)

    async def _acquire(
        self, index: int, client: BlobClient, leases: LeaseSet, lease_seconds: int, wait_seconds: float
    ) -> None:
        lease = BlobLeaseClient(client, lease_id=leases.id)
        acquired = await recovery.acquire_waiting(
            lambda: lease.acquire(lease_duration=lease_seconds),
            wait_seconds,
            lambda: log.warning(
                "the lease on stripe %s is held; waiting up to %.0f s (a killed run's lease expires "
                "within %d s)",
                self.name(index),
                wait_seconds,
                lease_seconds,
            ),
        )
        if not acquired:
            raise LockedError(
                f"the lease on {self.name(index)} (stripe {index} of {self._shown}) is held by another "
                f"writer; waited {wait_seconds:.0f} s."
            )
        leases.stripes[index] = lease

    async def snapshot(self, leases: LeaseSet | None) -> tuple[str, ...]:
        """Snapshot Blob of stripes 1.. in order, after the last write and before the base blob's
        commit; returns their times (RestorePointMeta.stripe_snapshots). A lost answer retried by
        the SDK may leave a second snapshot of a stripe: an orphan, deleted by `orphans` + the next
        commit or prune."""
        taken = []
        for index in range(1, self.count):
            lease = leases.stripes.get(index) if leases else None
            result = await self.client(index).create_snapshot(**({"lease": lease} if lease else {}))
            taken.append(str(result["snapshot"]))
        return tuple(taken)

    async def delete_snapshot(self, item: StripeSnapshot) -> None:
        """Delete one stripe snapshot; one already gone is done."""
        with contextlib.suppress(ResourceNotFoundError):
            await self.client(item.index, item.snapshot).delete_blob()


def missing(held: tuple[str, ...], listed: list[StripeSnapshot]) -> list[int]:
    """Pure: the stripes (k >= 1) whose snapshot a restore point names (`held`) and the listing lacks:
    such a restore point cannot be restored (replicate status reports it)."""
    present = {(s.index, s.snapshot) for s in listed}
    return [k for k, t in enumerate(held, 1) if (k, t) not in present]


def orphans(held: list[tuple[str, ...]], listed: list[StripeSnapshot]) -> list[StripeSnapshot]:
    """Pure: the listed stripe snapshots no restore point holds (`held`: each restore point's
    stripe_snapshots, stripe 1 first)."""
    owned = {(k, t) for times in held for k, t in enumerate(times, 1)}
    return [s for s in listed if (s.index, s.snapshot) not in owned]
