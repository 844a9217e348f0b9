"""How current is each replica: what `replicate status` decides from what it read. Pure: no I/O.

replicator.fleet.status reads the facts of each target (its metadata and restore points, the source disk's
snapshots through ARM) into `Facts`; this module turns facts and a moment `now` into a verdict,
renders the human table and the JSON of each target, and parses and prints durations.

Verdicts, in the order of `judge` (the first that applies):

- `unknown`: the target or the source could not be read; `reason` is the error's one sentence.
- `unprotected`: the target holds no restore point (no target blob at all, or a first copy never
  committed), or the source disk has no incremental snapshot (no run can add a restore point), or
  the newest restore point of a striped target (a source over 8 TiB) misses a stripe's snapshot.
- `stale`: the lag (now minus the creation time of the newest source snapshot any restore point
  holds: the RPO held) exceeds the maximum age; or a run stopped part-way (the target records a
  snapshot in progress), is not running now (the lease is free), and the target was last written
  more than the maximum age ago: nothing has resumed it for that long.
- `fresh`: none of the above: the lag is within the maximum age.

A VM's target prefix (`Facts.groups`) is judged by its group manifests instead: the newest complete
group's VM restore point is what is protected (its creation time the lag), newer incomplete groups
are named; no complete group is `unprotected`. A disk blob of a VM (`Facts.vm_disk`: its restore
points hold disk restore points, not snapshots of the disk) is judged by its own restore points,
never by the disk's snapshots (a VM run takes none), and its reason points at the prefix.

A fleet's verdict is its worst target's, in the order fresh < unknown < stale < unprotected: a
confirmed breach outranks a target that could not be checked (whose row still says so), so the
exit code names the confirmed problem. Exit codes: fresh 0, unknown 1, stale 5, unprotected 4.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from replicator.core.drill_record import DrillRecord
from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STALE,
    EXIT_UNPROTECTED,
)
from replicator.core.messages import clip
from replicator.core.output import (
    human_size,
    iso_z,
    plural,
    table,
)
from replicator.core.premium import SnapshotCount
from replicator.core.progress import Protected

Verdict = Literal["fresh", "unknown", "stale", "unprotected"]

ORDER: tuple[Verdict, ...] = ("fresh", "unknown", "stale", "unprotected")
"""Verdicts from best to worst; a fleet takes its worst target's."""

EXIT_CODES: dict[Verdict, int] = {
    "fresh": EXIT_OK,
    "unknown": EXIT_FAILED,
    "stale": EXIT_STALE,
    "unprotected": EXIT_UNPROTECTED,
}

# ---------------------------------------------------------------- durations

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"(?:{_NUMBER}\s*[smhd]\s*)+")


def parse_duration(text: str) -> float:
    """'26h' → 93600.0: seconds of `26h`, `90m`, `2d`, `1d12h`, `45s` or a bare number of seconds.

    ValueError with one sentence for anything else, and for zero (every lag is more than zero, so
    a zero maximum age would call every target stale).
    """
    compact = text.strip().lower()
    if re.fullmatch(_NUMBER, compact):
        seconds = float(compact)
    elif _DURATION.fullmatch(compact):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in re.findall(rf"({_NUMBER})\s*([smhd])", compact))
    else:
        raise ValueError(
            f"expected a duration like 26h, 90m, 2d, 1d12h or 3600 (seconds); got {clip(text)!r}"
        )
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"the duration must be more than zero; got {clip(text)!r}")
    return seconds


def human_duration(seconds: float) -> str:
    """93784 → '1d 2h': the two largest units (d, h, m, s), the rest cut off; '0s' below a second."""
    whole = max(0, int(seconds))
    units = list(_UNITS.items())[::-1]  # d, h, m, s
    for i, (unit, size) in enumerate(units):
        if whole >= size or unit == "s":
            text = f"{whole // size}{unit}"
            if i + 1 < len(units):
                smaller, smaller_size = units[i + 1]
                text += f" {whole % size // smaller_size}{smaller}"
            return text
    raise AssertionError("unreachable: seconds is the last unit")


