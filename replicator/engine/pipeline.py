"""One replication run: resolve → choose base → grant → lease → list → plan → queue → workers → commit.

This module runs the whole replication (`replicate`): inspect and lease the target, resolve the
source, choose the jobs, run them one after another. One job is engine.job (grants, plan, checkpoints,
verify, commit); its writes and their worker pool are engine.copier. Range arithmetic is
replicator.core.ranges, the source (ARM, SAS grants, diff listing) is replicator.source, the target
page blob is replicator.target. The data flow of one snapshot, its memory bound and its resume are
engine.job's docstring.

Who retries what:
- Chunk writes and source reads (Put Page From URL, Put Page, clear, ranged GET): engine.copier, with
  plumbing.retry (tenacity), up to `Config.max_attempts` attempts; a 403 on the source SAS re-grants.
  Nothing below retries them (the writes: plumbing.page_writes, no SDK pipeline; the reads pass
  `retry_total=0`), so retries never stack.
- Control calls on the target (properties, metadata, lease, resize, snapshot): the SDK's storage
  retry policy (recovery.storage_retry: 3 retries).
- ARM calls: source.arm (the SDK's ARM retry policy); SAS grants within the family's slots, with
  their own wait: source.grants; the diff listing: source.listing.

Base choice (why a run is full or diff) is engine.base_choice; a resize across 4 TiB that sizes did not
show is found by engine.job, from the service's refusal (listing.DiffNotPossible).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from replicator.core import permissions, premium, stripes
from replicator.core.errors import UserError
from replicator.core.premium import SnapshotCount, TargetKind, TargetReport
from replicator.core.progress import Progress, Protected, RunResult
from replicator.engine import snapshots
from replicator.engine.base_choice import (
    DiskIdentity,
    Job,
    candidates,
    check_source,
    choose_jobs,
    disk_identity,
    exported_size,
    unprotected,
)
from replicator.engine.job import JobRunner
from replicator.engine.time_budget import Budget
from replicator.observe.jsonlog import event
from replicator.settings.config import Config
from replicator.source.arm import ArmSource, SnapshotInfo
from replicator.source.grants import read_grant
from replicator.source.listing import snapshot_blob_size
from replicator.source.reader import SasBlobReader
from replicator.target.page_blob import Inspection, PageBlobTarget
from replicator.target.state import RestorePoint, State

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- the run


def _report_protected(progress: Progress, state: State) -> None:
    """Tell the listener the target's newest restore point (the lag is measured from its snapshot's
    time); from the state already read, no request. Unreadable metadata reports nothing."""
    with contextlib.suppress(ValueError):
        if point := _protected(state):
            progress.on_protected(point)


def _held(points: list[RestorePoint]) -> set[str]:
    """The uniqueIds of the source snapshots the target has restore points of: never copied again.

    Empty when the credential cannot list the container (a blob-scoped SAS: `restore_points` returns
    nothing); then a snapshot may get a second restore point (docs/runbook.md says so).
    """
    return {p.meta.snapshot_unique_id for p in points if p.meta.snapshot_unique_id}


def _adopt_lost_commit(points: list[RestorePoint], state: State) -> State:
    """A run killed between its restore point and the state update: adopt that restore point."""
    progress = state.in_progress
    if progress is None:
        return state
    if not points or points[-1].id <= (state.last_restore_point or ""):
        return state
    held = points[-1].meta.snapshot_unique_id
    if not held or held != progress.snapshot.unique_id:
        return state
    latest = points[-1]
    log.info("adopting restore point %s committed by an interrupted run", latest.id)
    return replace(state, last=progress.snapshot, last_restore_point=latest.id, in_progress=None)


@dataclass(frozen=True)
class TargetRun:
    """What replicating into one target needs: the run's knobs (its `source` names the disk, for the
    checks and their sentences), the target and what inspecting it found, the source's ARM client and
    reader, the listener and the time budget. A disk run has one; a VM run one per disk
    (replicator.engine.vm_run)."""

    config: Config
    target: PageBlobTarget
    inspection: Inspection
    source: ArmSource
    reader: SasBlobReader
    progress: Progress
    budget: Budget


async def replicate(
    config: Config, progress: Progress | None = None, budget: Budget | None = None
) -> RunResult:
    """Replicate `config.source` (a disk or snapshot) into `config.target` (or, with `config.plan`,
    only say what it would do).

    `budget` (default: from `config.time_budget_seconds`) ends the run with IncompleteError, checkpoint
    saved, before it runs out.
    """
    progress = progress or Progress()
    budget = budget or Budget(config.time_budget_seconds)
    async with PageBlobTarget(config, command="replicate --plan" if config.plan else "replicate") as target:
        run = RunResult(config.source, target.url.display)
        progress.on_message(f"inspecting {target.url.display}")
        inspection = await target.inspect()
        _report_protected(progress, inspection.state)
        source = await ArmSource.open(config)
        async with source, contextlib.aclosing(SasBlobReader(source.disk_auth)) as reader:
            search = config.snapshot_search
            if config.snapshot_now and not config.plan:
                taken = await snapshots.snapshot_now(
                    source, config.source, progress.on_message, target=target.url.display, search=search
                )
                run.snapshot_taken = taken.id
            progress.on_message(f"resolving {config.source}")
            disk, snaps = await source.resolve(config.source, search=search)
            if not snaps:
                if config.plan and config.snapshot_now:  # the run would take one: it is not unprotected
                    progress.on_message("the disk has no incremental snapshot yet; --snapshot-now takes one")
                    run.status = "planned"
                    return run
                raise unprotected(config, len(await source.full_snapshots(config.source, search=search)))

            async def keep_source(state: State) -> None:
                if config.source_keep:
                    run.source_snapshots_deleted = await snapshots.keep_source(
                        source,
                        config.source,
                        config.source_keep,
                        state,
                        progress.on_message,
                        target=target.url.display,
                        search=search,
                    )

            each = TargetRun(config, target, inspection, source, reader, progress, budget)
            await replicate_points(each, disk_identity(disk, snaps), snaps, run, after=keep_source)
    return run


async def check_points(
    each: TargetRun, identity: DiskIdentity | None, snaps: list[SnapshotInfo]
) -> list[RestorePoint]:
    """The checks of `snaps` against what the target holds, before anything is granted or written
    (UserError); returns the target's restore points."""
    inspection = each.inspection
    if not inspection.exists:
        await each.target.check_not_a_prefix()
    points = await each.target.restore_points(required=False) if inspection.exists else []
    check_source(each.config, inspection.state, identity, snaps, _held(points))
    return points


