"""One job (one source snapshot) into the leased target: grants, plan, copy with checkpoints, verify, commit.

`JobRunner` streams the listing through the pure `ranges.StreamPlanner`, runs the plan through the
copier's workers (engine.copier) while a checkpoint task saves `Watermark.low()` every few seconds,
then (with --verify) compares the target with the source and takes the restore point. The run
around it (inspect, lease, base choice, one job after another) is engine.pipeline. --plan uses the
same runner without writes (`plan_only`).

Data flow of one job:

    list_changes (windows x NextMarker pages, streamed) → ranges.StreamPlanner (the ops of ranges.plan
    over the whole listing: coalesced, ≤ 4 MiB chunks, offset order) → bounded asyncio.Queue
    (2 ops per worker) → N workers (the ceiling per stripe blob written: core.stripes.copy_workers)
    in an asyncio.TaskGroup (a permanent error cancels the others),
    their requests at the service paced per target blob (engine.pacer)
    → Watermark.low() saved as the checkpoint every few seconds → blob snapshot (the restore point)
    → state advanced in the base blob's metadata.

Memory is bounded for any disk size: the plan is never materialised; what is held is the queue,
the ops in flight (the Watermark) and, in stream mode, one ≤ 4 MiB buffer per worker. A full copy
writes every valid range and clears everything else (ranges.fill_gaps), unless the target is blank
under the lease (PageBlobTarget.is_blank).

Resume: before the first write the base blob's metadata records the job (snapshot, base, mode) and
then its checkpoint. A rerun with the same job re-plans identically (but for a gap merged across the
window start: docs/architecture.md, Resume) and skips ops that end at or below the checkpoint;
writes are idempotent (same bytes, same offsets), so the result is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TypeVar

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient

from replicator.core import premium, ranges, stripes
from replicator.core.errors import ReplicationError, ReplicatorError
from replicator.core.listwindows import LARGEST_WINDOW
from replicator.core.messages import describe, error_code
from replicator.core.progress import (
    Progress,
    Protected,
    SnapshotResult,
)
from replicator.engine import verify
from replicator.engine.account_gate import account_gate
from replicator.engine.base_choice import (
    DiskIdentity,
    Job,
    exported_size,
    snapshot_ref,
)
from replicator.engine.copier import Copier, run_pool
from replicator.engine.pacer import StripePacers
from replicator.engine.time_budget import Budget
from replicator.observe.jsonlog import event
from replicator.plumbing import http_pool
from replicator.plumbing.credentials import client_kwargs
from replicator.settings.config import Config
from replicator.source.arm import WAIT_TIMEOUT_SECONDS, ArmSource, SnapshotInfo
from replicator.source.disk_profiles import recorded
from replicator.source.grants import Grant, read_grant, read_grants
from replicator.source.listing import DiffNotPossible, list_changes, snapshot_blob_size
from replicator.source.reader import SasBlobReader
from replicator.target.page_blob import PageBlobTarget
from replicator.target.state import InProgress, RestorePointMeta, State

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PlanInput:
    """What a job's plan is listed from: the job (its base and checkpoint), the current snapshot's grant,
    the base's (None: a full copy, also after a refused diff), the exported size, and whether the
    target is known to be blank (a full copy then needs no clears). One value, because the copy, the
    count ahead, `--plan` and `--verify` each list the same plan."""

    job: Job
    current: Grant
    base: Grant | None
    size: int
    blank_target: bool


class JobRunner:
    """Replicates one job into the (leased) target; also used without writes for --plan."""

    def __init__(
        self,
        config: Config,
        source: ArmSource,
        target: PageBlobTarget,
        reader: SasBlobReader,
        progress: Progress,
        budget: Budget | None = None,
        ceiling: int = premium.STANDARD_CEILING,
    ) -> None:
        self.config, self.source, self.target, self.reader, self.progress = (
            config,
            source,
            target,
            reader,
            progress,
        )
        self.budget = budget or Budget(None)
        self.ceiling = ceiling  # each blob's pacer ceiling and its copy workers: core.premium.ceiling_for
        self.pacer: StripePacers | None = None  # the target blobs', made by the first job that writes

    def _pacer(self) -> StripePacers:
        """The target blobs' pacers (one per stripe), one set per run: what they learnt of each blob
        carries over to the next job."""
        if self.pacer is None:
            account = account_gate(self.config, self.target.url.account_url)
            self.pacer = StripePacers(self.ceiling, self.target.url.display, account=account)
        return self.pacer

    @contextlib.asynccontextmanager
    async def grants(self, job: Job) -> AsyncIterator[tuple[Grant, Grant | None]]:
        """SAS for the current snapshot and, for a diff, the base; revoked on every way out."""
        if job.base is None:
            async with read_grant(self.source, job.snapshot) as current:
                yield current, None
        else:  # both family slots at once: taking them one by one can deadlock (grants.family_sas_slots)
            async with read_grants(self.source, job.snapshot, job.base) as (current, base):
                yield current, base

    async def planned_ops(
        self, plan: PlanInput, result: SnapshotResult, stripe: stripes.Stripe | None = None
    ) -> AsyncIterator[ranges.Op]:
        """The job's plan from the listing window holding its checkpoint on, streamed in offset order;
        with `stripe`, only that stripe's part of it (listed and planned within the stripe's bounds).

        The listing's batches go through the pure `ranges.StreamPlanner`, so the ops are exactly
        those of `ranges.plan` over the whole listing; this adapter only feeds it and adds the bytes
        each batch lists as changed to `result`. A full copy (no `base`) fills every gap with a clear,
        unless the target is known to be blank (checked under the lease: PageBlobTarget.is_blank).
        """
        # Gap merging only for a diff: its gaps are unchanged since the base the target holds. A full
        # copy's gaps are holes of the source, which the target may hold data in (see ranges.coalesce).
        merge_gap = self.config.merge_gap_bytes if plan.base is not None else 0
        window = self.config.list_window_bytes
        start, end = ranges.window_start(plan.job.checkpoint, window), plan.size
        if stripe is not None:
            start, end = max(start, stripe.start), stripe.end
        listing = list_changes(
            plan.current,
            plan.base,
            start=start,
            end=end,
            window=LARGEST_WINDOW,  # windows adapt below it (core.listwindows); `window` is the resume grid
            page_size=self.config.page_size,
        )
        planner = ranges.StreamPlanner(
            start, end, merge_gap=merge_gap, fill=plan.base is None and not plan.blank_target
        )
        async for batch in _batches(listing, PLAN_BATCH):
            listed, ops = planner.feed(batch)
            # What the service listed as changed; the planned copies exceed it by the merged gaps.
            result.changed_bytes += listed
            result.merged_gap_bytes -= listed
            for op in ops:
                yield op
        for op in planner.finish():
            yield op

    async def _complete(self, snap: SnapshotInfo) -> SnapshotInfo:
        """Premium SSD v2 / Ultra snapshots are readable only once their background copy is 100 %."""
        if snap.completion_percent is None or snap.completion_percent >= 100:
            return snap
        self.progress.on_message(f"waiting for {snap.name} to complete ({snap.completion_percent:.0f} %)")
        return await self.source.wait_complete(
            snap,
            lambda s: self.progress.on_message(f"{s.name}: {s.completion_percent or 100:.0f} % complete"),
            timeout_seconds=self.budget.cap(WAIT_TIMEOUT_SECONDS),
        )

    async def plan_only(self, job: Job, index: int, total: int, target_exists: bool) -> SnapshotResult:
        """--plan: grant what listing needs, count the plan, write nothing; the grants are revoked on exit."""
        result = _result(job)
        self.progress.on_snapshot_start(result, index, total)
        started = time.monotonic()
        job = replace(job, snapshot=await self._complete(job.snapshot))
        async with self.grants(job) as (current, base):
            size = await snapshot_blob_size(current)
            try:
                await self._count(PlanInput(job, current, base, size, blank_target=not target_exists), result)
            except DiffNotPossible as refusal:
                job = _refused(job, result, refusal)
                await self._count(PlanInput(job, current, None, size, blank_target=not target_exists), result)
        result.seconds = round(time.monotonic() - started, 3)
        self.progress.on_snapshot_done(result)
        return result

    async def _count(self, plan: PlanInput, result: SnapshotResult) -> None:
        result.changed_bytes = result.merged_gap_bytes = result.cleared_bytes = result.requests = 0
        async for op in self.planned_ops(plan, result):
            _count_op(result, op)
            result.requests += 1
            if op.range.end > plan.job.checkpoint:
                self.progress.on_planned(*_op_bytes(op))
        self.progress.on_listing_done()

    async def run(
        self, job: Job, state: State, identity: DiskIdentity | None, index: int, total: int, *, blank: bool
    ) -> tuple[SnapshotResult, State]:
        """Replicate `job` into the leased target, commit its restore point, return the advanced state.

        `blank`: the target holds nothing, as checked under the lease (a full copy then writes no clears).
        """
        result = _result(job)
        self.progress.on_snapshot_start(result, index, total)
        started = time.monotonic()
        job = replace(job, snapshot=await self._complete(job.snapshot))
        async with self.grants(job) as (current, base):
            pacer = self._pacer()
            result.pacing = pacer.begin_job()
            result.account_budget = pacer.budget
            copier = Copier(self.config, self.target, current, self.reader, self.progress, pacer)
            size = await snapshot_blob_size(current)
            if size != self.target_size:  # a striped target's base blob shows stripe 0's size only:
                # resize (StripeSet.fit) then creates, sizes and leases the stripes, once per run
                if await self.target.resize(size):
                    self.progress.on_message(f"resized the target from {self.target_size} to {size} bytes")
                self.target_size = size
            blank = blank and not self.target.stripes.adopted  # a stripe that was there holds unknown bytes
            if identity is not None:  # recorded with the first in-progress state: the target is
                # this disk's from its first write on, so no other disk can take over an unfinished copy
                state = replace(state, disk_id=identity.id, disk_unique_id=identity.unique_id)
            try:
                try:
                    await self._write(
                        PlanInput(job, current, base, size, blank_target=blank), state, copier, result
                    )
                except DiffNotPossible as refusal:
                    job = _refused(job, result, refusal)
                    base = None
                    await self._write(
                        PlanInput(job, current, None, size, blank_target=False), state, copier, result
                    )
            finally:  # also when the copy stops early: its envelope says what the run cost so far
                result.requests, result.retries = copier.requests, copier.retries
                result.seconds = round(time.monotonic() - started, 3)
            if self.config.verify:  # before the commit: a failed check leaves no restore point
                await self._verify(PlanInput(job, current, base, size, blank_target=False))
                result.verified = True
            auth_mode = current.disk_auth.auth_mode(job.snapshot)
            restore_point = await self.target.commit(
                _restore_point_meta(job, identity, size, result.reason, auth_mode)
            )
            result.restore_point = restore_point
            self.progress.on_protected(
                Protected(restore_point, job.snapshot.id, job.snapshot.name, job.snapshot.time_created)
            )
            state = replace(  # what else the state holds (the last drill) is kept
                state,
                disk_id=identity.id if identity else None,
                disk_unique_id=identity.unique_id if identity else None,
                last=snapshot_ref(job.snapshot),
                last_restore_point=restore_point,
                in_progress=None,
            )
            await self.target.write_state(state)
        result.seconds = round(time.monotonic() - started, 3)
        self.progress.on_snapshot_done(result)
        return result, state

    async def _write(self, plan: PlanInput, state: State, copier: Copier, result: SnapshotResult) -> None:
        """Record the job as in progress, then run its plan through the workers with checkpoints."""
        job = plan.job
        in_progress = InProgress(
            snapshot_ref(job.snapshot),
            job.base.id if job.base else None,
            job.mode,
            job.reason,
            job.checkpoint,
            job.base.unique_id if job.base else None,
            total_bytes=plan.size,
        )
        await self.target.write_state(replace(state, in_progress=in_progress))
        window = self.config.list_window_bytes
        # One plan stream per stripe left to write (one for a source of one blob), interleaved, so
        # every stripe blob the change touches is written at once, each at its own limits.
        todo = [s for s in stripes.layout(plan.size) if s.end > job.checkpoint]
        marks = [ranges.Watermark(max(s.start, ranges.window_start(job.checkpoint, window))) for s in todo]
        listed = [False] * len(todo)  # the stream of todo[i] was planned to its end
        workers = stripes.copy_workers(self.ceiling, todo, http_pool.CONNECTIONS)
        result.changed_bytes = result.merged_gap_bytes = result.cleared_bytes = result.copied_bytes = 0
        stopped = False  # the time budget ran out before the plan did

        def low() -> int:
            """The checkpoint: every byte below it is written (stripes.resume_point)."""
            return max(
                job.checkpoint,
                stripes.resume_point(
                    [(m.low(), done and not m.in_flight) for m, done in zip(marks, listed, strict=True)],
                    plan.size,
                ),
            )

        async def issue() -> AsyncIterator[ranges.Op]:
            nonlocal stopped
            streams = [self.planned_ops(plan, result, s if len(todo) > 1 else None) for s in todo]
            async for i, op in _round_robin(streams, listed):
                _count_op(result, op)
                if op.range.end <= job.checkpoint:
                    self.progress.on_skipped(op.range.length)
                    continue
                if self.budget.expired():  # stop feeding; what is in flight drains
                    stopped = True
                    return
                self.progress.on_planned(*_op_bytes(op))
                marks[i].issued(op.range)
                yield op
            counter.cancel()  # the listing itself is done: its total is final
            self.progress.on_listing_done()

        async def work(op: ranges.Op) -> None:
            await copier.execute(op)
            if op.kind == "copy":
                result.copied_bytes += op.range.length
            marks[next(i for i, s in enumerate(todo) if s.start <= op.range.start < s.end)].done(op.range)

        async def checkpoints() -> None:
            saved = job.checkpoint
            while True:
                await asyncio.sleep(self.config.checkpoint_seconds)
                checkpoint = low()
                if checkpoint > saved:
                    try:
                        await self.target.write_state(
                            replace(state, in_progress=replace(in_progress, checkpoint=checkpoint))
                        )
                        saved = checkpoint
                    except HttpResponseError as exc:
                        log.warning("could not save the checkpoint: %s", describe(exc))

        checkpointer = asyncio.create_task(checkpoints(), name="checkpointer")

        async def count_later() -> None:
            # Only a listing still running after one progress period is counted ahead: the first
            # record comes then anyway, and a short run pays nothing for it (idle 8 TiB benchmark,
            # 20 ms: 1.50 s and 78 requests with an immediate count, 1.19 s and 46 with this delay).
            await asyncio.sleep(self.config.progress_seconds)
            await self.count_total(plan)

        counter = asyncio.create_task(count_later(), name="plan-count")
        hard_stop = self.budget.hard_stop()
        try:
            async with hard_stop:
                # two planned ops per worker wait in the queue: every worker stays busy while the lister pages
                await run_pool(issue(), workers, 2 * workers, work)
        except ReplicatorError:
            raise
        except Exception as exc:
            if not hard_stop.expired():
                raise _failure(job, exc) from exc
            stopped = True
        finally:
            for task in (checkpointer, counter):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if stopped:
            checkpoint = low()
            await self.target.write_state(
                replace(state, in_progress=replace(in_progress, checkpoint=checkpoint))
            )
            raise self.budget.incomplete(f"at offset {checkpoint} of {job.snapshot.name}")

    async def count_total(self, plan: PlanInput) -> None:
        """Count the plan's bytes to copy with a second listing, ahead of the copy, for progress.

        Why: the plan is streamed, so the listing that feeds the copy runs only the copy queue ahead
        of the writes and its total is final only near the end of the snapshot; a progress record
        needs the whole total (and so an ETA). The cost is a second listing: one Get Page Ranges call
        per 10,000 ranges, next to at least one write per 4 MiB copied, and LIST_PREFETCH answers of
        memory; it starts only when the copy's own listing has run for one progress period (`_write`)
        and stops as soon as that listing ends. A count that fails changes nothing: the copy's
        listing is the plan, and progress shows the total listed so far.
        """
        job = plan.job
        copy_bytes = 0
        ops = self.planned_ops(plan, _result(job))
        try:
            async for op in ops:
                if op.kind == "copy" and op.range.end > job.checkpoint:
                    copy_bytes += op.range.length
        except Exception as exc:
            event(
                "total_unknown",
                logging.DEBUG,
                message=f"could not count the plan of {job.snapshot.name} ahead ({describe(exc)}); "
                "progress shows the total listed so far",
                snapshot=job.snapshot.id,
                error=describe(exc),
            )
            return
        self.progress.on_total(copy_bytes)

    async def _verify(self, plan: PlanInput) -> None:
        """--verify: the target base blob must read back equal to the source snapshot, before the commit.

        A full copy compares the whole blobs (verify.compare_blobs: sizes, then the union of both
        sides' valid ranges). A diff compares every range its plan copied or cleared; the rest is the
        base, which was verified when it was written. Memory: PLAN_BATCH ranges plus
        verify.compare_regions' chunks in flight (VERIFY_CONCURRENCY x 2 x 4 MiB), whatever the disk.
        A mismatch fails the run with its offset: no restore point, the state is not advanced. The
        target's reads are paced as its writes (the blob's pacer, the account's budget), but for a
        striped target's.
        """
        job = plan.job
        self.progress.on_message(f"verifying the target against {job.snapshot.name}")
        whole = replace(plan, job=replace(job, checkpoint=0), blank_target=False)
        current = plan.current
        url = await current.url()
        async with current.disk_auth.client(url, current.snapshot, **client_kwargs()) as source:
            striped = self.target.stripes.count > 1  # a source over 8 TiB: its stripe blobs
            actual: BlobClient | verify.Route = self.target.route if striped else self.target.client
            # a striped copy's reads are not paced (one read may span two stripes, two pacers)
            slot = contextlib.nullcontext if striped else self._pacer().base.slot
            if plan.base is None:
                comparison = (
                    await verify.compare_striped(
                        source, self.target.stripe_clients(plan.size), self.target.route
                    )
                    if striped
                    else await verify.compare_blobs(source, self.target.client, slot=slot)
                )
                if comparison.expected_size != comparison.actual_size:
                    raise ReplicationError(
                        f"verification failed: the target holds {comparison.actual_size} bytes, "
                        f"{job.snapshot.name} {comparison.expected_size}; no restore point was taken."
                    )
                mismatch = comparison.first_mismatch
            else:
                mismatch = None
                ops = self.planned_ops(whole, _result(whole.job))
                async for batch in _batches(ops, PLAN_BATCH):
                    regions = [op.range for op in batch]
                    _, mismatch = await verify.compare_regions(source, actual, regions, slot=slot)
                    if mismatch is not None:
                        break
        if mismatch is not None:
            raise ReplicationError(
                f"verification failed: the target differs from {job.snapshot.name} at offset {mismatch}; "
                "no restore point was taken. A rerun copies it again."
            )


PLAN_BATCH = 1000
"""Changes planned at a time; bounds the memory between the listing and the planner."""


async def _round_robin(streams: list[AsyncIterator[T]], ended: list[bool]) -> AsyncIterator[tuple[int, T]]:
    """One item of each stream in turn, with its stream's index; `ended[i]` turns True when stream i
    is exhausted. One stream is passed through as it is."""
    live = list(range(len(streams)))
    while live:
        for i in list(live):
            try:
                item = await anext(streams[i])
            except StopAsyncIteration:
                ended[i] = True
                live.remove(i)
                continue
            yield i, item


async def _batches(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _op_bytes(op: ranges.Op) -> tuple[int, int]:
    return (op.range.length, 0) if op.kind == "copy" else (0, op.range.length)


def _count_op(result: SnapshotResult, op: ranges.Op) -> None:
    copy, clear = _op_bytes(op)
    result.merged_gap_bytes += copy  # planned copies; planned_ops subtracts what was listed as changed
    result.cleared_bytes += clear


def _result(job: Job) -> SnapshotResult:
    return SnapshotResult(
        job.snapshot.id,
        job.snapshot.name,
        job.mode,
        job.reason,
        base_snapshot_id=job.base.id if job.base else None,
        size_bytes=exported_size(job.snapshot),
        resumed_from=job.checkpoint,
    )


def _refused(job: Job, result: SnapshotResult, refusal: DiffNotPossible) -> Job:
    """The service refused the diff (a resize across 4 TiB, the diff of a protected snapshot refused
    to the disk token, any refusal between disk restore points):
    fall back to a full copy from offset 0, saying why."""
    reason = f"the service refused the diff from {job.base.name if job.base else 'the base'} ({refusal.why})"
    log.info("%s; copying in full", reason)
    result.mode, result.reason, result.base_snapshot_id, result.resumed_from = "full", reason, None, 0
    return Job(job.snapshot, None, reason)


def _failure(job: Job, exc: BaseException) -> ReplicationError:
    detail = describe(exc)
    if isinstance(exc, HttpResponseError) and error_code(exc).startswith("Lease"):
        return ReplicationError(
            f"replicating {job.snapshot.name} stopped: the target's lease was broken or taken by someone "
            f"else ({detail}); nothing more was written. A rerun resumes from the checkpoint."
        )
    return ReplicationError(
        f"replicating {job.snapshot.name} failed: {detail}; a rerun resumes from the checkpoint."
    )


def _restore_point_meta(
    job: Job, identity: DiskIdentity | None, size: int, reason: str, auth_mode: str
) -> RestorePointMeta:
    snap = job.snapshot
    return RestorePointMeta(
        source_disk_id=identity.id if identity else "",
        source_disk_unique_id=(identity.unique_id or "") if identity else "",
        snapshot_id=snap.id,
        snapshot_unique_id=snap.unique_id,
        snapshot_time=snap.time_created.isoformat(),
        snapshot_name=snap.name,
        size_bytes=size,
        logical_sector_size=snap.logical_sector_size,
        mode=job.mode,
        reason=reason,
        base_snapshot_id=job.base.id if job.base else "",
        data_access_auth_mode=auth_mode,
        profile=recorded(identity.profile if identity else None, snap.profile),
    )