# ---------------------------------------------------------------- facts


class Count(NamedTuple):
    """A count against one of Azure's limits (snapshots per disk, SAS per family)."""

    count: int
    limit: int

    def __str__(self) -> str:
        return f"{self.count}/{self.limit}"


@dataclass(frozen=True)
class SourceSnapshot:
    """The source disk's newest incremental snapshot."""

    id: str
    name: str
    time_created: datetime


@dataclass(frozen=True)
class RunState:
    """A replication the target records as in progress: running now (lease held) or stopped part-way."""

    snapshot_id: str
    snapshot_name: str
    mode: str
    checkpoint: int  # every byte below this offset is on the target
    total_bytes: int | None  # the size being written; None when an older writer did not record it
    running: bool  # the target's lease is held: a run is on it now
    last_written: datetime | None  # the target's Last-Modified (a checkpoint is a metadata write)

    def describe(self) -> str:
        """`running snap-3 diff 12.0 MiB/1.0 GiB`: checkpoint of total."""
        done = human_size(self.checkpoint)
        if self.total_bytes:
            done += f"/{human_size(self.total_bytes)}"
        return f"{'running' if self.running else 'stopped'} {self.snapshot_name} {self.mode} {done}"


@dataclass(frozen=True)
class GroupFacts:
    """What a VM's target prefix holds: its group manifests, as status judges them."""

    vm: str | None = None  # the VM's ARM ID the newest manifest records; None when there is none
    incomplete: tuple[str, ...] = ()  # groups newer than the newest complete one: `<group id> (missing ...)`


@dataclass(frozen=True)
class Facts:
    """What was read of one target and its source; None where it was not (or could not be) read."""

    target: str  # the target URL without its SAS
    source: str | None = None  # the source disk's ARM ID (recorded on the target, or the job's)
    restore_points: int = 0
    newest: Protected | None = None  # the restore point holding the newest source snapshot
    lease_held: bool | None = None  # None: no target blob (or it could not be read)
    run: RunState | None = None
    newest_snapshot: SourceSnapshot | None = None
    newest_replicated: bool | None = None  # a restore point holds the newest source snapshot
    source_snapshots: Count | None = None  # the disk's incremental snapshots against 500
    active_grants: Count | None = None  # snapshots of the disk's family with an active SAS, against 5
    error: str | None = None  # why the target or the source could not be read: the verdict is unknown
    last_drill: DrillRecord | None = None  # the last restore drill the target records
    groups: GroupFacts | None = None  # the target is a VM's prefix; `newest` is its newest complete group
    vm_disk: bool = False  # a VM's disk blob: its restore points hold disk restore points
    missing_stripes: tuple[int, ...] = ()  # stripes whose snapshot the newest restore point names and lacks
    target_snapshots: SnapshotCount | None = None  # a premium target blob's snapshots against its 100


class Judgement(NamedTuple):
    verdict: Verdict
    reason: str  # one sentence: why this verdict


