"""`replicate status`: read what each target and its source disk hold, and judge it (core.freshness).

Per target, with the adapters every other command uses (no second reader):

- the base blob (PageBlobTarget.inspect): the replication state in its metadata (the source disk,
  a run in progress and its checkpoint), the lease, Last-Modified;
- its restore points (PageBlobTarget.restore_points, read as restore_points.PointInfo): the newest
  source snapshot any of them holds is the RPO held;
- the source disk the target records (State.disk_id; for a target not written yet, the job's source)
  through ArmSource.resolve, as a run resolves it: its incremental snapshots (the newest, whether a
  restore point holds it, how many against Azure's 500) and how many of its family have an active
  SAS (diskState ActiveSAS, against the five Azure allows per family).

A target with no blob whose URL is a VM's prefix (a container URL, or a folder holding group
manifests, or any folder of a job whose source is a VM) is read through target.groups.GroupStore
instead (`group_facts`: the newest complete group, the incomplete ones newer than it). A blob whose
restore points hold disk restore points is a VM's disk: its source disk's snapshots are not read
(a VM run takes none, so their absence says nothing).

Nothing is written, no lease is taken, no SAS is granted: a probe may run it as often as it likes,
also while a replication runs. A target or source that cannot be read is a fact too (verdict
`unknown` with the error's one sentence), so one unreadable target never hides the others.

A fleet is read concurrently, at most STATUS_CONCURRENCY targets at a time, through one ArmSource
(one credential, one ARM client per subscription) shared by all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from replicator.core import arm_ids
from replicator.core.errors import ReplicatorError, UserError
from replicator.core.freshness import (
    Checked,
    Count,
    Facts,
    GroupFacts,
    RunState,
    SourceSnapshot,
    judge,
    parse_duration,
)
from replicator.core.messages import describe
from replicator.core.premium import SnapshotCount
from replicator.core.progress import Protected
from replicator.engine.snapshots import SNAPSHOTS_PER_DISK
from replicator.fleet.jobs import (
    DISCOVER_ENV,
    JOBS_ENV,
    JobSpec,
    load_jobs,
)
from replicator.plumbing.urlcheck import parse_target_prefix, parse_target_url
from replicator.settings.config import Config
from replicator.settings.knobs import TARGET_KNOBS
from replicator.source.arm import ArmSource
from replicator.source.grants import FAMILY_SAS_LIMIT
from replicator.target.groups import GroupStore, Stored
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_points import PointInfo, newest
from replicator.target.stripe_set import missing

log = logging.getLogger(__name__)

MAX_AGE_ENV = "REPLICATOR_MAX_AGE"

STATUS_CONCURRENCY = 8
"""Targets read at once. Each holds two storage clients (and their connections) and makes about five
requests; eight keep a fleet of hundreds to a few seconds per hundred without opening a client per
target at once."""

STATUS_KNOBS = (*TARGET_KNOBS, "snapshot_search")
"""The knobs a status check reads, from the command line (`replicate status`) or the app settings
(the Functions status timer) alike: the target's, and where the source disk's snapshots are."""


def newest_point(points: Sequence[PointInfo]) -> Protected | None:
    """What status reports as protected: restore_points.newest (the restore point `latest` restores)."""
    p = newest(points)
    if p is None or p.snapshot_datetime is None:
        return None
    return Protected(p.id, p.snapshot_id, p.snapshot_name, p.snapshot_datetime)


async def _read_target(target: PageBlobTarget, facts: Facts) -> tuple[Facts, set[str]]:
    """The facts the target holds, and the uniqueIds of the source snapshots its restore points hold."""
    inspection = await target.inspect()
    if not inspection.exists:
        return facts, set()
    state = inspection.state
    points = [PointInfo.of(p, state) for p in await target.restore_points()]
    premium_blob = (await target.account_kind())[0].premium
    progress = state.in_progress
    run = None
    if progress is not None:
        run = RunState(
            progress.snapshot.id,
            progress.snapshot.name,
            progress.mode,
            progress.checkpoint,
            progress.total_bytes,
            running=inspection.leased,
            last_written=inspection.modified,
        )
    facts = replace(
        facts,
        vm_disk=any(_is_disk_restore_point(p.snapshot_id) for p in points),
        source=state.disk_id or facts.source,
        restore_points=sum(not p.foreign for p in points),
        newest=newest_point(points),
        lease_held=inspection.leased,
        run=run,
        last_drill=state.last_drill,
        missing_stripes=_missing_stripes(points, target),
        target_snapshots=SnapshotCount(len(points)) if premium_blob else None,
    )
    return facts, {p.snapshot_unique_id.casefold() for p in points if p.snapshot_unique_id}


def _missing_stripes(points: Sequence[PointInfo], target: PageBlobTarget) -> tuple[int, ...]:
    """The stripes whose snapshot the newest restore point names and the listing lacks (a source over
    8 TiB whose stripe snapshot was deleted by hand): it cannot be restored."""
    point = newest(points)
    return tuple(missing(point.stripe_snapshots, target.stripe_snapshots)) if point else ()


def _is_disk_restore_point(arm_id: str) -> bool:
    """`arm_id` names a disk restore point (a VM run's source point), not a snapshot of the disk."""
    try:
        return arm_ids.parse(arm_id).kind == "disk_restore_point"
    except (UserError, ValueError):
        return False


def group_facts(facts: Facts, groups: Sequence[Stored]) -> Facts:
    """The facts of a VM's prefix from its manifests (newest first): the newest complete group is
    what is protected; the incomplete groups newer than it are named."""
    incomplete: list[str] = []
    protected = None
    for stored in groups:
        group = stored.manifest
        if not group.complete:
            incomplete.append(f"{group.group_id} (missing {', '.join(group.missing)})")
            continue
        created = datetime.fromisoformat(group.restore_point_time)
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        protected = Protected(group.group_id, group.restore_point_id, group.restore_point_name, created)
        break
    vm = groups[0].manifest.vm_id if groups else None
    return replace(
        facts,
        source=vm or facts.source,
        restore_points=sum(s.manifest.complete for s in groups),
        newest=protected,
        groups=GroupFacts(vm, tuple(incomplete)),
    )


def _vm_source(source: str | None) -> bool:
    """The job names a virtual machine (or nothing: `status --target` alone may be a VM's prefix)."""
    if source is None:
        return True
    try:
        return arm_ids.parse(source).kind == "vm"
    except (UserError, ValueError):
        return False


async def _read_prefix(config: Config, facts: Facts, *, blob_url: bool) -> Facts | None:
    """The facts of `config.target` as a VM's prefix, or None when it is not one: it ends in .vhd, or
    it is a blob's URL (no blob there) with no group under it and the job's source is a disk."""
    try:
        prefix = parse_target_prefix(config.target, allow_http=config.allow_http)
    except UserError:
        return None
    async with GroupStore(config, prefix, command="status") as store:
        groups = await store.list()
    if not groups and blob_url and not _vm_source(facts.source):
        return None
    return group_facts(replace(facts, target=prefix.display), groups)


async def _read_source(source: ArmSource, facts: Facts, replicated: set[str], search: str) -> Facts:
    """The source disk's incremental snapshots (found where `search` says, as its runs find them):
    the newest, whether it is replicated, the counts."""
    assert facts.source is not None
    disk, snaps = await source.resolve(facts.source, search=search)
    if disk is not None and arm_ids.parse(facts.source).kind != "disk":  # a job naming one snapshot
        disk, snaps = await source.resolve(disk.id, search=search)
    if not snaps:
        return replace(
            facts, source_snapshots=Count(0, SNAPSHOTS_PER_DISK), active_grants=Count(0, FAMILY_SAS_LIMIT)
        )
    newest = snaps[-1]
    family = [s for s in snaps if s.family_id == newest.family_id]
    granted = sum(bool(s.disk_state and s.disk_state.startswith("ActiveSAS")) for s in family)
    return replace(
        facts,
        newest_snapshot=SourceSnapshot(newest.id, newest.name, newest.time_created),
        newest_replicated=newest.unique_id.casefold() in replicated,
        source_snapshots=Count(len(snaps), SNAPSHOTS_PER_DISK),
        active_grants=Count(granted, FAMILY_SAS_LIMIT),
    )


async def read(config: Config, source: ArmSource, job_source: str | None = None) -> Facts:
    """Everything `status` shows of `config.target`; never raises for a target it cannot read (the
    error's sentence goes into the facts, with whatever was read before it)."""
    try:
        facts = Facts(parse_target_url(config.target, allow_http=config.allow_http).display, job_source)
    except UserError:  # a container URL: only a VM's prefix
        facts = Facts(parse_target_prefix(config.target, allow_http=config.allow_http).display, job_source)
        blob_url = False
    else:
        blob_url = True
    try:
        if blob_url:
            async with PageBlobTarget(config, command="status") as target:
                facts, replicated = await _read_target(target, facts)
        if facts.lease_held is None and (vm := await _read_prefix(config, facts, blob_url=blob_url)):
            return vm  # no target blob: a VM's prefix, judged by its group manifests
        if not blob_url:
            return facts
        if facts.source and not facts.vm_disk:
            facts = await _read_source(source, facts, replicated, config.snapshot_search)
    except ReplicatorError as err:
        return replace(facts, error=str(err))
    except Exception as err:  # one target's surprise must not hide the fleet's other verdicts
        log.debug("reading %s failed", facts.target, exc_info=True)
        return replace(facts, error=f"could not read it: {describe(err)}.")
    return facts


def max_age(raw: str | None, env: Mapping[str, str]) -> float:
    """Seconds of --max-age, else of REPLICATOR_MAX_AGE; UserError (exit 2) when missing or malformed.

    Required, with no default: a default would judge every replica against an RPO nobody chose, and
    a probe that is green against the wrong RPO is the silent failure this command exists to end.
    """
    origin = "--max-age"
    if raw is None and env.get(MAX_AGE_ENV):
        raw, origin = env[MAX_AGE_ENV], f"{MAX_AGE_ENV} (environment variable)"
    if raw is None:
        raise UserError(
            f"--max-age is required (or set {MAX_AGE_ENV}): the oldest a replica may be and still count as "
            "fresh, e.g. 26h for a daily schedule."
        )
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise UserError(f"{origin}: {exc}.") from None


async def targets(config_target: str, env: Mapping[str, str], named: Sequence[str] = ()) -> list[JobSpec]:
    """The jobs to check: the targets `named` (several `--target`), else `config_target` alone, else
    every job of REPLICATOR_JOBS / REPLICATOR_DISCOVER; UserError when there is none (a probe that
    checks nothing must not pass)."""
    if named or config_target:
        return [JobSpec("", target) for target in (named or [config_target])]
    if not env.get(JOBS_ENV) and not env.get(DISCOVER_ENV):
        raise UserError(
            f"nothing to check: give --target (or REPLICATOR_TARGET), or set {JOBS_ENV} or {DISCOVER_ENV} "
            "for a fleet."
        )
    jobs = await load_jobs(env)
    if not jobs:
        raise UserError(f"nothing to check: {DISCOVER_ENV} found no disk carrying the target tag.")
    return jobs


async def survey(
    config: Config,
    jobs: Sequence[JobSpec],
    max_age_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Checked]:
    """Read and judge every job's target (in the jobs' order), at most STATUS_CONCURRENCY at a time.

    Every target URL is checked first (UserError, exit 2, before anything is read). `now` is taken
    once, after the last read: a lag is never understated by the time the reads took.
    """
    for job in jobs:
        try:
            parse_target_url(job.target, allow_http=config.allow_http)
        except UserError:  # a container URL is a VM's prefix
            parse_target_prefix(job.target, allow_http=config.allow_http)
    gate = asyncio.Semaphore(STATUS_CONCURRENCY)
    async with await ArmSource.open(config) as source:

        async def one(job: JobSpec) -> Facts:
            async with gate:
                return await read(replace(config, target=job.target), source, job.source or None)

        facts = await asyncio.gather(*(one(job) for job in jobs))
    now = clock()
    return [Checked(f, judge(f, now, max_age_seconds), now) for f in facts]


async def check(
    config: Config, max_age_seconds: float, env: Mapping[str, str], named: Sequence[str] = ()
) -> list[Checked]:
    """What `replicate status` and the Functions status timer run: judge every target (`targets`)."""
    return await survey(config, await targets(config.target, env, named), max_age_seconds)
