"""Pipeline logic with in-test fakes: base choice, the streamed planner, the worker pool, retries."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from replicator.core import ranges, stripes
from replicator.core.errors import ReplicationError
from replicator.core.progress import Tally
from replicator.core.ranges import Change, Range
from replicator.engine import base_choice as base
from replicator.engine import copier
from replicator.engine import job as job_mod
from replicator.settings.knobs import GiB
from replicator.target.state import InProgress, State
from tests.helpers.source_fakes import DISK, IDENTITY, config, done, jobs, ref, snap


async def test_first_run_is_full_then_a_chain_of_diffs() -> None:
    s1, s2, s3 = snap(1), snap(2), snap(3)
    assert await jobs(State(), [s1, s2]) == [
        ("s1", None, "the target has no restore point", 0),
        ("s2", "s1", "diff from s1", 0),
    ]
    assert await jobs(done(s1), [s1, s2, s3]) == [
        ("s2", "s1", "diff from s1", 0),
        ("s3", "s2", "diff from s2", 0),
    ]
    assert await jobs(done(s3), [s1, s2, s3]) == []


async def test_latest_only_diffs_from_the_last_restore_point() -> None:
    s1, s2, s3 = snap(1), snap(2), snap(3)
    assert await jobs(done(s1), [s1, s2, s3], "--latest-only") == [("s3", "s1", "diff from s1", 0)]


async def test_deleted_base_and_recreated_disk_mean_full_copies() -> None:
    s1, s2 = snap(1), snap(2)
    deleted = await jobs(done(s1), [s2], alive=[s2])
    assert deleted == [("s2", None, "the base snapshot s1 of the last restore point no longer exists", 0)]
    recreated = replace(done(s1), disk_unique_id="other")
    assert (await jobs(recreated, [s1, s2]))[0][1:3] == (
        None,
        "the source disk was recreated (its uniqueId differs from the target's)",
    )


async def test_resize_across_4tib_is_full() -> None:
    s1, s2 = snap(1, 4 * 1024 * GiB), snap(2, 4 * 1024 * GiB + GiB)
    assert (await jobs(done(s1), [s1, s2]))[0][1:3] == (None, "the disk was resized across 4 TiB since s1")
    s3 = snap(3, 4 * 1024 * GiB + 2 * GiB)
    chain = await jobs(State(), [s1, s2, s3])
    assert [j[1] for j in chain] == [None, None, "s2"]


async def test_interrupted_job_resumes_from_its_checkpoint_with_its_base() -> None:
    s1, s2 = snap(1), snap(2)
    state = done(s1, in_progress=InProgress(ref(s2), s1.id, "diff", "diff from s1", 8 * 1024 * 1024, "u1"))
    assert await jobs(state, [s1, s2]) == [("s2", "s1", "diff from s1", 8 * 1024 * 1024)]


async def test_interrupted_diff_whose_base_was_recreated_restarts_in_full() -> None:
    s1, s2 = snap(1), snap(2)
    recreated = replace(s1, unique_id="u1-new")
    for recorded in ("u1", None):  # re-created since, or a checkpoint that did not record the uniqueId
        progress = InProgress(ref(s2), s1.id, "diff", "diff from s1", 4096, recorded)
        alive = [recreated, s2] if recorded else [s1, s2]
        [(name, base, reason, checkpoint)] = await jobs(done(s1, in_progress=progress), [s2], alive=alive)
        assert (name, base, checkpoint) == ("s2", None, 0) and "uniqueId" in reason


async def test_interrupted_job_of_another_snapshot_forces_full() -> None:
    s1, s2, s3 = snap(1), snap(2), snap(3)
    state = done(s1, in_progress=InProgress(ref(s2), s1.id, "diff", "diff from s1", 4096))
    assert (await jobs(state, [s1, s2, s3], "--latest-only"))[0] == (
        "s3",
        None,
        "an interrupted replication of s2 left the target partly written",
        0,
    )


def test_check_source_refuses_other_disk_not_one_over_8_tib() -> None:
    from replicator.core.errors import UserError

    other = replace(done(snap(1)), disk_id=DISK.replace("disks/d", "disks/other"))
    with pytest.raises(UserError, match="use another target blob"):
        base.check_source(config(), other, IDENTITY, [snap(1)])
    base.check_source(config(), State(), IDENTITY, [snap(1, 8 * 1024 * GiB)])  # striped (core.stripes)


# ---------------------------------------------------------------- streamed planning


def runner(window: int = 64 * 1024 * 1024) -> job_mod.JobRunner:
    cfg = config("--list-window", str(window))
    return job_mod.JobRunner(cfg, None, None, None, None)  # type: ignore[arg-type]


def fake_listing(monkeypatch: pytest.MonkeyPatch, changes: list[Change]) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []

    async def list_changes(current, base, *, start, end, window, page_size):
        calls.append((start, end))
        for change in changes:
            if change.range.end > start:
                yield change

    monkeypatch.setattr(job_mod, "list_changes", list_changes)
    monkeypatch.setattr(job_mod, "PLAN_BATCH", 2)  # batch edges everywhere
    return calls


async def collect(it) -> list[ranges.Op]:
    return [op async for op in it]


async def test_batched_plan_equals_whole_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    M = 1024 * 1024
    spans = [(0, 512, False), (512, 9 * M, False), (9 * M, 9 * M + 4096, True), (10 * M, 11 * M, False)]
    changes = [Change(Range(a, b), c) for a, b, c in [*spans, (11 * M, 12 * M, False)]]
    fake_listing(monkeypatch, changes)
    job = base.Job(snap(2), snap(1), "diff")
    got = await collect(
        runner().planned_ops(
            job_mod.PlanInput(job, None, object(), 16 * M, blank_target=False), job_mod._result(job)
        )
    )  # type: ignore[arg-type]
    assert got == list(ranges.plan(changes))


async def test_merged_gaps_are_reported_apart_from_changed_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --merge-gap, a diff copies unchanged gaps too: the summary keeps them out of changed_bytes."""
    changes = [Change(Range(0, 4096), False), Change(Range(8192, 12288), False)]
    fake_listing(monkeypatch, changes)
    job = base.Job(snap(2), snap(1), "diff")
    result = job_mod._result(job)
    ops = await collect(
        runner().planned_ops(job_mod.PlanInput(job, None, object(), 1 << 20, blank_target=False), result)
    )  # type: ignore[arg-type]
    for op in ops:
        job_mod._count_op(result, op)
    assert ops == [ranges.Op("copy", Range(0, 12288))]
    assert (result.changed_bytes, result.merged_gap_bytes) == (8192, 4096)


