"""Progress reporting: the library calls a `Progress` listener; it never prints.

The pipeline calls these hooks from the event loop; implementations must not block. `Progress` itself
does nothing, so a library caller subscribes only to what it needs. The CLI's terminal bar and its
human lines are one implementation (replicator.cli.terminal_progress); tests record calls with another.

Byte totals grow while listing streams (the plan is never held whole), so `on_planned` reports
increments and `on_listing_done` says the total is final; `on_total` gives the whole total earlier,
from a count of the plan made ahead of the copy (engine.job.JobRunner.count_total).

A run has one listener; `Fanout` makes several one (the CLI's terminal and the run's metrics,
replicator.observe.metrics.RunMeter). A VM run replicates its disks at once, each with the listener
`for_disk` gives, so that each disk's snapshot, bytes and totals stay its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from replicator.core.account_budget import BudgetRecord
from replicator.core.output import iso_z
from replicator.core.pacing import PacingRecord
from replicator.core.premium import TargetReport


@dataclass
class SnapshotResult:
    """What one replicated (or planned) snapshot cost; one entry of the `--json` document."""

    snapshot_id: str
    snapshot_name: str
    mode: str  # "full" | "diff"
    reason: str
    base_snapshot_id: str | None = None
    size_bytes: int = 0  # the exported snapshot's size: what a copy without diffs would move
    changed_bytes: int = 0  # bytes the service listed as changed (a full copy: its valid ranges)
    merged_gap_bytes: int = 0  # unchanged bytes copied anyway to save requests (--merge-gap, diffs only)
    cleared_bytes: int = 0  # bytes the plan clears
    copied_bytes: int = 0  # bytes actually written in this run (less when resumed past a checkpoint)
    resumed_from: int = 0  # checkpoint offset the run continued from
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    restore_point: str | None = None
    verified: bool | None = None
    committed: bool = False  # its restore point exists (or, with --plan, its plan is complete)
    remaining_bytes: int | None = None  # bytes still to copy when the run ended: 0 when committed
    listing_complete: bool = False  # False: remaining_bytes counts only what was listed so far (the
    # plan was neither listed to its end nor counted ahead: Progress.on_total)
    pacing: PacingRecord | None = None  # what the target blob's pacer did in this job (None: no writes ran)
    account_budget: BudgetRecord | None = None  # what the target account's budget did to its requests

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def how(self) -> str:
        """The mode and its reason as one phrase: `diff from s1`, `full copy (the target has no
        restore point)`. Why: a reason that already names the mode ("diff from s1", "full copy") would
        otherwise read twice ("diff copy (diff from s1)")."""
        copy = "full copy" if self.mode == "full" else f"{self.mode} copy"
        if self.reason.startswith((copy, f"{self.mode} from")):
            return self.reason
        return f"{copy} ({self.reason})"


@dataclass
class Protected:
    """What the target holds after a run: its newest restore point and the source snapshot in it."""

    restore_point: str
    snapshot_id: str
    snapshot_name: str
    snapshot_time: datetime

    def lag_seconds(self, now: datetime) -> float:
        """The RPO held now: how old the newest replicated source snapshot is."""
        return round(max(0.0, (now - self.snapshot_time).total_seconds()), 3)

    def to_json(self) -> dict[str, Any]:
        """The `newest_restore_point` of the `replicate` and `status` documents."""
        return {
            "id": self.restore_point,
            "snapshot_id": self.snapshot_id,
            "snapshot_name": self.snapshot_name,
            "snapshot_time": iso_z(self.snapshot_time),
        }


@dataclass
class RunResult:
    """The outcome of one `replicate` run: the payload of its JSON envelope (replicator.core.output)."""

    source: str
    target: str
    status: str = "nothing new"  # "replicated" | "nothing new" | "planned"
    snapshots: list[SnapshotResult] = field(default_factory=list)
    snapshot_taken: str | None = None  # --snapshot-now: ARM ID of the snapshot this run took
    source_snapshots_deleted: list[str] = field(default_factory=list)  # --source-keep: ARM IDs deleted
    protected: Protected | None = None  # the target's newest restore point when the run ended
    target_account: TargetReport | None = None  # the target's kind, tier and pacer ceiling (None: --plan)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The payload (the envelope adds `status`); `now` dates the lag (default: the current time)."""
        now = now or datetime.now(UTC)
        point = self.protected
        return {
            "source": self.source,
            "target": self.target,
            "snapshots": [s.to_json() for s in self.snapshots],
            "snapshot_taken": self.snapshot_taken,
            "source_snapshots_deleted": self.source_snapshots_deleted,
            "newest_restore_point": None if point is None else point.to_json(),
            "lag_seconds": None if point is None else point.lag_seconds(now),
            "target_account": None if self.target_account is None else self.target_account.to_json(),
        }