async def replicate_points(
    each: TargetRun,
    identity: DiskIdentity | None,
    snaps: list[SnapshotInfo],
    run: RunResult,
    *,
    after: Callable[[State], Awaitable[None]] | None = None,
) -> None:
    """Replicate the source points `snaps` (snapshots or disk restore points of the disk `identity`,
    oldest first) into the target, as many as it does not hold yet; `run` gets each job's result and
    the status. `after` runs under the lease once the jobs are done, with the state they left.

    Checked before anything is granted or written (check_source), then again under the lease.
    """
    target, inspection, progress, budget = each.target, each.inspection, each.progress, each.budget
    kind, unread = await target.account_kind()  # once per target: a premium blob has its own rules
    config, notes = _for_kind(each.config, kind, unread)
    points = await check_points(each, identity, snaps)
    todo = candidates(config, inspection.state, snaps, _held(points))
    report = _report(config, kind, exported_size(snaps[-1]), points, notes)
    run.target_account = report
    permissions.check_stripe_reach(config.target, target.url.blob, len(stripes.layout(report.size)))
    _check_room(target, report, points, commits=min(1, len(todo)) if kind.premium else 0)
    await _check_disk_access(each.source, [*todo, *_last_of(inspection.state, snaps)], probe=not config.plan)
    runner = JobRunner(config, each.source, target, each.reader, progress, budget, ceiling=report.ceiling)
    if config.plan:
        jobs = await choose_jobs(each.source, config, inspection.state, identity, snaps, _held(points))
        _log_choices(jobs)
        for i, job in enumerate(jobs, 1):
            run.snapshots.append(await runner.plan_only(job, i, len(jobs), inspection.exists))
        run.status = "planned" if jobs else "nothing new"
        run.protected = _protected(inspection.state)
        return
    await target.create(exported_size(snaps[-1]))
    async with (
        # Every wait below (lease, SAS slot, grant, background copy, commit, verify) ends
        # within the time budget, not only the copy pool (time_budget.py).
        budget.bounded(f"while replicating {config.source} (waiting on the service)"),
        target.leased(budget.cap(config.lease_wait_seconds)),
    ):
        inspection = await target.inspect()
        runner.target_size = inspection.size
        blank = await target.is_blank()  # under the lease: what create() saw may be stale
        # Checked again under the lease: another run may have written the target meanwhile.
        points = await target.restore_points(required=False)
        held = _held(points)
        state = _adopt_lost_commit(points, inspection.state)
        check_source(config, state, identity, snaps, held)
        if state != inspection.state:
            await target.write_state(state)
        _report_protected(progress, state)
        jobs = await choose_jobs(each.source, config, state, identity, snaps, held)
        _log_choices(jobs)
        _check_room(target, report, points, commits=len(jobs) if kind.premium else 0)
        for i, job in enumerate(jobs, 1):
            if budget.expired():
                raise budget.incomplete(f"before {job.snapshot.name}")
            result, state = await runner.run(job, state, identity, i, len(jobs), blank=blank and i == 1)
            run.snapshots.append(result)
        if report.snapshots is not None:  # what the blob holds now: the run document's count
            run.target_account = replace(report, snapshots=SnapshotCount(len(points) + len(jobs)))
        if after is not None:
            await after(state)
        run.status = "replicated" if jobs else "nothing new"
        run.protected = _protected(state)


