"""One replication run of a virtual machine: every disk from one VM restore point (a *group*), each
into its own base blob, several at once, the group recorded in a manifest beside them.

`replicate --source <VM ID> --target <container or folder URL>` (replicator.engine.run dispatches
here). The order, every step of it before any grant or write unless said:

1. Read the VM (unmanaged disks are bad input), its restore points (source.vm) and the group
   manifests under the prefix (target.groups); choose the groups (engine.vm_plan): the newest group
   when incomplete, then a new one.
2. `--snapshot-now`: check every disk's target first, then create a crash-consistent restore point
   and snapshot the disks Azure leaves out of it (engine.vm_restore_points). Source writes, not
   target ones.
3. Per group: each disk's source point (its disk restore point) is resolved, and each disk's target
   checked as a disk run checks it (engine.pipeline.check_points: another disk's blob, a rollback),
   all before the manifest is written and before any grant.
4. The disks run at once, at most `--disk-concurrency`, each exactly as a disk run
   (engine.pipeline.replicate_points: its own lease, grants, diff or full copy, checkpoints,
   restore point), with its own listener (Progress.for_disk). Each commit is recorded in the
   manifest (a conditional write: target.groups). A disk that fails does not stop the others: every
   disk that can commit does, so a rerun has less to do.
5. A group is complete when every disk committed; the run then goes on to the next group, and
   `--source-keep` trims the tool's old restore points. An incomplete group ends the run with the
   error of its disks (`group_error`: the exit code of a disk run; a failure outranks a limit), and
   the next run completes that group first.

Memory: `--disk-concurrency` disks at once, each holding what a disk run holds (its listing, its
queue); stream mode's chunk buffers are one `--max-in-flight` for the whole process (engine.inflight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from replicator.core import arm_ids, permissions
from replicator.core.consistency import DiskFacts, left_out
from replicator.core.errors import ReplicationError, ReplicatorError, UnprotectedError, status_of
from replicator.core.messages import describe
from replicator.core.output import plural
from replicator.core.progress import DiskRun, GroupRun, Progress, Protected, RunResult, VmRunResult
from replicator.engine import snapshots, vm_restore_points
from replicator.engine.base_choice import DiskIdentity
from replicator.engine.pipeline import TargetRun, check_points, replicate_points
from replicator.engine.time_budget import Budget
from replicator.engine.vm_plan import check_disk_names, choose_groups, disk_blob, new_manifest
from replicator.plumbing.urlcheck import TargetPrefix, parse_target_prefix
from replicator.settings.config import Config
from replicator.source import vm as vm_source
from replicator.source.arm import ArmSource, DiskInfo, SnapshotInfo
from replicator.source.reader import SasBlobReader
from replicator.source.vm import VmDisk, VmInfo, VmRestorePoint
from replicator.target.groups import GroupStore, Stored
from replicator.target.manifest import DiskEntry, GroupManifest
from replicator.target.page_blob import PageBlobTarget

log = logging.getLogger(__name__)


@dataclass
class _Group:
    """A group being worked on: its manifest and, for each disk still to commit, its source point."""

    manifest: GroupManifest
    points: dict[str, SnapshotInfo]  # by disk name
    written: bool  # its manifest is stored already
    result: GroupRun
    taken: list[str] = field(default_factory=list)


def group_error(group: GroupRun, failures: list[BaseException]) -> ReplicatorError:
    """The error that ends a run whose group is incomplete: one sentence naming each disk that did not
    commit and why, of the class (so the exit code and status) of a disk run's error: any failure
    (exit 1) outranks the rest; else the first disk's (locked, limited, incomplete)."""
    missing = [d for d in group.disks if not d.committed]
    said = "; ".join(f"{d.name}: {d.error}" for d in missing if d.error)
    message = (
        f"the group {group.group_id} is incomplete ({plural(len(missing), 'disk')} of {len(group.disks)} "
        f"not committed: {said}); a rerun completes it."
    )
    errors = [f for f in failures if isinstance(f, ReplicatorError)]
    failed = [f for f in errors if status_of(f) == "failed"] or errors
    if len(errors) < len(failures) or not failed:
        return ReplicationError(message)
    first = failed[0]
    chosen = type(first).__new__(type(first), message)
    chosen.__dict__.update(first.__dict__)  # what the class carries: retry_after_seconds, position
    chosen.args = (message,)
    return chosen


