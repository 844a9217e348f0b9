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
  The SDK's own retry is switched off for these calls (`retry_total=0`), so retries never stack.
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
    config, target, inspection, progress, budget = (
        each.config,
        each.target,
        each.inspection,
        each.progress,
        each.budget,
    )
    points = await check_points(each, identity, snaps)
    todo = candidates(config, inspection.state, snaps, _held(points))
    await _check_disk_access(each.source, [*todo, *_last_of(inspection.state, snaps)], probe=not config.plan)
    runner = JobRunner(config, each.source, target, each.reader, progress, budget)
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
        for i, job in enumerate(jobs, 1):
            if budget.expired():
                raise budget.incomplete(f"before {job.snapshot.name}")
            result, state = await runner.run(job, state, identity, i, len(jobs), blank=blank and i == 1)
            run.snapshots.append(result)
        if after is not None:
            await after(state)
        run.status = "replicated" if jobs else "nothing new"
        run.protected = _protected(state)


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
