"""Storage account kinds: standard StorageV2 unless a control made the account a premium page-blob one.

What a premium page-blob account changes, as Azure documents it ("Perform REST operations against
page blobs with premium storage", learn.microsoft.com/rest/api/storageservices/
using-blob-service-operations-with-azure-premium-storage; docs/emulator.md, "Premium page-blob
accounts"):
- Get Account Information answers `x-ms-sku-name: Premium_LRS` and `x-ms-account-kind: StorageV2`
  (a standard account: Standard_LRS, StorageV2).
- Page blobs only: Put Blob of a block blob is 400 BlobTypeNotSupported ("Block blobs are not
  supported.", as Azure answers it).
- At most 100 snapshots per page blob (409 SnapshotCountExceeded) and one snapshot every ten minutes
  (409 SnapshotOperationRateExceeded); the interval is a control, so tests need not wait ten minutes.
- Each page blob has a size tier (P4..P60: the smallest that holds it), reported as
  `x-ms-access-tier` with `x-ms-access-tier-inferred: true` on Get Blob Properties, whose requests/s
  and MB/s the link model (middleware/linkmodel.py) enforces instead of a standard blob's.

The emulator keeps its own tier table (replicator.core.premium is the replicator's), so each checks
the other. Not persisted: a restart makes every account standard again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from replicator.emulator.errors import blob as blob_errors

GiB = 1024**3
SNAPSHOT_LIMIT = 100
SNAPSHOT_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True)
class Kind:
    """An account's `x-ms-sku-name` and `x-ms-account-kind`."""

    sku: str
    kind: str

    @property
    def premium(self) -> bool:
        return self.sku.startswith("Premium_")


STANDARD = Kind("Standard_LRS", "StorageV2")
PREMIUM = Kind("Premium_LRS", "StorageV2")


@dataclass(frozen=True)
class PremiumTier:
    """A premium page blob's size tier: the largest size it covers, requests/s and MB/s (10^6 bytes)."""

    name: str
    max_bytes: int
    iops: int
    mbps: int

    @property
    def mibps(self) -> float:
        return self.mbps * 1_000_000 / 1024**2


# Premium SSD sizes (azure-docs includes/disk-storage-premium-ssd-sizes.md; P10-P50 also
# includes/azure-storage-limits-vm-disks-premium.md); a page blob holds at most 8 TiB: P60.
# name: (largest blob in GiB, requests/s, MB/s)
_PUBLISHED = {
    "P4": (32, 120, 25), "P6": (64, 240, 50), "P10": (128, 500, 100), "P15": (256, 1100, 125),
    "P20": (512, 2300, 150), "P30": (1024, 5000, 200), "P40": (2048, 7500, 250),
    "P50": (4096, 7500, 250), "P60": (8192, 16000, 500),
}  # fmt: skip
TIERS = tuple(PremiumTier(name, gib * GiB, iops, mbps) for name, (gib, iops, mbps) in _PUBLISHED.items())


def tier_of(size: int) -> PremiumTier:
    """The tier Azure infers for a premium page blob of `size` bytes: the smallest that holds it."""
    return next((t for t in TIERS if size <= t.max_bytes), TIERS[-1])


def _snapshot_seconds(snapshot: str) -> float:
    """Seconds since the epoch of a snapshot timestamp (2026-11-25T20:49:46.1234567Z)."""
    whole, _, frac = snapshot.rstrip("Z").partition(".")
    start = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return start.timestamp() + float(f"0.{frac or 0}")


@dataclass
class Accounts:
    """Which accounts are premium page-blob accounts, and their snapshot interval (the control's state)."""

    premium: dict[str, float] = field(default_factory=dict)  # account -> seconds between snapshots

    def kind(self, account: str) -> Kind:
        return PREMIUM if account in self.premium else STANDARD

    def is_premium(self, account: str) -> bool:
        return account in self.premium

    def check_snapshot(self, account: str, snapshots: list[str], now: float) -> None:
        """Refuse the Snapshot Blob a premium blob holding `snapshots` (their timestamps) cannot take."""
        if account not in self.premium:
            return
        if len(snapshots) >= SNAPSHOT_LIMIT:
            raise blob_errors.snapshot_count_exceeded()
        newest = max((_snapshot_seconds(s) for s in snapshots), default=None)
        if newest is not None and now - newest < self.premium[account]:
            raise blob_errors.snapshot_operation_rate_exceeded()

    def tier_limits(
        self, key: str, size_of: Callable[[str, str, str], int | None]
    ) -> tuple[float, float] | None:
        """(requests/s, MiB/s) of the blob `key` ("account/container/blob") when its account is premium:
        its tier's, by its size now (`size_of`: None while the blob does not exist, then the smallest
        tier's); None for a standard account (the link model's own limits apply)."""
        account, container, name = key.split("/", 2)
        if account not in self.premium:
            return None
        tier = tier_of(size_of(account, container, name) or 0)
        return float(tier.iops), tier.mibps

    def as_json(self) -> dict[str, Any]:
        return {
            "premium": {name: {"snapshot_interval_seconds": s} for name, s in sorted(self.premium.items())}
        }

    def updated(self, body: object) -> None:
        """The control's PUT: `{"account": NAME, "premium": true|false, "snapshot_interval_seconds": S}`
        (the interval is optional, 600 by default); ValueError with one sentence for anything else."""
        shape = '{"account": NAME, "premium": true|false[, "snapshot_interval_seconds": S]}'
        if not isinstance(body, dict) or set(body) - {"account", "premium", "snapshot_interval_seconds"}:
            raise ValueError(f"expected {shape}")
        account, premium = body.get("account"), body.get("premium")
        interval = body.get("snapshot_interval_seconds", SNAPSHOT_INTERVAL_SECONDS)
        if not isinstance(account, str) or not account or not isinstance(premium, bool):
            raise ValueError(f"expected {shape}")
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
            raise ValueError(f"snapshot_interval_seconds must be zero or more, not {interval!r}")
        if premium:
            self.premium[account] = float(interval)
        else:
            self.premium.pop(account, None)