class _VmRun:
    """The run's shared parts and its steps (the module docstring's order)."""

    def __init__(
        self,
        config: Config,
        prefix: TargetPrefix,
        source: ArmSource,
        store: GroupStore,
        reader: SasBlobReader,
        progress: Progress,
        budget: Budget,
        run: VmRunResult,
    ) -> None:
        self.config, self.prefix, self.source, self.store = config, prefix, source, store
        self.reader, self.progress, self.budget, self.run = reader, progress, budget, run
        self.slots = asyncio.Semaphore(config.disk_concurrency)
        self.say: Callable[[str], None] = progress.on_message

    # --- the run ----------------------------------------------------------------------------

    async def replicate(self) -> None:
        config, run = self.config, self.run
        self.say(f"reading {config.source}")
        vm = await vm_source.read_vm(self.source, config.source)
        run.vm_name, run.vm_id = vm.name, vm.vm_id
        check_disk_names(vm)
        await self.store.check_account()
        stored = await self.store.list()
        self._report_protected(stored)
        collections = await vm_source.collections(self.source, vm, config.snapshot_search)
        points = vm_source.succeeded([p for c in collections for p in c.points])
        choice = choose_groups(stored, points, snapshot_now=config.snapshot_now)
        groups_run = 0
        if choice.resume is not None and (group := await self._resumed(choice.resume)) is not None:
            await self._run_group(group)
            groups_run += 1
        point, separate = choice.new, {}
        if choice.take and config.plan:
            self.say(f"--snapshot-now would create a crash-consistent restore point of {vm.name}")
            groups_run += 1
        elif choice.take:
            point, separate = await self._take(vm, collections)
        if point is not None:
            await self._run_group(await self._new(vm, point, separate))
            groups_run += 1
        if not groups_run and not stored:
            raise self._unprotected(vm)
        if config.source_keep and not config.plan:
            await self._keep(vm)
        statuses = {d.status for g in run.groups for d in g.disks}
        run.status = "planned" if config.plan else "replicated" if "replicated" in statuses else "nothing new"

    def _unprotected(self, vm: VmInfo) -> UnprotectedError:
        where = (
            f"resource group {arm_ids.parse(vm.id).resource_group}"
            if self.config.snapshot_search == "resource-group"
            else "the subscription"
        )
        elsewhere = (
            ", or pass --snapshot-search subscription if its restore point collections are in another "
            "resource group"
            if self.config.snapshot_search == "resource-group"
            else ""
        )
        return UnprotectedError(
            f"nothing protects the VM {vm.name}: it has no restore point in {where}; pass --snapshot-now "
            f"to create one, or create one yourself (az restore-point create){elsewhere}."
        )

    def _report_protected(self, stored: list[Stored]) -> None:
        """The newest complete group is what protects the VM: its instant dates the lag."""
        complete = next((s.manifest for s in stored if s.manifest.complete), None)
        if complete is None:
            return
        with contextlib.suppress(ValueError):
            point = Protected(
                complete.group_id,
                complete.restore_point_id,
                complete.restore_point_name,
                datetime.fromisoformat(complete.restore_point_time),
            )
            self.run.protected = point
            self.progress.on_protected(point)

    # --- the groups -------------------------------------------------------------------------

    async def _resumed(self, stored: Stored) -> _Group | None:
        """The incomplete group `stored`, to complete; None when a disk's source point is gone (it can
        never complete then: the run starts a new group)."""
        group = stored.manifest
        points = {}
        for entry in group.disks:
            if entry.committed:
                continue
            point = await self.source.get_snapshot(entry.source_point_id)
            if point is None:
                log.warning(
                    "the group %s cannot be completed: %s of %s no longer exists; a new group is made",
                    group.group_id,
                    entry.source_point_id,
                    entry.name,
                )
                return None
            points[entry.name] = point
        self.say(f"completing the group {group.group_id} ({', '.join(group.missing)} to commit)")
        return _Group(group, points, written=True, result=_group_run(group, stored.url, resumed=True))

    async def _take(
        self, vm: VmInfo, collections: list[vm_source.Collection]
    ) -> tuple[VmRestorePoint, dict[str, tuple[VmDisk, SnapshotInfo]]]:
        """--snapshot-now: every disk's target checked first; then a crash-consistent restore point
        without the disks Azure leaves out of it, and an incremental snapshot of each of those."""
        disks = await self._disk_infos(vm.disks)
        # bad input before anything is created: another disk's blob there
        for index, disk in enumerate(vm.disks, 1):
            identity = DiskIdentity(disk.disk_id, (info.unique_id if (info := disks[disk.name]) else None))
            async with self._target(disk.name, disk.disk_id, (index, len(vm.disks))) as each:
                await check_points(each, identity, [])
        outside = [d for d in vm.disks if left_out(_facts(d, disks[d.name]))]
        point = await vm_restore_points.take_restore_point(
            self.source,
            vm,
            collections,
            [d.disk_id for d in outside],
            self.say,
            target=self.prefix.display,
        )
        self.run.restore_point_taken = point.id
        if not point.disks:  # an answer without sourceMetadata: read it back
            point = await vm_source.read_restore_point(self.source, point.id, vm.name) or point
        separate = {}
        for disk in outside:
            snap = await snapshots.snapshot_now(
                self.source,
                disk.disk_id,
                self.say,
                target=self.prefix.blob(disk_blob(disk.name)).display,
                search=self.config.snapshot_search,
            )
            self.run.snapshots_taken.append(snap.id)
            separate[disk.name] = (disk, snap)
        return point, separate

    async def _new(
        self, vm: VmInfo, point: VmRestorePoint, separate: dict[str, tuple[VmDisk, SnapshotInfo]]
    ) -> _Group:
        """A new group of `point`: each disk's source point resolved, the consistency judged."""
        disks = await self._disk_infos(
            tuple(c.disk for c in point.disks) + tuple(d for d, _ in separate.values())
        )
        facts = {
            name: _facts(disk, disks[name], separate=name in separate)
            for name, disk in _named(point, separate)
        }
        group = new_manifest(vm, point, self.prefix, facts, separate)
        points = {}
        for entry in group.disks:
            found = separate[entry.name][1] if entry.name in separate else None
            found = found or await self.source.get_snapshot(entry.source_point_id)
            if found is None:
                raise ReplicationError(
                    f"{entry.source_point_id} of the restore point {point.name} was deleted during the run."
                )
            points[entry.name] = found
        if group.not_captured:
            names = ", ".join(name for name, _ in group.not_captured)
            log.warning(
                "the restore point %s does not hold %s of the VM %s: the group does not protect %s",
                point.name,
                plural(len(group.not_captured), "disk"),
                vm.name,
                names,
            )
        self.say(f"group {group.group_id}: restore point {point.name}, {group.consistency}")
        return _Group(group, points, written=False, result=_group_run(group, self.store.url(group.group_id)))

    async def _run_group(self, group: _Group) -> None:
        """Check every disk to commit, write the manifest, run the disks at once; raise when the group
        is left incomplete."""
        self.run.groups.append(group.result)
        entries = [e for e in group.manifest.disks if e.name in group.points]
        async with contextlib.AsyncExitStack() as stack:
            targets = {}
            every = group.manifest.disks
            place = {e.name: (index, len(every)) for index, e in enumerate(every, 1)}
            for entry in entries:  # every check before the manifest is written and before any grant
                each = await stack.enter_async_context(
                    self._target(entry.name, entry.disk_id, place[entry.name])
                )
                await check_points(
                    each, _identity(entry, group.points[entry.name]), [group.points[entry.name]]
                )
                targets[entry.name] = each
            if not group.written and not self.config.plan:
                stored = await self.store.create(group.manifest)
                group.written = True
                if stored.manifest != group.manifest:  # another run wrote it first: follow its record
                    log.info(
                        "the group %s was started by another run; completing it", group.manifest.group_id
                    )
            failures: list[BaseException] = []
            async with asyncio.TaskGroup() as tasks:
                for entry in entries:
                    disk = next(d for d in group.result.disks if d.name == entry.name)
                    tasks.create_task(self._disk(group, entry, targets[entry.name], disk, failures))
        if self.config.plan:
            return
        if not group.result.complete:
            raise group_error(group.result, failures)
        self.say(f"group {group.manifest.group_id} is complete ({plural(len(group.result.disks), 'disk')})")
        point = Protected(
            group.manifest.group_id,
            group.manifest.restore_point_id,
            group.manifest.restore_point_name,
            group.result.restore_point_time,
        )
        self.run.protected = point
        self.progress.on_protected(point)

    async def _disk(
        self, group: _Group, entry: DiskEntry, each: TargetRun, disk: DiskRun, failures: list[BaseException]
    ) -> None:
        """One disk, as a disk run; its commit recorded in the manifest. Never raises but a cancel."""
        point = group.points[entry.name]
        result = RunResult(entry.disk_id, each.target.url.display)
        disk.snapshots = result.snapshots
        async with self.slots:
            try:
                # The disk's SKU, zone and tags, which its disk restore point does not carry, go into
                # its restore point's record (source.disk_profiles) as a disk run's do.
                info = None if self.config.plan else await self._disk_info(entry.disk_id)
                identity = replace(_identity(entry, point), profile=info.profile if info else None)
                await replicate_points(each, identity, [point], result)
                disk.status = result.status
                if self.config.plan:
                    return
                restore_point = await _holding(each.target, point)
                await self.store.change(
                    group.manifest.group_id, lambda m: m.committed(entry.name, restore_point)
                )
                disk.restore_point = restore_point
            except ReplicatorError as err:
                disk.status, disk.error = status_of(err), str(err)
                failures.append(err)
            except Exception as err:  # one disk's surprise must not stop the others; reported as failed
                log.debug("unexpected failure of %s", entry.name, exc_info=True)
                disk.status, disk.error = "failed", f"unexpected {describe(err)}"
                failures.append(err)

    # --- --source-keep ----------------------------------------------------------------------

    async def _keep(self, vm: VmInfo) -> None:
        """Trim the tool's restore points (and the snapshots of disks left out of them) beyond the
        newest N, keeping whatever a disk's next diff or an unfinished group needs."""
        keep = self.config.source_keep or 0
        states = {}
        for index, disk in enumerate(vm.disks, 1):
            async with self._target(disk.name, disk.disk_id, (index, len(vm.disks))) as each:
                states[disk.name] = each.inspection.state
        needed = set()
        for state in states.values():
            refs = [state.last.id if state.last else None]
            if state.in_progress:
                refs += [state.in_progress.snapshot.id, state.in_progress.base_id]
            needed |= {vm_restore_points.restore_point_of(ref) for ref in refs if ref}
        for stored in await self.store.list():
            needed.add(stored.manifest.restore_point_id)
            if stored.manifest.complete:
                break  # the newest complete group and anything newer
        collections = await vm_source.collections(self.source, vm, self.config.snapshot_search)
        self.run.restore_points_deleted = await vm_restore_points.keep_restore_points(
            self.source, collections, keep, needed - {""}, self.say, target=self.prefix.display
        )
        disks = await self._disk_infos(vm.disks)
        for disk in vm.disks:
            if left_out(_facts(disk, disks[disk.name])):
                self.run.source_snapshots_deleted += await snapshots.keep_source(
                    self.source,
                    disk.disk_id,
                    keep,
                    states[disk.name],
                    self.say,
                    target=self.prefix.blob(disk_blob(disk.name)).display,
                    search=self.config.snapshot_search,
                )

    # --- helpers ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _target(self, name: str, disk_id: str, position: tuple[int, int]) -> AsyncIterator[TargetRun]:
        """A disk's base blob as a disk run sees it: its own Config (`source` the disk, `target` its
        blob with the prefix's SAS), inspected, with the disk's own listener (`position`: the disk's
        index, 1-based, and the count of the VM's disks, which its lines show)."""
        blob = self.prefix.blob(disk_blob(name))
        config = replace(
            self.config,
            source=disk_id,
            target=blob.display + (f"?{blob.sas}" if blob.sas else ""),
            snapshot_now=False,
            source_keep=None,
            latest_only=False,
        )
        command = "replicate --plan" if self.config.plan else "replicate"
        async with PageBlobTarget(config, command=command) as target:
            inspection = await target.inspect()
            listener = self.progress.for_disk(name, *position)
            yield TargetRun(config, target, inspection, self.source, self.reader, listener, self.budget)

    async def _disk_infos(self, disks: tuple[VmDisk, ...]) -> dict[str, DiskInfo | None]:
        """Each disk as ARM sees it now, by name; None for one deleted since a restore point held it."""
        return {disk.name: await self._disk_info(disk.disk_id) for disk in disks}

    async def _disk_info(self, disk_id: str) -> DiskInfo | None:
        try:
            return await self.source.get_disk(arm_ids.parse(disk_id))
        except ReplicatorError as err:
            if not isinstance(err.__cause__, ResourceNotFoundError):
                raise
            return None