class Progress:
    """Listener of a run. Every hook is optional; the defaults ignore the event."""

    def for_disk(self, name: str, index: int, count: int) -> Progress:
        """The listener of the disk `name`, `index` (1-based) of the `count` disks of a VM run, whose
        disks run at once; by default one that ignores every event. The run's own listener keeps the
        steps of the whole VM (`on_message`)."""
        return Progress()

    def on_message(self, text: str) -> None:
        """A human-readable step (resolving, granting, waiting for completion, committing)."""

    def on_snapshot_start(self, result: SnapshotResult, index: int, total: int) -> None:
        """Snapshot `index` (1-based) of `total` starts; `result` carries its mode and reason."""

    def on_planned(self, copy_bytes: int, clear_bytes: int) -> None:
        """The plan grew by these many bytes to copy and to clear."""

    def on_listing_done(self) -> None:
        """Listing finished: the totals reported through `on_planned` are final."""

    def on_total(self, copy_bytes: int) -> None:
        """The current snapshot's plan copies `copy_bytes` in all (past any checkpoint), counted ahead
        of the copy; `on_planned` increments reach it only as the copy does."""

    def on_skipped(self, nbytes: int) -> None:
        """Bytes below a resume checkpoint that this run does not write again."""

    def on_written(self, nbytes: int) -> None:
        """A chunk of `nbytes` was copied onto the target (clears move no data and are not reported)."""

    def on_retry(self, what: str, attempt: int, delay: float, error: str) -> None:
        """A request failed transiently and is retried after `delay` seconds; `error` is redacted."""

    def on_snapshot_done(self, result: SnapshotResult) -> None:
        """The snapshot's restore point is committed (or, with --plan, its plan is complete)."""

    def on_protected(self, point: Protected) -> None:
        """The target's newest restore point is `point` (its source snapshot's time dates the lag).

        Called once the target's state is read and again after each commit, so a run that fails
        still says how old the replica is: now minus its snapshot time is the lag, the RPO held.
        """


class Fanout(Progress):
    """Several listeners as one: every hook reaches each listener, in order."""

    def __init__(self, *listeners: Progress) -> None:
        self.listeners = listeners

    def for_disk(self, name: str, index: int, count: int) -> Progress:
        return Fanout(*(listener.for_disk(name, index, count) for listener in self.listeners))


def _fan_out(name: str) -> Any:
    def hook(self: Fanout, *args: Any) -> None:
        for listener in self.listeners:
            getattr(listener, name)(*args)

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = getattr(Progress, name).__doc__
    return hook


# Generated from Progress itself, so a hook added there can never be dropped here.
for _name in [name for name in vars(Progress) if name.startswith("on_")]:
    setattr(Fanout, _name, _fan_out(_name))


class Tally(Progress):
    """Keeps what a run did so far: the committed snapshots and the one under way, with its bytes.

    Why: any ending that is not success (a failure, the time budget, a signal) must still say, per
    snapshot, how many bytes were done and how many remain; the pipeline raises instead of returning
    a result then, so the listener is what knows. Subclasses render it (the CLI) or log it (jobs).
    """

    def __init__(self) -> None:
        self.done: list[SnapshotResult] = []
        self.current: SnapshotResult | None = None
        self.planned = 0  # bytes to copy of the current snapshot, as listed so far (past any checkpoint)
        self.written = 0  # of those, bytes written
        self.cleared = 0
        self.skipped = 0  # bytes below a resumed run's checkpoint
        self.listing_complete = False
        self.counted: int | None = None  # the plan's bytes to copy in all, once counted (on_total)
        self.protected: Protected | None = None
        self.disks: dict[str, Tally] = {}  # a VM run's disks, each its own tally (for_disk)

    def for_disk(self, name: str, index: int, count: int) -> Tally:
        child = self.disks[name] = self._child(name, index, count)
        return child

    def _child(self, name: str, index: int, count: int) -> Tally:
        """A new listener of one disk (a subclass words it: replicator.observe.progress_log)."""
        return Tally()

    def committed(self) -> list[SnapshotResult]:
        """Every snapshot committed by the run, its disks' included."""
        return [*self.done, *(s for child in self.disks.values() for s in child.committed())]

    def on_protected(self, point: Protected) -> None:
        self.protected = point

    def on_snapshot_start(self, result: SnapshotResult, index: int, total: int) -> None:
        self.current = result
        self.planned = self.written = self.cleared = self.skipped = 0
        self.listing_complete = False
        self.counted = None

    def on_planned(self, copy_bytes: int, clear_bytes: int) -> None:
        self.planned += copy_bytes
        self.cleared += clear_bytes

    def on_listing_done(self) -> None:
        self.listing_complete = True

    def on_total(self, copy_bytes: int) -> None:
        self.counted = copy_bytes

    def on_skipped(self, nbytes: int) -> None:
        self.skipped += nbytes

    def on_written(self, nbytes: int) -> None:
        self.written += nbytes

    def on_snapshot_done(self, result: SnapshotResult) -> None:
        result.committed, result.remaining_bytes, result.listing_complete = True, 0, True
        self.done.append(result)
        self.current = None

    @property
    def total(self) -> int:
        """Bytes to copy of the current snapshot: the counted plan, else what was listed so far."""
        return self.planned if self.listing_complete or self.counted is None else self.counted

    @property
    def total_known(self) -> bool:
        """Whether `total` is the whole plan (listed to the end, or counted ahead), not a lower bound."""
        return self.listing_complete or self.counted is not None

    @property
    def remaining(self) -> int:
        """Bytes of the current snapshot not yet written (a lower bound while `total_known` is False)."""
        return max(0, self.total - self.written)

    def snapshots(self) -> list[SnapshotResult]:
        """Every snapshot this run started: the committed ones, then the one it stopped in (if any)."""
        if self.current is None:
            return list(self.done)
        self.current.remaining_bytes = self.remaining
        self.current.listing_complete = self.total_known
        return [*self.done, self.current]


