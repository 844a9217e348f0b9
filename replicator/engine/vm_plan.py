"""A VM run's decisions: which groups it works on, and what each disk's part in a new group is.

Pure (no I/O), over what engine.vm_run read: the VM, its restore points, the group manifests under
the target prefix. The rules:

- The newest group, when incomplete, is completed first, from its own restore point (a rerun after a
  failure finishes the instant it started, so every disk ends up from one instant).
- Then a new group: of the restore point --snapshot-now creates, or else of the VM's newest restore
  point, when it is newer than the newest group (an older one would roll the replicas back; the
  restore points in between are not replicated: each group copies every disk's changes, and the
  newest is what protects).
- Each disk of the VM goes to `<prefix>/<disk name>.vhd`; two disks of one name (from two resource
  groups) would share a blob, which is bad input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from replicator.core.consistency import DiskFacts, judge
from replicator.core.errors import UserError
from replicator.plumbing.urlcheck import TargetPrefix
from replicator.source.arm import SnapshotInfo
from replicator.source.vm import VmDisk, VmInfo, VmRestorePoint
from replicator.target.groups import Stored
from replicator.target.manifest import DiskEntry, GroupManifest, group_id

BLOB_SUFFIX = ".vhd"


def disk_blob(disk_name: str) -> str:
    """A disk's base blob under the prefix."""
    return f"{disk_name}{BLOB_SUFFIX}"


def check_disk_names(vm: VmInfo) -> None:
    """UserError when two disks of the VM have one name (case ignored, as ARM compares names): they
    would share `<prefix>/<name>.vhd`."""
    seen: dict[str, VmDisk] = {}
    for disk in vm.disks:
        other = seen.setdefault(disk.name.casefold(), disk)
        if other is not disk:
            raise UserError(
                f"the VM {vm.name} has two disks named {disk.name} ({other.disk_id} and {disk.disk_id}); "
                f"each disk goes to <prefix>/<disk name>{BLOB_SUFFIX}, so they would share a blob: rename "
                "one (a disk's name is fixed: copy it to a new disk) or replicate the disks one by one."
            )


@dataclass(frozen=True)
class Choice:
    """The groups of a run: the incomplete newest group to complete first, then a new group of an
    existing restore point (`new`) or of one --snapshot-now creates (`take`)."""

    resume: Stored | None
    new: VmRestorePoint | None
    take: bool


def _time(stored: Stored) -> datetime | None:
    try:
        return datetime.fromisoformat(stored.manifest.restore_point_time)
    except ValueError:
        return None


def choose_groups(
    stored: Sequence[Stored], points: Sequence[VmRestorePoint], *, snapshot_now: bool
) -> Choice:
    """What to work on; `stored`: the manifests, newest first; `points`: the VM's restore points a
    group can be made of, oldest first."""
    newest = stored[0] if stored else None
    resume = newest if newest is not None and not newest.manifest.complete else None
    if snapshot_now:
        return Choice(resume, None, take=True)
    latest = points[-1] if points else None
    if latest is None:
        return Choice(resume, None, take=False)
    known = {s.manifest.group_id for s in stored}
    newest_time = _time(newest) if newest else None
    fresh = group_id(latest.id, latest.time_created) not in known and (
        newest_time is None or latest.time_created > newest_time
    )
    return Choice(resume, latest if fresh else None, take=False)


def new_manifest(
    vm: VmInfo,
    point: VmRestorePoint,
    prefix: TargetPrefix,
    facts: Mapping[str, DiskFacts],
    separate: Mapping[str, tuple[VmDisk, SnapshotInfo]],
) -> GroupManifest:
    """The manifest of a new group of `point`: every disk it holds, and the disks left out of it and
    snapshotted beside it (`separate`, by disk name), OS disk first, then by LUN; every disk
    uncommitted. `facts` (by disk name) decide the consistency (core.consistency.judge)."""
    entries = [
        (c.disk, DiskEntry(c.disk.name, c.disk.role, c.disk.lun, c.disk.disk_id, "", c.disk_restore_point_id))
        for c in point.disks
    ]
    entries += [
        (disk, DiskEntry(disk.name, disk.role, disk.lun, disk.disk_id, "", None, snapshot_id=snap.id))
        for disk, snap in separate.values()
    ]
    entries.sort(key=lambda pair: (pair[0].role != "os", pair[0].lun or 0))
    disks = tuple(
        DiskEntry(**{**entry.__dict__, "blob_url": prefix.blob(disk_blob(entry.name)).display})
        for _, entry in entries
    )
    held = {d.disk_id.casefold() for d in disks}
    not_captured = tuple((d.name, d.disk_id) for d in vm.disks if d.disk_id.casefold() not in held)
    consistency = judge(
        point.consistency_mode, point.vm_size or vm.size, [facts[d.name] for d in disks if d.name in facts]
    )
    return GroupManifest(
        group_id=group_id(point.id, point.time_created),
        vm_id=vm.id,
        vm_name=vm.name,
        vm_unique_id=vm.vm_id,
        restore_point_id=point.id,
        restore_point_time=point.time_created.isoformat(),
        consistency_mode=point.consistency_mode or "",
        consistency=consistency.level,
        consistency_reasons=consistency.reasons,
        disks=disks,
        not_captured=not_captured,
    )