def _named(
    point: VmRestorePoint, separate: dict[str, tuple[VmDisk, SnapshotInfo]]
) -> list[tuple[str, VmDisk]]:
    return [(c.disk.name, c.disk) for c in point.disks] + [
        (name, disk) for name, (disk, _) in separate.items()
    ]


def _facts(disk: VmDisk, info: DiskInfo | None, *, separate: bool = False) -> DiskFacts:
    return DiskFacts(
        disk.name,
        disk.role,
        info.sku if info else None,
        disk.caching,
        write_accelerator=disk.write_accelerator,
        shared=bool(info and (info.max_shares or 1) > 1),
        separate=separate,
    )


def _identity(entry: DiskEntry, point: SnapshotInfo) -> DiskIdentity:
    """The disk as its target records it: its ID and (from the source point) its uniqueId."""
    return DiskIdentity(entry.disk_id, point.source_unique_id)


async def _holding(target: PageBlobTarget, point: SnapshotInfo) -> str:
    """The target's restore point holding `point` (just committed, or by an earlier run)."""
    held = [p.id for p in await target.restore_points() if p.meta.snapshot_unique_id == point.unique_id]
    if not held:
        raise ReplicationError(
            f"{target.url.display} holds no restore point of {point.name} after the run; a rerun "
            "replicates it."
        )
    return held[-1]