async def test_full_copy_clears_gaps_unless_the_target_is_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    M = 1024 * 1024
    fake_listing(monkeypatch, [Change(Range(M, 2 * M), False), Change(Range(5 * M, 6 * M), False)])
    job = base.Job(snap(1), None, "full")
    full = await collect(
        runner().planned_ops(
            job_mod.PlanInput(job, None, None, 8 * M, blank_target=False), job_mod._result(job)
        )
    )  # type: ignore[arg-type]
    assert [(o.kind, o.range.start, o.range.end) for o in full] == [
        ("clear", 0, M),
        ("copy", M, 2 * M),
        ("clear", 2 * M, 5 * M),
        ("copy", 5 * M, 6 * M),
        ("clear", 6 * M, 8 * M),
    ]
    blank = await collect(
        runner().planned_ops(
            job_mod.PlanInput(job, None, None, 8 * M, blank_target=True), job_mod._result(job)
        )
    )  # type: ignore[arg-type]
    assert [o.kind for o in blank] == ["copy", "copy"]


async def test_resume_lists_from_the_checkpoint_window(monkeypatch: pytest.MonkeyPatch) -> None:
    M = 1024 * 1024
    calls = fake_listing(monkeypatch, [Change(Range(M, 2 * M), False), Change(Range(70 * M, 71 * M), False)])
    job = base.Job(snap(1), None, "full", checkpoint=66 * M)
    ops = await collect(
        runner(64 * M).planned_ops(
            job_mod.PlanInput(job, None, None, 128 * M, blank_target=False), job_mod._result(job)
        )
    )  # type: ignore[arg-type]
    assert calls == [(64 * M, 128 * M)]
    assert ops[0] == ranges.Op("clear", Range(64 * M, 70 * M))


