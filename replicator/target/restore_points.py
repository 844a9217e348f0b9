"""Restore points of a target: list them, choose one, check it, prune them.

Why a module of its own: a replica is worth only the disk it gives back, and giving it back needs
nothing of the replication pipeline: its metadata (target.state.RestorePointMeta, read here) names every
restore point's source snapshot, size, sector size, mode and source disk properties, so listing needs
only the target. Making a managed disk of one is target.restore_disk; before it creates anything the
restore point is checked here: a 4096-byte-sector restore point can only become a Premium SSD v2 or
Ultra disk (Azure's rule for such snapshots), and a 512-byte-sector one must end with an intact
fixed-VHD footer (replicator.core.vhd), because Azure imports only VHDs.

Prune deletes old restore points under the base blob's lease (a running replication holds it, so
prune refuses with exit 3 rather than race it), and never deletes the newest restore point or the
one holding the target's last completed snapshot (the base of the next diff).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from replicator.core import vhd
from replicator.core.disk_profile import DiskProfile
from replicator.core.errors import UserError
from replicator.core.output import utc_time
from replicator.core.premium import SnapshotCount
from replicator.core.ranges import Op, Range
from replicator.core.stripes import split
from replicator.settings.config import Config
from replicator.target.page_blob import PageBlobTarget
from replicator.target.state import InProgress, RestorePoint, State

log = logging.getLogger(__name__)

V2_SKUS = frozenset({"PremiumV2_LRS", "UltraSSD_LRS"})
"""The only disk types a 4096-byte-sector snapshot (stored as VHDX) can become."""
DISK_SKUS = (
    "Standard_LRS",
    "StandardSSD_LRS",
    "StandardSSD_ZRS",
    "Premium_LRS",
    "Premium_ZRS",
    *sorted(V2_SKUS),
)
"""In this order in `--help` and errors, whatever the process's hash seed (V2_SKUS is a set)."""


@dataclass(frozen=True)
class PointInfo:
    """One restore point as `list` shows it (its RestorePointMeta and the base blob's state)."""

    id: str
    snapshot_name: str
    snapshot_id: str
    snapshot_unique_id: str
    snapshot_time: str
    size_bytes: int
    logical_sector_size: int
    mode: str
    reason: str
    base_of_next_diff: bool
    data_access_auth_mode: str = ""  # the source snapshot's, as the restore point records it
    profile: DiskProfile = field(default_factory=DiskProfile)  # the source disk's, as recorded
    stripe_snapshots: tuple[str, ...] = ()  # blob snapshots of stripes 1.. (a source over 8 TiB)
    foreign: bool = False  # a blob snapshot the replicator did not take: listed, counted, never pruned

    @property
    def stripes(self) -> int:
        """How many blobs hold this restore point: 1, or the stripes of a source over 8 TiB."""
        return 1 + len(self.stripe_snapshots)

    @classmethod
    def of(cls, point: RestorePoint, state: State) -> PointInfo:
        meta = point.meta
        return cls(
            id=point.id,
            snapshot_name=meta.snapshot_name,
            snapshot_id=meta.snapshot_id,
            snapshot_unique_id=meta.snapshot_unique_id,
            snapshot_time=meta.snapshot_time,
            size_bytes=meta.size_bytes,
            logical_sector_size=meta.logical_sector_size,
            mode=meta.mode,
            reason=meta.reason,
            base_of_next_diff=_is_base(point.id, meta.snapshot_unique_id, state),
            data_access_auth_mode=meta.data_access_auth_mode,
            profile=meta.profile,
            stripe_snapshots=meta.stripe_snapshots,
            foreign=not point.taken_by_replicator,
        )

    def stripe_snapshot(self, index: int) -> str:
        """The blob snapshot of stripe `index` of this restore point (stripe 0's is its own ID)."""
        return self.id if index == 0 else self.stripe_snapshots[index - 1]

    @property
    def snapshot_datetime(self) -> datetime | None:
        """The source snapshot's creation time (aware), or None when the metadata holds no such time."""
        try:
            moment = datetime.fromisoformat(self.snapshot_time)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None

    @property
    def created(self) -> datetime:
        """When the restore point was taken: its ID is the blob snapshot's UTC timestamp."""
        return datetime.fromisoformat(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_snapshot": {
                "name": self.snapshot_name,
                "id": self.snapshot_id,
                "unique_id": self.snapshot_unique_id,
                "time_created": utc_time(self.snapshot_time) if self.snapshot_time else None,
            },
            "size_bytes": self.size_bytes,
            "logical_sector_size": self.logical_sector_size,
            "mode": self.mode,
            "reason": self.reason,
            "base_of_next_diff": self.base_of_next_diff,
            "data_access_auth_mode": self.data_access_auth_mode or None,
            "source_disk": profile_json(self.profile),
            "stripes": self.stripes,
            "taken_by_replicator": not self.foreign,
        }