def _group_run(group: GroupManifest, manifest_url: str, *, resumed: bool = False) -> GroupRun:
    return GroupRun(
        group_id=group.group_id,
        manifest=manifest_url,
        restore_point_id=group.restore_point_id,
        restore_point_time=datetime.fromisoformat(group.restore_point_time),
        consistency_mode=group.consistency_mode,
        consistency=group.consistency,
        consistency_reasons=group.consistency_reasons,
        resumed=resumed,
        disks=[
            DiskRun(
                d.name,
                d.role,
                d.lun,
                d.disk_id,
                d.blob_url,
                d.source_point_id,
                status="committed earlier" if d.committed else "pending",
                restore_point=d.restore_point,
            )
            for d in group.disks
        ],
        not_captured=tuple(name for name, _ in group.not_captured),
    )


async def replicate_vm(
    config: Config,
    progress: Progress | None = None,
    budget: Budget | None = None,
    run: VmRunResult | None = None,
) -> VmRunResult:
    """Replicate the VM `config.source` into the prefix `config.target` (or, with `config.plan`, only
    say what it would do); `run`, when given, is filled in as the run goes, so a caller has the
    document of a run that ends with an error too."""
    progress = progress or Progress()
    budget = budget or Budget(config.time_budget_seconds)
    prefix = parse_target_prefix(config.target, allow_http=config.allow_http)
    command = "replicate --plan (VM)" if config.plan else "replicate (VM)"
    permissions.check_sas(config.target, command)
    run = run or VmRunResult(config.source, prefix.display)
    source = await ArmSource.open(config)
    async with (
        source,
        GroupStore(config, prefix, command=command) as store,
        contextlib.aclosing(SasBlobReader(source.disk_auth)) as reader,
    ):
        await _VmRun(config, prefix, source, store, reader, progress, budget, run).replicate()
    return run
