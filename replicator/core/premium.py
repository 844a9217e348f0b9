"""Premium page-blob targets: the account kinds, the size tiers and their limits, the snapshot rules, pure.

Why: a target in a premium (page blob) storage account is no standard page blob. Azure serves each
of its blobs at the limits of the blob's size tier (P10: 500 requests/s and 100 MB/s, up to P50's
7,500 and 250 MB/s), far above a standard blob's ~500 requests/s and 60 MiB/s, so the pacer may keep
many more requests in flight; and such a blob holds at most 100 snapshots and takes one every ten
minutes (Snapshot Blob answers 409 SnapshotCountExceeded / SnapshotOperationRateExceeded). Restore
points are blob snapshots, so the run, `prune`, `status` and `list` must know both rules.

What Azure documents (the pages named here are the ones docs/runbook.md links):
- "Perform REST operations against page blobs with premium storage" (learn.microsoft.com/rest/api/
  storageservices/using-blob-service-operations-with-azure-premium-storage): page blobs only; at most
  100 snapshots per page blob (409 SnapshotCountExceeded); one snapshot every ten minutes
  (409 SnapshotOperationRateExceeded).
- "Scalability and performance targets for premium page blob storage accounts" (learn.microsoft.com/
  azure/storage/blobs/scalability-targets-premium-page-blobs): 100 snapshots per page blob.
- The per-blob figures: "Premium unmanaged virtual machine disks: per disk limits"
  (azure-docs includes/azure-storage-limits-vm-disks-premium.md) gives P10-P50; P4, P6, P15 and P60
  come from the Premium SSD sizes table (includes/disk-storage-premium-ssd-sizes.md), whose P10-P50
  figures are the same. A page blob holds at most 8 TiB, so P60 is the largest tier a blob reaches.
- Get Account Information (learn.microsoft.com/rest/api/storageservices/get-account-information):
  `x-ms-sku-name` (e.g. Premium_LRS) and `x-ms-account-kind` (StorageV2 for a premium page-blob
  account, BlockBlobStorage and FileStorage for the other premium kinds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from replicator.core.stripes import STRIPE_BYTES

GiB = 1024**3
MB = 1000 * 1000

SNAPSHOT_LIMIT = 100
"""Snapshots a premium page blob holds at most; the 101st Snapshot Blob answers 409 SnapshotCountExceeded."""
SNAPSHOT_WARN_AT = 90
"""`status` warns from this many snapshots on: ten restore points of room left."""
SNAPSHOT_INTERVAL_SECONDS = 600
"""A premium page blob takes one snapshot every ten minutes (409 SnapshotOperationRateExceeded)."""

STANDARD_CEILING = 64
"""Requests in flight a standard blob's pacer may reach (the `--concurrency` default): ~500 requests/s at a
60 ms round trip in stream mode (two round trips per chunk) needs 60+ (settings.knobs, `concurrency`)."""
MAX_CEILING = 192
"""The most requests in flight one target gets: the process's connections (plumbing.http_pool.CONNECTIONS);
more would only queue for a connection."""
SECONDS_IN_FLIGHT = STANDARD_CEILING / 500
"""A tier's ceiling is its requests/s times this (128 ms): the standard blob's 64 at 500/s, scaled."""

PAGE_BLOB_KINDS = frozenset({"StorageV2", "Storage"})
"""Account kinds whose premium SKU is a premium *page blob* account (general-purpose v1/v2)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """A premium page blob's size tier: the largest blob it covers, its requests/s and MB/s (10^6 bytes/s)."""

    name: str
    max_bytes: int
    requests_per_second: int
    mb_per_second: int

    @property
    def mib_per_second(self) -> float:
        """The byte limit in MiB/s, the unit of the rest of the code (and of the emulator's link model)."""
        return self.mb_per_second * MB / 1024**2

    @property
    def ceiling(self) -> int:
        """The most requests in flight the pacer may reach on a blob of this tier (see `ceiling_for`)."""
        scaled = math.ceil(self.requests_per_second * SECONDS_IN_FLIGHT)
        return min(MAX_CEILING, max(STANDARD_CEILING, scaled))

    def to_json(self) -> dict[str, object]:
        return {
            "tier": self.name,
            "max_bytes": self.max_bytes,
            "requests_per_second": self.requests_per_second,
            "mb_per_second": self.mb_per_second,
        }


TIERS: tuple[Tier, ...] = (
    Tier("P4", 32 * GiB, 120, 25),
    Tier("P6", 64 * GiB, 240, 50),
    Tier("P10", 128 * GiB, 500, 100),
    Tier("P15", 256 * GiB, 1_100, 125),
    Tier("P20", 512 * GiB, 2_300, 150),
    Tier("P30", 1_024 * GiB, 5_000, 200),
    Tier("P40", 2_048 * GiB, 7_500, 250),
    Tier("P50", 4_096 * GiB, 7_500, 250),
    Tier("P60", 8_192 * GiB, 16_000, 500),
)
"""Smallest first. Azure infers a premium page blob's tier from its size: the smallest that holds it."""


