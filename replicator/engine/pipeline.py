"""One replication run: resolve → choose base → grant → lease → list → plan → queue → workers → commit.

The pipeline owns concurrency and nothing else: range arithmetic is replicator.core.ranges, the source
(ARM, SAS grants, diff listing) is replicator.source.arm, the target page blob is replicator.target.page_blob.

Data flow of one snapshot (a "job"):

    list_changes (windows x NextMarker pages, streamed) → ranges.StreamPlanner (the ops of ranges.plan
    over the whole listing: coalesced, ≤ 4 MiB chunks, offset order) → bounded asyncio.Queue
    (2 x concurrency ops) → N workers in an asyncio.TaskGroup (a permanent error cancels the others)
    → Watermark.low() saved as the checkpoint every few seconds → blob snapshot (the restore point)
    → state advanced in the base blob's metadata.

Memory is bounded for any disk size: the plan is never materialised; what is held is the queue,
the ops in flight (the Watermark) and, in stream mode, one ≤ 4 MiB buffer per worker.

Who retries what:
- Chunk writes and source reads (Put Page From URL, Put Page, clear, ranged GET): this module, with
  plumbing.retry (tenacity): exponential backoff with full jitter, at least the Retry-After the service
  asked for, on its transient failures (408/429/500/502/503/504, timeouts, connection resets), up to
  `Config.max_attempts` attempts. A
  403 on the source SAS invalidates the grant and retries with a fresh URL. The SDK's own retry is
  switched off for these calls (`retry_total=0`), so retries never stack.
- Control calls on the target (properties, metadata, lease, resize, snapshot): the SDK's storage
  retry policy (recovery.storage_retry: 3 retries).
- ARM calls, SAS grants and the diff listing: replicator.source.arm (the SDK's ARM retry policy; the
  per-family SAS budget with its own wait).

Base choice (why a run is full or diff) is engine.base_choice; a resize across 4 TiB that sizes did not
show is found here, from the service's refusal (source.DiffNotPossible). A full copy writes every
valid range and clears everything else (ranges.fill_gaps), unless the target is blank under the
lease (PageBlobTarget.is_blank).

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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient

from replicator.core import ranges
from replicator.core.errors import ReplicationError, ReplicatorError
from replicator.core.messages import describe, error_code
from replicator.core.weighted import WeightedSemaphore
from replicator.engine import verify
from replicator.engine.base_choice import (
    DiskIdentity,
    Job,
    check_source,
    choose_jobs,
    disk_identity,
    exported_size,
    snapshot_ref,
    unprotected,
)
from replicator.engine.inflight import process_in_flight_bytes
from replicator.engine.progress import (
    Progress,
    Protected,
    RunResult,
    SnapshotResult,
)
from replicator.engine.time_budget import Budget
from replicator.observe.jsonlog import event
from replicator.plumbing import retry
from replicator.settings.config import Config
from replicator.source import snapshots
from replicator.source.arm import (
    WAIT_TIMEOUT_SECONDS,
    ArmSource,
    DiffNotPossible,
    Grant,
    SnapshotInfo,
    list_changes,
    snapshot_blob_size,
)
from replicator.target.page_blob import (
    InProgress,
    PageBlobTarget,
    RestorePoint,
    RestorePointMeta,
    SasBlobReader,
    State,
    client_kwargs,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_BACKOFF_SECONDS = 0.5
"""Bound of the first wait after a failed chunk write or source read; doubles per failure in a row."""
CHUNK_BACKOFF_MAX_SECONDS = 30.0
"""Upper bound of one wait (retry.backoff); a Retry-After may ask for longer (up to its own cap)."""


class SourceAccessDenied(Exception):
    """The source SAS was refused (expired or revoked): re-grant and retry."""


def _retried(exc: BaseException) -> bool:
    """What a chunk is tried again after: a transient failure, or a refused source SAS (re-granted)."""
    return isinstance(exc, SourceAccessDenied) or retry.is_transient(exc)


def _copy_source_denied(exc: HttpResponseError) -> bool:
    """Put Page From URL: the target service could not read the source SAS (not a refusal of our
    own credential on the target, which is a 403 of another code)."""
    return error_code(exc) == "CannotVerifyCopySource" and exc.status_code in (401, 403)


class Throttle:
    """--max-bandwidth: a virtual-clock limiter shared by all workers (bytes per second)."""

    def __init__(self, rate: int | None) -> None:
        self._rate = rate
        self._next = time.monotonic()

    async def take(self, nbytes: int) -> None:
        if not self._rate:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + nbytes / self._rate
        if start > now:
            await asyncio.sleep(start - now)


# ---------------------------------------------------------------- running one job


class Copier:
    """Executes ops against the target with retries; counts requests and retries for the summary."""

    def __init__(
        self, config: Config, target: PageBlobTarget, grant: Grant, reader: SasBlobReader, progress: Progress
    ) -> None:
        self.config, self.target, self.grant, self.reader, self.progress = (
            config,
            target,
            grant,
            reader,
            progress,
        )
        self.throttle = Throttle(config.max_bandwidth)
        self.in_flight = (
            WeightedSemaphore(config.max_in_flight_bytes)
            if config.mode == "server"
            else process_in_flight_bytes(config.max_in_flight_bytes)  # buffers: one memory bound per process
        )
        self.requests = 0
        self.retries = 0

    async def retried(self, what: str, call: Callable[[str], Awaitable[T]]) -> T:
        """Run `call(source_sas_url)` under the chunk retry policy; a denied SAS is re-granted first."""
        policy = retry.retrying(
            first=CHUNK_BACKOFF_SECONDS,
            cap=CHUNK_BACKOFF_MAX_SECONDS,
            attempts=self.config.max_attempts,
            retry_on=_retried,
            on_retry=self._on_retry(what),
        )
        async for attempt in policy:
            with attempt:
                url = await self.grant.url()
                self.requests += 1
                try:
                    async with asyncio.timeout(self.config.request_timeout_seconds):
                        return await call(url)
                except SourceAccessDenied:
                    self.grant.invalidate(url)
                    raise
                except HttpResponseError as exc:
                    if _copy_source_denied(exc):
                        self.grant.invalidate(url)
                        raise SourceAccessDenied(describe(exc)) from exc
                    raise
        raise AssertionError("unreachable: tenacity reraises")

    def _on_retry(self, what: str) -> retry.OnRetry:
        def report(attempt: int, delay: float, exc: BaseException) -> None:
            self.retries += 1
            error = describe(exc)
            event(
                "retry",
                logging.DEBUG,
                message=f"retrying {what} (attempt {attempt}) in {delay:.1f} s after {error}",
                what=what,
                attempt=attempt,
                delay_seconds=round(delay, 3),
                error=error,
            )
            self.progress.on_retry(what, attempt, delay, error)

        return report

    async def execute(self, op: ranges.Op) -> None:
        what = f"{op.kind} {op.range}"
        if op.kind == "clear":
            await self.retried(what, lambda _url: self.target.clear(op))
            return
        await self.throttle.take(op.range.length)

        async def stream_copy(url: str) -> None:
            try:
                data, md5 = await self.reader.read(url, op.range)
            except HttpResponseError as exc:  # only the source read's 403 is the SAS: re-grant
                if exc.status_code == 403:
                    raise SourceAccessDenied(describe(exc)) from exc
                raise
            await self.target.put_pages(op, data, md5)  # a 403 here is the target's credential: permanent

        async with self.in_flight.hold(op.range.length):
            if self.config.mode == "server":
                await self.retried(what, lambda url: self.target.copy_from_url(op, url))
            else:
                await self.retried(what, stream_copy)
        self.progress.on_written(op.range.length)


async def run_pool(
    ops: AsyncIterator[ranges.Op], workers: int, depth: int, work: Callable[[ranges.Op], Awaitable[None]]
) -> None:
    """Feed `ops` through a bounded queue to `workers` tasks; the first permanent error cancels the rest."""
    queue: asyncio.Queue[ranges.Op | None] = asyncio.Queue(maxsize=depth)

    async def worker() -> None:
        while (op := await queue.get()) is not None:
            await work(op)

    try:
        async with asyncio.TaskGroup() as group:
            for i in range(workers):
                group.create_task(worker(), name=f"worker-{i}")
            async for op in ops:
                await queue.put(op)
            for _ in range(workers):
                await queue.put(None)
    except BaseExceptionGroup as group:
        raise _primary(group) from None


def _primary(group: BaseExceptionGroup) -> BaseException:
    """The error to report from a failed pool: a deliberate ReplicatorError first, else the first failure."""
    leaves: list[BaseException] = []

    def flatten(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                flatten(inner)
        else:
            leaves.append(exc)

    flatten(group)
    return next((e for e in leaves if isinstance(e, ReplicatorError)), leaves[0])


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
    ) -> None:
        self.config, self.source, self.target, self.reader, self.progress = (
            config,
            source,
            target,
            reader,
            progress,
        )
        self.budget = budget or Budget(None)

    @contextlib.asynccontextmanager
    async def grants(self, job: Job) -> AsyncIterator[tuple[Grant, Grant | None]]:
        """SAS for the current snapshot and, for a diff, the base; revoked on every way out."""
        if job.base is None:
            async with self.source.grant(job.snapshot) as current:
                yield current, None
        else:  # both family slots at once: taking them one by one can deadlock (source.family_sas_slots)
            async with self.source.grants(job.snapshot, job.base) as (current, base):
                yield current, base

    async def planned_ops(
        self,
        job: Job,
        current: Grant,
        base: Grant | None,
        size: int,
        result: SnapshotResult,
        *,
        blank_target: bool,
    ) -> AsyncIterator[ranges.Op]:
        """The job's plan from the listing window holding its checkpoint on, streamed in offset order.

        The listing's batches go through the pure `ranges.StreamPlanner`, so the ops are exactly
        those of `ranges.plan` over the whole listing; this adapter only feeds it and adds the bytes
        each batch lists as changed to `result`. A full copy (no `base`) fills every gap with a clear,
        unless the target is known to be blank (checked under the lease: PageBlobTarget.is_blank).
        """
        # Gap merging only for a diff: its gaps are unchanged since the base the target holds. A full
        # copy's gaps are holes of the source, which the target may hold data in (see ranges.coalesce).
        merge_gap = self.config.merge_gap_bytes if base is not None else 0
        window = self.config.list_window_bytes
        start = ranges.window_start(job.checkpoint, window)
        listing = list_changes(
            current, base, start=start, end=size, window=window, page_size=self.config.page_size
        )
        planner = ranges.StreamPlanner(
            start, size, merge_gap=merge_gap, fill=base is None and not blank_target
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
                await self._count(job, current, base, size, result, blank_target=not target_exists)
            except DiffNotPossible:
                job = _refused(job, result)
                await self._count(job, current, None, size, result, blank_target=not target_exists)
        result.seconds = round(time.monotonic() - started, 3)
        self.progress.on_snapshot_done(result)
        return result

    async def _count(
        self,
        job: Job,
        current: Grant,
        base: Grant | None,
        size: int,
        result: SnapshotResult,
        *,
        blank_target: bool,
    ) -> None:
        result.changed_bytes = result.merged_gap_bytes = result.cleared_bytes = result.requests = 0
        async for op in self.planned_ops(job, current, base, size, result, blank_target=blank_target):
            _count_op(result, op)
            result.requests += 1
            if op.range.end > job.checkpoint:
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
            copier = Copier(self.config, self.target, current, self.reader, self.progress)
            size = await snapshot_blob_size(current)
            if size != self.target_size:
                self.progress.on_message(f"resizing the target from {self.target_size} to {size} bytes")
                await self.target.resize(size)
                self.target_size = size
            if identity is not None:  # recorded with the first in-progress state: the target is
                # this disk's from its first write on, so no other disk can take over an unfinished copy
                state = replace(state, disk_id=identity.id, disk_unique_id=identity.unique_id)
            try:
                try:
                    await self._write(job, state, copier, base, size, result, blank_target=blank)
                except DiffNotPossible:
                    job = _refused(job, result)
                    base = None
                    await self._write(job, state, copier, None, size, result, blank_target=False)
            finally:  # also when the copy stops early: its envelope says what the run cost so far
                result.requests, result.retries = copier.requests, copier.retries
                result.seconds = round(time.monotonic() - started, 3)
            if self.config.verify:  # before the commit: a failed check leaves no restore point
                await self._verify(job, current, base, size)
                result.verified = True
            restore_point = await self.target.commit(_restore_point_meta(job, identity, size, result.reason))
            result.restore_point = restore_point
            self.progress.on_protected(
                Protected(restore_point, job.snapshot.id, job.snapshot.name, job.snapshot.time_created)
            )
            state = State(
                identity.id if identity else None,
                identity.unique_id if identity else None,
                snapshot_ref(job.snapshot),
                restore_point,
                None,
            )
            await self.target.write_state(state)
        result.seconds = round(time.monotonic() - started, 3)
        self.progress.on_snapshot_done(result)
        return result, state

    async def _write(
        self,
        job: Job,
        state: State,
        copier: Copier,
        base: Grant | None,
        size: int,
        result: SnapshotResult,
        *,
        blank_target: bool,
    ) -> None:
        """Record the job as in progress, then run its plan through the workers with checkpoints."""
        in_progress = InProgress(
            snapshot_ref(job.snapshot),
            job.base.id if job.base else None,
            job.mode,
            job.reason,
            job.checkpoint,
            job.base.unique_id if job.base else None,
            total_bytes=size,
        )
        await self.target.write_state(replace(state, in_progress=in_progress))
        window = self.config.list_window_bytes
        watermark = ranges.Watermark(ranges.window_start(job.checkpoint, window))
        result.changed_bytes = result.merged_gap_bytes = result.cleared_bytes = result.copied_bytes = 0
        stopped = False  # the time budget ran out before the plan did

        async def issue() -> AsyncIterator[ranges.Op]:
            nonlocal stopped
            async for op in self.planned_ops(
                job, copier.grant, base, size, result, blank_target=blank_target
            ):
                _count_op(result, op)
                if op.range.end <= job.checkpoint:
                    self.progress.on_skipped(op.range.length)
                    continue
                if self.budget.expired():  # stop feeding; what is in flight drains
                    stopped = True
                    return
                self.progress.on_planned(*_op_bytes(op))
                watermark.issued(op.range)
                yield op
            counter.cancel()  # the listing itself is done: its total is final
            self.progress.on_listing_done()

        async def work(op: ranges.Op) -> None:
            await copier.execute(op)
            if op.kind == "copy":
                result.copied_bytes += op.range.length
            watermark.done(op.range)

        async def checkpoints() -> None:
            saved = job.checkpoint
            while True:
                await asyncio.sleep(self.config.checkpoint_seconds)
                low = max(job.checkpoint, watermark.low())
                if low > saved:
                    try:
                        await self.target.write_state(
                            replace(state, in_progress=replace(in_progress, checkpoint=low))
                        )
                        saved = low
                    except HttpResponseError as exc:
                        log.warning("could not save the checkpoint: %s", describe(exc))

        checkpointer = asyncio.create_task(checkpoints(), name="checkpointer")

        async def count_later() -> None:
            # Only a listing still running after one progress period is counted ahead: the first
            # record comes then anyway, and a short run pays nothing for it (idle 8 TiB benchmark,
            # 20 ms: 1.50 s and 78 requests with an immediate count, 1.19 s and 46 with this delay).
            await asyncio.sleep(self.config.progress_seconds)
            await self.count_total(job, copier.grant, base, size, blank_target=blank_target)

        counter = asyncio.create_task(count_later(), name="plan-count")
        hard_stop = self.budget.hard_stop()
        try:
            async with hard_stop:
                await run_pool(issue(), self.config.concurrency, self.config.queue_depth, work)
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
            low = max(job.checkpoint, watermark.low())
            await self.target.write_state(replace(state, in_progress=replace(in_progress, checkpoint=low)))
            raise self.budget.incomplete(f"at offset {low} of {job.snapshot.name}")

    async def count_total(
        self, job: Job, current: Grant, base: Grant | None, size: int, *, blank_target: bool
    ) -> None:
        """Count the plan's bytes to copy with a second listing, ahead of the copy, for progress.

        Why: the plan is streamed, so the listing that feeds the copy runs only the copy queue ahead
        of the writes and its total is final only near the end of the snapshot; a progress record
        needs the whole total (and so an ETA). The cost is a second listing: one Get Page Ranges call
        per 10,000 ranges, next to at least one write per 4 MiB copied, and LIST_PREFETCH answers of
        memory; it starts only when the copy's own listing has run for one progress period (`_write`)
        and stops as soon as that listing ends. A count that fails changes nothing: the copy's
        listing is the plan, and progress shows the total listed so far.
        """
        copy_bytes = 0
        ops = self.planned_ops(job, current, base, size, _result(job), blank_target=blank_target)
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

    async def _verify(self, job: Job, current: Grant, base: Grant | None, size: int) -> None:
        """--verify: the target base blob must read back equal to the source snapshot, before the commit.

        A full copy compares the whole blobs (verify.compare_blobs: sizes, then the union of both
        sides' valid ranges). A diff compares every range its plan copied or cleared; the rest is the
        base, which was verified when it was written. Memory: PLAN_BATCH ranges plus
        verify.compare_regions' chunks in flight (VERIFY_CONCURRENCY x 2 x 4 MiB), whatever the disk.
        A mismatch fails the run with its offset: no restore point, the state is not advanced.
        """
        self.progress.on_message(f"verifying the target against {job.snapshot.name}")
        whole = replace(job, checkpoint=0)
        async with BlobClient.from_blob_url(await current.url(), **client_kwargs()) as source:
            if base is None:
                comparison = await verify.compare_blobs(source, self.target.client)
                if comparison.expected_size != comparison.actual_size:
                    raise ReplicationError(
                        f"verification failed: the target holds {comparison.actual_size} bytes, "
                        f"{job.snapshot.name} {comparison.expected_size}; no restore point was taken."
                    )
                mismatch = comparison.first_mismatch
            else:
                mismatch = None
                ops = self.planned_ops(whole, current, base, size, _result(whole), blank_target=False)
                async for batch in _batches(ops, PLAN_BATCH):
                    regions = [op.range for op in batch]
                    _, mismatch = await verify.compare_regions(source, self.target.client, regions)
                    if mismatch is not None:
                        break
        if mismatch is not None:
            raise ReplicationError(
                f"verification failed: the target differs from {job.snapshot.name} at offset {mismatch}; "
                "no restore point was taken. A rerun copies it again."
            )


PLAN_BATCH = 1000
"""Changes planned at a time; bounds the memory between the listing and the planner."""


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


def _refused(job: Job, result: SnapshotResult) -> Job:
    """The service refused the diff (a resize across 4 TiB): fall back to a full copy from offset 0."""
    reason = (
        f"the service refused the diff from {job.base.name if job.base else 'the base'} (resize across 4 TiB)"
    )
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


def _restore_point_meta(job: Job, identity: DiskIdentity | None, size: int, reason: str) -> RestorePointMeta:
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
    )


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


async def replicate(
    config: Config, progress: Progress | None = None, budget: Budget | None = None
) -> RunResult:
    """Replicate `config.source` into `config.target` (or, with `config.plan`, only say what it would do).

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
        async with source, contextlib.aclosing(SasBlobReader()) as reader:
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
            identity = disk_identity(disk, snaps)
            points = await target.restore_points(required=False) if inspection.exists else []
            check_source(config, inspection.state, identity, snaps, _held(points))
            runner = JobRunner(config, source, target, reader, progress, budget)
            if config.plan:
                jobs = await choose_jobs(source, config, inspection.state, identity, snaps, _held(points))
                _log_choices(jobs)
                for i, job in enumerate(jobs, 1):
                    run.snapshots.append(await runner.plan_only(job, i, len(jobs), inspection.exists))
                run.status = "planned" if jobs else "nothing new"
                run.protected = _protected(inspection.state)
                return run
            await target.create(exported_size(snaps[-1]))
            async with (
                # Every wait below (lease, SAS slot, grant, background copy, commit, verify) ends
                # within the time budget, not only the copy pool (budget.py).
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
                jobs = await choose_jobs(source, config, state, identity, snaps, held)
                _log_choices(jobs)
                for i, job in enumerate(jobs, 1):
                    if budget.expired():
                        raise budget.incomplete(f"before {job.snapshot.name}")
                    result, state = await runner.run(
                        job, state, identity, i, len(jobs), blank=blank and i == 1
                    )
                    run.snapshots.append(result)
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
                run.status = "replicated" if jobs else "nothing new"
                run.protected = _protected(state)
    return run


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
