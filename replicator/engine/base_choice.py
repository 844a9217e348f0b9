"""Base choice: which snapshots a run replicates, and for each, whether it is a diff (from which base)
or a full copy, and why.

Pure decisions over what was resolved (the source's snapshots, the target's state) plus at most one
lookup: the current version of the snapshot the first job would diff from (`base_to_look_up`), since
it may have been deleted or re-created under the same name since the target recorded it. Only
`choose_jobs` does I/O, through a `SnapshotLookup` (ArmSource in a run, a fake in tests).

A diff from the target's last restore point is used unless there is no restore point, that snapshot
is gone (or was re-created: another uniqueId), the disk was re-created, the source is older than
the base (a rollback, refused unless --allow-rollback), the disk was resized across 4 TiB, or an
interrupted run of another snapshot left the target partly written. An interrupted run of the same
snapshot resumes from its checkpoint, with its recorded base if that is still the same snapshot
(same uniqueId).

One restore point per source snapshot: a snapshot the target already holds a restore point of is
never copied again (`held`: the uniqueIds of the restore points' snapshots). After a rollback the base
blob holds the older snapshot and the state names it, while newer snapshots already have their
restore points; the next run skips those and diffs its first new snapshot from the older one, which
Azure allows between any two snapshots of a disk, so the bytes written are exactly what differs from
what the base blob holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from replicator.core import arm_ids, ranges
from replicator.core.disk_profile import DiskProfile
from replicator.core.errors import UnprotectedError, UserError
from replicator.core.output import human_size, iso_z, plural
from replicator.settings.config import Config
from replicator.source.arm import DiskInfo, SnapshotInfo
from replicator.target.state import SnapshotRef, State

FOUR_TIB = 4 * 1024**4
"""Azure cannot diff two snapshots of a disk resized across this boundary."""


class SnapshotLookup(Protocol):
    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo | None: ...


@dataclass
class Job:
    """One snapshot to replicate, its base (None: full copy), why, and where a resume starts."""

    snapshot: SnapshotInfo
    base: SnapshotInfo | None
    reason: str
    checkpoint: int = 0

    @property
    def mode(self) -> str:
        return "diff" if self.base is not None else "full"


@dataclass(frozen=True)
class DiskIdentity:
    """The source disk as the target records it: a re-created disk has the same ID, another uniqueId."""

    id: str
    unique_id: str | None
    profile: DiskProfile | None = None  # the disk's properties when the run read it (None: gone, or not read)


def snapshot_ref(snap: SnapshotInfo) -> SnapshotRef:
    return SnapshotRef(snap.id, snap.unique_id, snap.time_created.isoformat(), snap.name)


def exported_size(snap: SnapshotInfo) -> int:
    """Bytes of the exported blob: a 512-sector disk exports as a VHD, with a 512-byte footer."""
    return snap.size_bytes + (ranges.PAGE if snap.logical_sector_size == 512 else 0)


def crosses_4tib(base: SnapshotInfo, current: SnapshotInfo) -> bool:
    return (base.size_bytes <= FOUR_TIB) != (current.size_bytes <= FOUR_TIB)


def disk_identity(disk: DiskInfo | None, snaps: list[SnapshotInfo]) -> DiskIdentity | None:
    """The disk, or (a snapshot whose disk is gone) the disk its first snapshot was taken from."""
    if disk is not None:
        return DiskIdentity(disk.id, disk.unique_id, disk.profile)
    snap = snaps[0]
    return DiskIdentity(snap.source_resource_id, snap.source_unique_id) if snap.source_resource_id else None


def check_source(
    config: Config,
    state: State,
    identity: DiskIdentity | None,
    snaps: list[SnapshotInfo],
    held: Collection[str] = (),
) -> None:
    """Bad input found from what was resolved: refused before anything is granted or written.

    Run once before the target is touched and again under its lease (another run may have written
    the target in between). `held`: the uniqueIds of the snapshots the target has restore points of.
    """
    if state.disk_id and identity and not arm_ids.same_resource(state.disk_id, identity.id):
        given = (
            f"--source is the disk {identity.id}"
            if arm_ids.same_resource(config.source, identity.id)
            else f"--source {config.source} is a snapshot of the disk {identity.id}"
        )
        unfinished = " (its first copy is unfinished)" if state.last is None and state.in_progress else ""
        raise UserError(
            f"the target replicates the disk {state.disk_id}{unfinished}, but {given}; "
            "use another target blob."
        )
    if not config.allow_rollback:
        check_rollback(state, candidates(config, state, snaps, held))


def check_rollback(state: State, todo: list[SnapshotInfo]) -> None:
    """UserError when a snapshot to replicate is older than the one the base blob holds: replicating
    it rolls the replica back, which only --allow-rollback may do."""
    last = state.last
    if last is None or not last.time:
        return
    last_time = datetime.fromisoformat(last.time)
    older = next((s for s in todo if s.time_created < last_time), None)
    if older is None:
        return
    point = f", restore point {state.last_restore_point}" if state.last_restore_point else ""
    raise UserError(
        f"the target already holds {last.name} (taken {iso_z(last_time)}{point}), newer than {older.name} "
        f"(taken {iso_z(older.time_created)}); replicating {older.name} would roll the replica back: a "
        f"full copy of {human_size(exported_size(older))} that rewrites the base blob, after which the "
        f"next diffs start from {older.name} (existing restore points are kept); pass --allow-rollback "
        "to do that, or replicate a newer snapshot."
    )


def unprotected(config: Config, full_snapshots: int) -> UnprotectedError:
    """The error of a disk without an incremental snapshot where the run looked: what it found there,
    and the fix."""
    rid = arm_ids.parse(config.source)
    where = (
        f"resource group {rid.resource_group}"
        if config.snapshot_search == "resource-group"
        else f"subscription {rid.subscription_id}"
    )
    found = (
        f"in {where} it has {plural(full_snapshots, 'full snapshot')}, which cannot be diffed, and no "
        "incremental snapshot"
        if full_snapshots
        else f"there is no snapshot of it in {where}"
    )
    elsewhere = (
        ", or pass --snapshot-search subscription if its snapshots are kept in another resource group"
        if config.snapshot_search == "resource-group"
        else ""
    )
    return UnprotectedError(
        f"nothing protects the disk {rid.name}: {found}; take an incremental snapshot with --snapshot-now"
        f"{elsewhere}."
    )


def candidates(
    config: Config, state: State, snaps: list[SnapshotInfo], held: Collection[str] = ()
) -> list[SnapshotInfo]:
    """The snapshots newer than the target's last restore point, oldest first (the last one only
    with --latest-only), minus those the target already has a restore point of (`held`: uniqueIds)."""
    last = state.last
    found = list(snaps)
    if last is not None:
        known = [i for i, s in enumerate(snaps) if s.unique_id == last.unique_id]
        if known:
            found = snaps[known[0] + 1 :]
        elif arm_ids.parse(config.source).kind == "disk":
            last_time = datetime.fromisoformat(last.time)
            found = [s for s in snaps if s.time_created > last_time]
    found = found[-1:] if config.latest_only else found
    return [s for s in found if s.unique_id not in held]


def base_to_look_up(state: State, identity: DiskIdentity | None, snap: SnapshotInfo) -> str | None:
    """The snapshot ID whose current version `first_job` needs for `snap` (None: it decides without)."""
    progress = state.in_progress
    if progress is not None:
        return progress.base_id if progress.snapshot.unique_id == snap.unique_id else None
    if state.last is None or _disk_recreated(state, identity):
        return None
    return state.last.id


def _disk_recreated(state: State, identity: DiskIdentity | None) -> bool:
    return bool(
        identity
        and state.disk_unique_id
        and identity.unique_id
        and identity.unique_id != state.disk_unique_id
    )


def first_job(
    state: State, identity: DiskIdentity | None, snap: SnapshotInfo, base: SnapshotInfo | None
) -> Job:
    """The job of the first candidate; `base` is ARM's current version of `base_to_look_up` (None:
    deleted, or nothing to look up)."""
    progress = state.in_progress
    if progress is not None:
        if progress.snapshot.unique_id != snap.unique_id:
            return Job(
                snap,
                None,
                f"an interrupted replication of {progress.snapshot.name} left the target partly written",
            )
        if progress.base_id is None:
            return Job(snap, None, progress.reason or "full copy", progress.checkpoint)
        if base is None:
            return Job(snap, None, "the base snapshot of the interrupted replication no longer exists")
        if progress.base_unique_id is None or base.unique_id != progress.base_unique_id:
            # Re-created under the same name (or not recorded): its diff is not what the checkpoint covers.
            return Job(
                snap,
                None,
                f"the base snapshot {base.name} of the interrupted replication was re-created "
                "(its uniqueId differs from the recorded one, or none was recorded)",
            )
        return Job(snap, base, progress.reason or f"diff from {base.name}", progress.checkpoint)
    last = state.last
    if last is None:
        return Job(snap, None, "the target has no restore point")
    if _disk_recreated(state, identity):
        return Job(snap, None, "the source disk was recreated (its uniqueId differs from the target's)")
    if base is None or base.unique_id != last.unique_id:
        return Job(snap, None, f"the base snapshot {last.name} of the last restore point no longer exists")
    if snap.time_created < base.time_created:  # check_source refused it unless --allow-rollback
        reason = f"rollback from {last.name} to the older {snap.name}, allowed by --allow-rollback"
        return Job(snap, None, reason)
    if crosses_4tib(base, snap):
        return Job(snap, None, f"the disk was resized across 4 TiB since {base.name}")
    return Job(snap, base, f"diff from {base.name}")


def following_jobs(snaps: list[SnapshotInfo]) -> list[Job]:
    """Each snapshot after the first, diffed from the one before it unless a 4 TiB resize is between."""
    return [
        Job(snap, None, f"the disk was resized across 4 TiB after {prev.name}")
        if crosses_4tib(prev, snap)
        else Job(snap, prev, f"diff from {prev.name}")
        for prev, snap in itertools.pairwise(snaps)
    ]


async def choose_jobs(
    source: SnapshotLookup,
    config: Config,
    state: State,
    identity: DiskIdentity | None,
    snaps: list[SnapshotInfo],
    held: Collection[str] = (),
) -> list[Job]:
    """The snapshots this run replicates, oldest first, each with its base and reason (`held`: the
    uniqueIds of the snapshots the target already has restore points of, never copied again)."""
    todo = candidates(config, state, snaps, held)
    if not todo:
        return []
    wanted = base_to_look_up(state, identity, todo[0])
    base = await source.get_snapshot(wanted) if wanted else None
    return [first_job(state, identity, todo[0], base), *following_jobs(todo)]