def judge(facts: Facts, now: datetime, max_age_seconds: float) -> Judgement:
    """The verdict on one target (see the module docstring for each rule and their order)."""
    limit = human_duration(max_age_seconds)
    if facts.error is not None:
        return Judgement("unknown", facts.error)
    if facts.groups is not None:
        return judge_groups(facts, facts.groups, now, max_age_seconds)
    problems = []
    if facts.newest is None:
        what = "the target blob does not exist" if facts.lease_held is None else "no restore point"
        if facts.run is not None:
            what += f" (a first copy is {facts.run.describe()})"
        problems.append(f"{what}: nothing can be restored")
    if facts.source_snapshots is not None and facts.source_snapshots.count == 0:
        problems.append(
            "the source disk has no incremental snapshot: no run can add a restore point "
            "(take one, or schedule runs with --snapshot-now; snapshots kept in another resource "
            "group are found with --snapshot-search subscription)"
        )
    if facts.missing_stripes and facts.newest is not None:
        stripes = ", ".join(str(k) for k in facts.missing_stripes)
        problems.append(
            f"the newest restore point {facts.newest.restore_point} misses the snapshot of stripe(s) "
            f"{stripes} (blobs <target>.stripe<k>): it cannot be restored"
        )
    if problems or facts.newest is None:
        return Judgement("unprotected", "; ".join(problems) + ".")
    lag = facts.newest.lag_seconds(now)
    if lag > max_age_seconds:
        note = f"; {VM_DISK_NOTE}" if facts.vm_disk else ""
        return Judgement("stale", f"the lag {human_duration(lag)} exceeds the maximum age {limit}{note}.")
    run = facts.run
    if run is not None and not run.running and run.last_written is not None:
        idle = (now - run.last_written).total_seconds()
        if idle > max_age_seconds:
            return Judgement(
                "stale",
                f"a run stopped part-way ({run.describe()}) and nothing resumed it for "
                f"{human_duration(idle)}, more than the maximum age {limit}.",
            )
    note = ""
    if facts.newest_replicated is False and facts.newest_snapshot is not None:
        note = f"; the newest snapshot {facts.newest_snapshot.name} is not replicated yet"
    if facts.vm_disk:
        note += f"; {VM_DISK_NOTE}"
    return Judgement("fresh", f"the lag {human_duration(lag)} is within the maximum age {limit}{note}.")


VM_DISK_NOTE = (
    "this blob is one disk of a VM's group (its restore points hold disk restore points): "
    "run status on the VM's target prefix to judge the whole VM"
)


def judge_groups(facts: Facts, groups: GroupFacts, now: datetime, max_age_seconds: float) -> Judgement:
    """The verdict on a VM's target prefix: `facts.newest` is its newest complete group (None: none)."""
    limit = human_duration(max_age_seconds)
    incomplete = ""
    if groups.incomplete:
        named = ", ".join(groups.incomplete)
        incomplete = f"; incomplete newer {plural(len(groups.incomplete), 'group')}: {named}"
    newest = facts.newest
    if newest is None:
        vm = groups.vm or "<VM ID>"
        what = f"no {'complete ' if groups.incomplete else ''}group of a VM under the prefix"
        return Judgement(
            "unprotected",
            f"{what}{incomplete}: nothing can be restored (replicate the VM: "
            f"replicate --source {vm} --target {facts.target} --snapshot-now).",
        )
    lag = newest.lag_seconds(now)
    group = f"the newest complete group {newest.restore_point}"
    if lag > max_age_seconds:
        return Judgement(
            "stale", f"{group}: the lag {human_duration(lag)} exceeds the maximum age {limit}{incomplete}."
        )
    return Judgement(
        "fresh", f"{group}: the lag {human_duration(lag)} is within the maximum age {limit}{incomplete}."
    )


def worst(verdicts: list[Verdict]) -> Verdict:
    """The fleet's verdict: its worst target's (fresh when there is none)."""
    return max(verdicts, key=ORDER.index, default="fresh")


# ---------------------------------------------------------------- output


@dataclass(frozen=True)
class Checked:
    """One target's facts and its verdict at `now`."""

    facts: Facts
    judgement: Judgement
    now: datetime

    @property
    def lag_seconds(self) -> float | None:
        return None if self.facts.newest is None else self.facts.newest.lag_seconds(self.now)

    def to_json(self) -> dict[str, Any]:
        """One entry of the `targets` of the `status` document."""
        f = self.facts
        run = f.run
        snap = f.newest_snapshot
        return {
            "target": f.target,
            "source": f.source,
            "verdict": self.judgement.verdict,
            "reason": self.judgement.reason,
            "error": f.error,
            "newest_restore_point": None if f.newest is None else f.newest.to_json(),
            "lag_seconds": self.lag_seconds,
            "restore_points": f.restore_points,
            "newest_source_snapshot": None
            if snap is None
            else {"id": snap.id, "name": snap.name, "time_created": iso_z(snap.time_created)},
            "newest_source_snapshot_replicated": f.newest_replicated,
            "in_progress": None
            if run is None
            else {
                "snapshot_id": run.snapshot_id,
                "snapshot_name": run.snapshot_name,
                "mode": run.mode,
                "checkpoint": run.checkpoint,
                "total_bytes": run.total_bytes,
                "running": run.running,
                "last_written_at": None if run.last_written is None else iso_z(run.last_written),
            },
            "lease": None if f.lease_held is None else ("held" if f.lease_held else "free"),
            "source_snapshots": None if f.source_snapshots is None else f.source_snapshots._asdict(),
            "active_grants": None if f.active_grants is None else f.active_grants._asdict(),
            "last_drill": None if f.last_drill is None else f.last_drill.to_json(),
            "target_snapshots": None
            if f.target_snapshots is None
            else {**f.target_snapshots.to_json(), "near_limit": f.target_snapshots.near},
            "warning": snapshot_warning(f),
        }