def profile_json(profile: DiskProfile) -> dict[str, Any]:
    """A DiskProfile for JSON output: what was not recorded is null."""
    return {name: (value if value not in ("", 0) else None) for name, value in asdict(profile).items()} | {
        "tags": profile.tags,
        "tags_dropped": profile.tags_dropped,
    }


def _is_base(point_id: str, unique_id: str, state: State) -> bool:
    if state.last_restore_point:
        return point_id == state.last_restore_point
    return bool(state.last and unique_id and unique_id == state.last.unique_id)


@dataclass(frozen=True)
class Listing:
    """The restore points of one target, oldest first, and whether a run is on the base blob."""

    target: str
    source_disk_id: str | None
    points: list[PointInfo]
    locked: bool  # a run holds the base blob's lease right now
    in_progress: InProgress | None  # a run started a snapshot and has not committed it (running or killed)
    snapshots: SnapshotCount | None = None  # a premium page blob's snapshots of its 100 (core.premium)

    def to_json(self) -> dict[str, Any]:
        progress = self.in_progress
        return {
            "target": self.target,
            "source_disk_id": self.source_disk_id,
            "locked": self.locked,
            "in_progress": None
            if progress is None
            else {
                "snapshot_name": progress.snapshot.name,
                "snapshot_id": progress.snapshot.id,
                "mode": progress.mode,
                "checkpoint": progress.checkpoint,
            },
            "restore_points": [p.to_json() for p in self.points],
            "snapshot_limit": None if self.snapshots is None else self.snapshots.to_json(),
        }


async def list_points(target: PageBlobTarget, *, with_limit: bool = False) -> Listing:
    """Every restore point of `target` (every blob snapshot: the foreign ones marked); UserError when there
    is no target blob. `with_limit`: also read the account's kind (one request), so that a premium
    blob's listing says how many of its 100 snapshots it holds (`list`, `prune`, `status`)."""
    inspection = await target.inspect()
    if not inspection.exists:
        raise UserError(  # the hint: `restore` or `drill` given a VM's prefix without --group
            f"there is no target blob at {target.url.display}; nothing has been replicated there (a VM's "
            "prefix holds its disks' blobs: `replicate list` shows its groups, `restore` and `drill` take "
            "one with --group)."
        )
    state = inspection.state
    points = [PointInfo.of(p, state) for p in await target.restore_points()]
    count = None
    if with_limit and (await target.account_kind())[0].premium:
        count = SnapshotCount(len(points))
    return Listing(target.url.display, state.disk_id, points, inspection.leased, state.in_progress, count)


def newest(points: Sequence[PointInfo]) -> PointInfo | None:
    """The restore point holding the newest source snapshot (by the snapshot's creation time, ties by
    restore point ID); None when none records a readable time.

    Not simply the last one taken: after `--allow-rollback` the last restore point may hold an older
    snapshot, and the newer one is still there. `latest` and `replicate status` both mean this one,
    so a failover restores what status reported as protected.
    """
    dated = [(p.snapshot_datetime, p.id, p) for p in points if p.snapshot_datetime is not None]
    return max(dated, key=lambda item: item[:2])[2] if dated else None


def select(points: list[PointInfo], wanted: str) -> PointInfo:
    """The restore point named by its ID, `latest` (`newest`), or its source snapshot's name.

    A name that more than one restore point carries (a snapshot deleted and re-created under its
    name, or duplicates an older version left) is refused with the candidates: restoring a disk
    from a guess is how the wrong data comes back.
    """
    if not points:
        raise UserError("the target has no restore point yet.")
    if wanted == "latest":
        return newest(points) or points[-1]
    by_id = [p for p in points if p.id == wanted]
    by_name = by_id or [p for p in points if p.snapshot_name == wanted]
    if not by_name:
        raise UserError(
            f"no restore point {wanted!r}: give a restore point ID, 'latest' or a source snapshot name "
            "(see `replicate list`)."
        )
    if len(by_name) > 1:
        listed = ", ".join(f"{p.id} (snapshot taken {utc_time(p.snapshot_time)})" for p in by_name)
        raise UserError(
            f"{len(by_name)} restore points hold a source snapshot named {wanted!r}: {listed}; "
            "give one of these restore point IDs as --point."
        )
    return by_name[0]


def check_sku(point: PointInfo, sku: str) -> None:
    """Azure: a 4096-byte-sector snapshot can only become a Premium SSD v2 or Ultra disk."""
    if sku not in DISK_SKUS:
        raise UserError(f"--sku must be one of {', '.join(DISK_SKUS)}; got {sku!r}.")
    if point.logical_sector_size == 4096 and sku not in V2_SKUS:
        raise UserError(
            f"restore point {point.id} holds a disk with 4096-byte logical sectors, which can only become "
            f"a Premium SSD v2 or Ultra disk (--sku PremiumV2_LRS or UltraSSD_LRS), not {sku}."
        )