@dataclass
class DiskRun:
    """One disk of a VM group in a run: the per-disk section of the VM run's `--json` document."""

    name: str
    role: str  # "os" | "data"
    lun: int | None
    disk_id: str
    target: str  # the disk's base blob, without SAS
    source_point_id: str  # its disk restore point (or, outside a crash-consistent restore point, snapshot)
    status: str = "pending"  # "replicated", "nothing new", "planned", or an error status (errors.status_of)
    error: str | None = None
    restore_point: str | None = None  # the blob snapshot of the target holding the group's instant
    snapshots: list[SnapshotResult] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        return self.restore_point is not None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "committed": self.committed}


@dataclass
class GroupRun:
    """One group (one VM restore point) a run worked on; see replicator.target.manifest."""

    group_id: str
    manifest: str  # the manifest blob's URL, without SAS
    restore_point_id: str
    restore_point_time: datetime
    consistency_mode: str
    consistency: str
    consistency_reasons: tuple[str, ...]
    resumed: bool  # an earlier run started it
    disks: list[DiskRun] = field(default_factory=list)
    not_captured: tuple[str, ...] = ()  # disks of the VM that the restore point does not hold

    @property
    def complete(self) -> bool:
        return all(d.committed for d in self.disks)

    def to_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "manifest": self.manifest,
            "restore_point": {
                "id": self.restore_point_id,
                "time": iso_z(self.restore_point_time),
                "consistency_mode": self.consistency_mode,
            },
            "consistency": self.consistency,
            "consistency_reasons": list(self.consistency_reasons),
            "resumed": self.resumed,
            "complete": self.complete,
            "missing": [d.name for d in self.disks if not d.committed],
            "not_captured": list(self.not_captured),
            "disks": [d.to_json() for d in self.disks],
        }


@dataclass
class VmRunResult:
    """The outcome of one `replicate` run of a virtual machine: the payload of its JSON envelope."""

    source: str
    target: str  # the prefix, without SAS
    vm_name: str = ""
    vm_id: str = ""  # the VM's vmId
    status: str = "nothing new"  # "replicated" | "nothing new" | "planned"
    groups: list[GroupRun] = field(default_factory=list)
    restore_point_taken: str | None = None  # --snapshot-now: the VM restore point this run created
    snapshots_taken: list[str] = field(default_factory=list)  # disks outside it (Ultra, Premium SSD v2...)
    restore_points_deleted: list[str] = field(default_factory=list)  # --source-keep
    source_snapshots_deleted: list[str] = field(default_factory=list)  # --source-keep, of those disks
    protected: Protected | None = None  # the newest complete group: (group ID, restore point ID, name, time)

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        point = self.protected
        return {
            "source": self.source,
            "target": self.target,
            "vm": {"name": self.vm_name, "vm_id": self.vm_id},
            "groups": [g.to_json() for g in self.groups],
            "restore_point_taken": self.restore_point_taken,
            "snapshots_taken": self.snapshots_taken,
            "restore_points_deleted": self.restore_points_deleted,
            "source_snapshots_deleted": self.source_snapshots_deleted,
            "newest_complete_group": None
            if point is None
            else {
                "group_id": point.restore_point,
                "restore_point_id": point.snapshot_id,
                "restore_point_time": iso_z(point.snapshot_time),
            },
            "lag_seconds": None if point is None else point.lag_seconds(now),
        }