def snapshot_warning(facts: Facts) -> str | None:
    """The warning of a premium target near its 100 snapshots (core.premium.SNAPSHOT_WARN_AT): the verdict
    stays what the lag makes it, but a run will soon be refused until restore points are pruned."""
    count = facts.target_snapshots
    if count is None or not count.near:
        return None
    return (
        f"the premium target blob holds {count.held} of its {count.limit} snapshots; runs are refused "
        "once it is full: prune old restore points (replicate prune --target URL --keep N)"
    )


def _cell(value: object | None) -> str:
    return "-" if value is None else str(value)


def render(checked: list[Checked], max_age_seconds: float) -> list[str]:
    """The human table (one row per target), then why each target that is not fresh is not."""
    header = ("target", "verdict", "newest restore point", "lag", "newest replicated", "run", "lease")
    rows = [(*header, "snapshots", "grants")]
    for c in checked:
        f = c.facts
        point = None if f.newest is None else f"{f.newest.snapshot_name} {iso_z(f.newest.snapshot_time)}"
        lag = c.lag_seconds
        rows.append(
            (
                f.target,
                c.judgement.verdict,
                _cell(point),
                _cell(None if lag is None else human_duration(lag)),
                _cell(None if f.newest_replicated is None else ("yes" if f.newest_replicated else "no")),
                _cell(None if f.run is None else f.run.describe()),
                _cell(None if f.lease_held is None else ("held" if f.lease_held else "free")),
                _cell(f.source_snapshots),
                _cell(f.active_grants),
            )
        )
    lines = table(rows)
    lines += [f"{c.facts.target}: {warning}" for c in checked if (warning := snapshot_warning(c.facts))]
    for c in checked:
        if c.facts.last_drill is not None:
            lines.append(f"{c.facts.target}: last drill {c.facts.last_drill.describe()}")
    for c in checked:
        if c.judgement.verdict != "fresh":
            lines.append(f"{c.facts.target}: {c.judgement.verdict}: {c.judgement.reason}")
    counts = ", ".join(f"{n} {v}" for v in ORDER if (n := sum(c.judgement.verdict == v for c in checked)))
    limit = human_duration(max_age_seconds)
    lines.append(f"{plural(len(checked), 'target')}: {counts or 'none'} (maximum age {limit})")
    return lines


SUMMARY_TARGETS = 3
"""Targets named in the envelope's one-sentence error; the rest are counted (every one is in `targets`)."""


def summary(checked: list[Checked]) -> str | None:
    """The envelope's `error`: one sentence naming the targets that are not fresh, worst first; None
    when every target is fresh."""
    bad = sorted(
        (c for c in checked if c.judgement.verdict != "fresh"),
        key=lambda c: -ORDER.index(c.judgement.verdict),
    )
    if not bad:
        return None
    named = "; ".join(
        f"{c.facts.target} is {c.judgement.verdict} ({c.judgement.reason.rstrip('.')})"
        for c in bad[:SUMMARY_TARGETS]
    )
    more = f"; and {len(bad) - SUMMARY_TARGETS} more" if len(bad) > SUMMARY_TARGETS else ""
    return f"{len(bad)} of {plural(len(checked), 'target')} not fresh: {named}{more}."