async def test_the_plan_is_counted_ahead_as_the_copy_would_report_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """count_total gives progress the whole total at once: exactly the bytes the copy's on_planned
    increments add up to (copies past the checkpoint, merged gaps included, clears apart)."""
    M = 1024 * 1024
    changes = [
        Change(Range(M, 2 * M), False),
        Change(Range(3 * M, 4 * M), True),
        Change(Range(70 * M, 75 * M), False),
    ]
    fake_listing(monkeypatch, changes)
    tally = Tally()
    job = base.Job(snap(1), None, "full", checkpoint=66 * M)
    jobs_runner = job_mod.JobRunner(config(), None, None, None, tally)  # type: ignore[arg-type]
    await jobs_runner.count_total(job_mod.PlanInput(job, None, None, 128 * M, blank_target=False))  # type: ignore[arg-type]
    planned = [
        op
        async for op in jobs_runner.planned_ops(
            job_mod.PlanInput(job, None, None, 128 * M, blank_target=False), job_mod._result(job)
        )
    ]  # type: ignore[arg-type]
    issued = sum(op.range.length for op in planned if op.kind == "copy" and op.range.end > job.checkpoint)
    assert tally.counted == issued == 5 * M
    assert (tally.total, tally.total_known) == (5 * M, True)
    tally.on_listing_done()  # once the copy's own listing ends, its total is the one kept
    assert tally.total == tally.planned == 0


async def test_a_count_that_fails_leaves_the_total_as_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(current, base, *, start, end, window, page_size):
        raise job_mod.DiffNotPossible("refused", "resize across 4 TiB")
        yield  # an async generator

    monkeypatch.setattr(job_mod, "list_changes", refused)
    tally = Tally()
    jobs_runner = job_mod.JobRunner(config(), None, None, None, tally)  # type: ignore[arg-type]
    plan = job_mod.PlanInput(base.Job(snap(2), snap(1), "diff"), None, object(), GiB, blank_target=False)  # type: ignore[arg-type]
    await jobs_runner.count_total(plan)
    tally.on_planned(4096, 0)
    assert (tally.counted, tally.total, tally.total_known) == (None, 4096, False)


# ---------------------------------------------------------------- pool and retries


async def test_pool_failure_cancels_the_other_workers() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def ops():
        for i in range(100):
            yield ranges.Op("copy", Range(i * 512, (i + 1) * 512))

    async def work(op: ranges.Op) -> None:
        started.append(op.range.start)
        if op.range.start == 512 * 3:
            raise ReplicationError("boom")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(op.range.start)
            raise

    with pytest.raises(ReplicationError, match="boom"):
        await asyncio.wait_for(copier.run_pool(ops(), 4, 8, work), 5)
    assert len(started) == 4 and len(cancelled) == 3


async def test_throttle_paces_bytes() -> None:
    throttle = copier.Throttle(1024 * 1024)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await throttle.take(100 * 1024)
    assert loop.time() - start >= 0.18


async def test_every_stripe_gets_its_ceiling_of_workers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A source over 8 TiB is written into every stripe at once, each blob paced up to the ceiling:
    the pool must hold that many requests in each stripe together (with one ceiling of workers, two
    stripes got half of it each, and a 16 TiB diff at 60 ms ran at 1.42x its stripes' bound)."""
    ceiling, per_stripe = 4, 12
    size = 2 * stripes.STRIPE_BYTES + 512  # two full stripes and the footer's
    changes = [
        Change(Range(s * stripes.STRIPE_BYTES + i * GiB, s * stripes.STRIPE_BYTES + i * GiB + 4096), False)
        for s in (0, 1)
        for i in range(per_stripe)
    ]

    async def list_changes(current, base, *, start, end, window, page_size):
        for change in changes:
            if start <= change.range.start < end:
                yield change

    monkeypatch.setattr(job_mod, "list_changes", list_changes)
    in_flight, peak = [0, 0], [0, 0]
    together = asyncio.Event()

    class Copier:
        async def execute(self, op: ranges.Op) -> None:
            index = op.range.start // stripes.STRIPE_BYTES
            in_flight[index] += 1
            peak[index] = max(peak[index], in_flight[index])
            if min(in_flight) >= ceiling:
                together.set()
            with contextlib.suppress(TimeoutError):  # a pool too small never gets there: fail, not hang
                async with asyncio.timeout(5):
                    await together.wait()
            in_flight[index] -= 1

    class Target:
        async def write_state(self, state: State) -> None:
            pass

    runner = job_mod.JobRunner(config(), None, Target(), None, Tally(), ceiling=ceiling)  # type: ignore[arg-type]
    job = base.Job(snap(2), snap(1), "diff")
    plan = job_mod.PlanInput(job, None, object(), size, blank_target=False)  # type: ignore[arg-type]
    await runner._write(plan, State(), Copier(), job_mod._result(job))  # type: ignore[arg-type]
    assert together.is_set(), f"peak requests in flight per stripe {peak}, ceiling {ceiling}"