def _for_kind(config: Config, kind: TargetKind, unread: str | None) -> tuple[Config, tuple[str, ...]]:
    """The run's knobs for its target's kind, and the notes the run document gives about it.

    A premium page blob takes one snapshot every ten minutes (core.premium), so a run commits one
    restore point at most: the newest snapshot's, as --latest-only does; the older ones are skipped,
    never refused one by one at their commit."""
    if unread is not None:
        return config, (unread,)
    if not kind.premium or config.latest_only:
        return config, ()
    minutes = premium.SNAPSHOT_INTERVAL_SECONDS // 60
    note = (
        f"a premium page blob takes one snapshot every {minutes} minutes: this run replicates the newest "
        "snapshot only (as --latest-only)"
    )
    return replace(config, latest_only=True), (note,)


def _report(
    config: Config, kind: TargetKind, size: int, points: list[RestorePoint], notes: tuple[str, ...]
) -> TargetReport:
    """The run document's `target_account`: kind, tier, pacer ceiling and (premium) the snapshot count."""
    count = SnapshotCount(len(points)) if kind.premium else None
    return TargetReport(kind, size, premium.ceiling_for(kind, size, config.concurrency), count, notes)


def _check_room(
    target: PageBlobTarget, report: TargetReport, points: list[RestorePoint], commits: int
) -> None:
    """Refuse (UserError, exit 2) a run whose `commits` a premium blob's 100 snapshots cannot hold, before
    anything is copied; every snapshot counts, the tool's and any other (which prune never deletes)."""
    if report.snapshots is None:
        return
    foreign = sum(not p.taken_by_replicator for p in points)
    refusal = premium.room_refusal(target.url.display, SnapshotCount(len(points)), commits, foreign)
    if refusal is not None:
        raise UserError(refusal)


def _last_of(state: State | None, snaps: list[SnapshotInfo]) -> list[SnapshotInfo]:
    """The snapshot the target last committed, when it still exists: the base of the next diff, read
    by it (as the diff's previous snapshot) even when every snapshot to copy is unprotected."""
    last = state.last if state is not None else None
    return [s for s in snaps if last is not None and s.id.casefold() == last.id.casefold()]


async def _check_disk_access(source: ArmSource, todo: list[SnapshotInfo], *, probe: bool) -> None:
    """The first Entra-ID-protected snapshot the run reads (source.disk_auth), checked before the target
    is touched: a credential that cannot get a disk token (REPLICATOR_ACCESS_TOKEN) is refused before
    anything is granted; with `probe` (a run that writes), its size is then read with the disk token,
    so an identity without the data role ends with exit 2 naming the role while nothing is written
    (the probe's grant is revoked on the way out). It costs a run of a protected source one more grant
    and revoke; --plan writes nothing and its own listing shows the same refusal, so it does not probe.
    A snapshot only the service shows protected (its challenge) is found by its job's first request.
    """
    protected = next((s for s in todo if s.protected), None)
    if protected is None:
        return
    source.disk_auth.check_credential(protected.name)
    if probe:
        async with read_grant(source, protected) as grant:
            await snapshot_blob_size(grant)


def _log_choices(jobs: list[Job]) -> None:
    """--log-level debug: the base each snapshot is copied from and why (engine.base_choice decides)."""
    for job in jobs:
        base = job.base.name if job.base else "nothing (full copy)"
        resume = f"; resuming at byte {job.checkpoint}" if job.checkpoint else ""
        event(
            "base_chosen",
            logging.DEBUG,
            message=f"{job.snapshot.name}: base {base}, because {job.reason}{resume}",
            snapshot=job.snapshot.id,
            mode=job.mode,
            base_snapshot=job.base.id if job.base else None,
            reason=job.reason,
            checkpoint=job.checkpoint,
        )


def _protected(state: State) -> Protected | None:
    """The target's newest restore point and its source snapshot, as the state records them."""
    if state.last is None or not state.last_restore_point:
        return None
    return Protected(
        state.last_restore_point, state.last.id, state.last.name, datetime.fromisoformat(state.last.time)
    )