def tier_for(size: int) -> Tier:
    """The tier Azure gives a premium page blob of `size` bytes (ValueError beyond the 8 TiB page blob)."""
    if size < 0:
        raise ValueError(f"a blob's size is 0 or more, got {size}")
    for tier in TIERS:
        if size <= tier.max_bytes:
            return tier
    raise ValueError(f"a page blob holds at most {TIERS[-1].max_bytes} bytes, got {size}")


def blob_tier(export_size: int) -> Tier:
    """The tier of the (largest) blob an export of `export_size` bytes is written to: one blob up to
    8 TiB, else stripes of at most 8 TiB each (core.stripes), the first of them full."""
    return tier_for(min(export_size, STRIPE_BYTES))


@dataclass(frozen=True, slots=True)
class TargetKind:
    """What Get Account Information said of the target's account, or None where it could not be read."""

    sku: str | None
    kind: str | None

    @property
    def premium(self) -> bool:
        """A premium page-blob account: a Premium_* SKU of a general-purpose kind."""
        return bool(self.sku and self.sku.startswith("Premium_") and self.kind in PAGE_BLOB_KINDS)

    @property
    def known(self) -> bool:
        return self.sku is not None


UNKNOWN = TargetKind(None, None)
"""The credential could not read the account's kind: treated as standard (the run document says so)."""


def ceiling_for(kind: TargetKind, size: int, concurrency: int | None) -> int:
    """The pacer's ceiling for one target blob: `--concurrency` when given (the operator's word), else the
    standard blob's 64, or a premium blob's tier ceiling (its requests/s x 128 ms, at most 192)."""
    if concurrency is not None:
        return concurrency
    if not kind.premium:
        return STANDARD_CEILING
    return blob_tier(size).ceiling


@dataclass(frozen=True, slots=True)
class SnapshotCount:
    """How many snapshots a premium blob holds (the tool's restore points and any other snapshot) of its
    limit; `status` and `list` show it, the run checks it before copying."""

    held: int
    limit: int = SNAPSHOT_LIMIT

    @property
    def room(self) -> int:
        """Snapshots the blob can still take."""
        return max(0, self.limit - self.held)

    @property
    def near(self) -> bool:
        """At or past the warning mark (SNAPSHOT_WARN_AT of 100)."""
        return self.held >= SNAPSHOT_WARN_AT * self.limit // SNAPSHOT_LIMIT

    def keep_for(self, commits: int, foreign: int) -> int:
        """The `prune --keep N` that leaves room for `commits` more: every snapshot counts, but only the
        tool's restore points are pruned (`foreign` snapshots are someone else's and are kept)."""
        return max(0, self.limit - commits - foreign)

    def to_json(self) -> dict[str, int]:
        return {"held": self.held, "limit": self.limit, "room": self.room}


def room_refusal(target: str, count: SnapshotCount, commits: int, foreign: int) -> str | None:
    """The sentence refusing a run whose `commits` restore points a premium blob holding `count` snapshots
    (`foreign` of them not the tool's) cannot take; None when they fit. Said before anything is copied,
    because Azure would refuse the commit after the copy (409 SnapshotCountExceeded)."""
    if commits <= count.room:
        return None
    keep = count.keep_for(commits, foreign)
    others = f", {foreign} of them not taken by the replicator (never pruned)" if foreign else ""
    if keep < 1:
        return (
            f"{target} is a premium page blob holding {count.held} of its {count.limit} snapshots{others}; "
            "no restore point can be taken until some of the others are deleted."
        )
    return (
        f"{target} is a premium page blob holding {count.held} of its {count.limit} snapshots{others}; "
        f"the next restore point would be one too many (Azure refuses it: 409 SnapshotCountExceeded). "
        f"Prune first: replicate prune --target URL --keep {keep}"
    )


@dataclass(frozen=True, slots=True)
class TargetReport:
    """What a run says of its target account in the run document: its kind, the tier and limits of a
    premium blob of `size` bytes, the pacer's ceiling, the snapshot count, and any note."""

    kind: TargetKind
    size: int
    ceiling: int
    snapshots: SnapshotCount | None = None
    notes: tuple[str, ...] = ()

    @property
    def tier(self) -> Tier | None:
        return blob_tier(self.size) if self.kind.premium else None

    def to_json(self) -> dict[str, object]:
        tier = self.tier
        return {
            "sku": self.kind.sku,
            "kind": self.kind.kind,
            "premium": self.kind.premium,
            "tier": None if tier is None else tier.to_json(),
            "pacer_ceiling": self.ceiling,
            "snapshots": None if self.snapshots is None else self.snapshots.to_json(),
            "notes": list(self.notes),
        }