async def check_footer(target: PageBlobTarget, point: PointInfo) -> None:
    """A 512-byte-sector restore point must end with an intact fixed-VHD footer; UserError otherwise."""
    if point.logical_sector_size != 512:
        return
    size = point.size_bytes
    if size < 2 * vhd.FOOTER_SIZE:
        raise UserError(f"restore point {point.id} records a size of {size} bytes; it cannot hold a VHD.")
    [(stripe, footer_op)] = split(Op("copy", Range(size - vhd.FOOTER_SIZE, size)))  # in the last stripe
    footer = await target.read(footer_op.range, snapshot=point.stripe_snapshot(stripe), stripe=stripe)
    try:
        vhd.check_footer(footer, size)
    except vhd.FooterError as exc:
        raise UserError(
            f"restore point {point.id} is damaged: {exc}; restore an earlier one (see `replicate list`)."
        ) from None


# ---------------------------------------------------------------- prune


@dataclass(frozen=True)
class PrunePlan:
    """What prune deletes, what it keeps although the policy would delete it (with why), and a premium
    blob's snapshot count once the deletions are done (None: a standard blob, no such limit)."""

    delete: list[PointInfo]
    protected: list[tuple[PointInfo, str]]
    snapshots_after: SnapshotCount | None = None

    def to_json(self) -> dict[str, Any]:
        after = self.snapshots_after
        return {
            "deleted": [p.to_json() for p in self.delete],
            "kept_by_rule": [{"id": p.id, "why": why} for p, why in self.protected],
            "snapshot_limit": None if after is None else after.to_json(),
        }

    def counted(self, listing: Listing) -> PrunePlan:
        """This plan with the premium blob's count after it (a standard blob's: unchanged)."""
        if listing.snapshots is None:
            return self
        return replace(self, snapshots_after=SnapshotCount(listing.snapshots.held - len(self.delete)))


def plan_prune(
    points: list[PointInfo], *, keep: int | None = None, older_than_days: float | None = None, now: datetime
) -> PrunePlan:
    """Pure: the restore points a policy deletes (oldest first); exactly one of keep / older_than_days.

    Never the newest restore point, never the base of the next diff, never a blob snapshot the
    replicator did not take (`foreign`: someone else's; `--keep N` counts the replicator's own).
    """
    if (keep is None) == (older_than_days is None):
        raise UserError("give exactly one of --keep N or --older-than DAYS.")
    if keep is not None:
        if keep < 1:
            raise UserError(f"--keep must be at least 1; got {keep}.")
        ours = [p for p in points if not p.foreign]
        chosen = ours[: max(0, len(ours) - keep)]
    else:
        assert older_than_days is not None
        if older_than_days < 0:
            raise UserError(f"--older-than must not be negative; got {older_than_days:g}.")
        cutoff = now - timedelta(days=older_than_days)
        chosen = [p for p in points if p.created < cutoff and not p.foreign]
    newest = next((p.id for p in reversed(points) if not p.foreign), None)
    delete, protected = [], []
    for p in chosen:
        if p.id == newest:
            protected.append((p, "the newest restore point"))
        elif p.base_of_next_diff:
            protected.append((p, "the base of the next diff (the target's last completed snapshot)"))
        else:
            delete.append(p)
    return PrunePlan(delete, protected)


async def prune(
    config: Config,
    *,
    keep: int | None,
    older_than_days: float | None,
    now: datetime,
    dry_run: bool,
    on_message: Callable[[str], None] = lambda _: None,
    only: Collection[str] | None = None,
) -> PrunePlan:
    """Delete what `plan_prune` chooses, holding the base blob's lease (LockedError if a run holds it).

    A dry run plans from a lease-free read and deletes nothing. Prune never waits for a lease: a
    run holding it may be about to diff from any restore point's snapshot, so it refuses at once.
    `only`: the restore point IDs an operator confirmed from a dry run; the plan made again under the
    lease deletes no other (what was not shown is never deleted).
    """
    command = "prune --dry-run" if dry_run else "prune"
    async with PageBlobTarget(replace(config, lease_wait_seconds=0), command=command) as target:
        if dry_run:
            listing = await list_points(target, with_limit=True)
            plan = plan_prune(listing.points, keep=keep, older_than_days=older_than_days, now=now)
            return plan.counted(listing)
        first = await list_points(target, with_limit=True)  # a missing target is bad input, before the lease
        async with target.leased():
            listing = await list_points(target)  # read again under the lease: the state may have moved
            listing = replace(listing, snapshots=first.snapshots and SnapshotCount(len(listing.points)))
            plan = plan_prune(listing.points, keep=keep, older_than_days=older_than_days, now=now)
            if only is not None:
                plan = replace(plan, delete=[p for p in plan.delete if p.id in only])
            for p in plan.delete:
                on_message(f"deleting restore point {p.id} ({p.snapshot_name})")
                await target.delete_restore_point(p.id, p.stripe_snapshots)
            await target.clean_orphans()
        return plan.counted(listing)
