"""engine.base_choice: the pure decisions of the base choice (choose_jobs is tested in test_pipeline)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.errors import UnprotectedError, UserError
from replicator.engine import base_choice as base
from replicator.target.state import InProgress, State
from tests.helpers.source_fakes import DISK, IDENTITY, FakeSource, config, done, jobs, ref, snap


def test_the_one_lookup_is_the_recorded_base_or_the_last_restore_point() -> None:
    s1, s2, s3 = snap(1), snap(2), snap(3)
    assert base.base_to_look_up(State(), IDENTITY, s1) is None
    assert base.base_to_look_up(done(s1), IDENTITY, s2) == s1.id
    resuming = done(s1, in_progress=InProgress(ref(s2), s1.id, "diff", "diff from s1", 512, "u1"))
    assert base.base_to_look_up(resuming, IDENTITY, s2) == s1.id
    assert base.base_to_look_up(resuming, IDENTITY, s3) is None  # another snapshot's leftovers: full
    recreated_disk = replace(IDENTITY, unique_id="disk-new")
    assert base.base_to_look_up(done(s1), recreated_disk, s2) is None


def test_first_job_is_a_pure_decision() -> None:
    s1, s2 = snap(1), snap(2)
    assert base.first_job(done(s1), IDENTITY, s2, s1).base == s1
    assert base.first_job(done(s1), IDENTITY, s2, None).mode == "full"  # deleted
    recreated = replace(s1, unique_id="u1-new")
    assert "no longer exists" in base.first_job(done(s1), IDENTITY, s2, recreated).reason
    assert (
        base.first_job(done(s2), IDENTITY, s1, s2).reason
        == "rollback from s2 to the older s1, allowed by --allow-rollback"
    )


def test_following_jobs_diff_each_from_the_one_before_unless_resized_across_4tib() -> None:
    s1, s2, s3 = snap(1), snap(2, 5 * 1024**4), snap(3, 5 * 1024**4)
    jobs = base.following_jobs([s1, s2, s3])
    assert [(j.snapshot.name, j.base.name if j.base else None) for j in jobs] == [("s2", None), ("s3", "s2")]


def test_an_older_snapshot_is_a_rollback_refused_without_allow_rollback() -> None:
    s1, s2, s3 = snap(1), snap(2), snap(3)
    older = replace(config(), source=s1.id)
    with pytest.raises(UserError) as refused:
        base.check_source(older, done(s3), IDENTITY, [s1])
    message = str(refused.value)
    assert "holds s3" in message and "newer than s1" in message and "restore point rp" in message
    assert "full copy of 1.0 GiB that rewrites the base blob" in message and "--allow-rollback" in message
    allowed = replace(older, allow_rollback=True)
    base.check_source(allowed, done(s3), IDENTITY, [s1])
    base.check_source(older, done(s3), IDENTITY, [s1], held={"u1"})  # has its restore point: nothing to do
    base.check_source(older, done(s1), IDENTITY, [s2])  # newer than the base blob's: no rollback
    base.check_source(config(), done(s3), IDENTITY, [s1, s2, s3])  # a disk source never rolls back


async def test_a_snapshot_with_a_restore_point_is_never_copied_again() -> None:
    """After a rollback to s1 the base blob holds s1 while s2, s3 have restore points: the next run
    skips them and diffs s4 from s1, the base blob's content."""
    s1, s2, s3, s4 = snap(1), snap(2), snap(3), snap(4)
    chosen = await jobs(done(s1), [s1, s2, s3, s4], held={"u1", "u2", "u3"})
    assert chosen == [("s4", "s1", "diff from s1", 0)]
    gaps = await jobs(done(s1), [s1, s2, s3, s4], held={"u1", "u3"})
    assert [(name, frm) for name, frm, *_ in gaps] == [("s2", "s1"), ("s4", "s2")]
    assert await jobs(done(s1), [s1, s2, s3], "--latest-only", held={"u3"}) == []


def test_unprotected_says_what_was_found_and_the_fix() -> None:
    bare = base.unprotected(config(), 0)
    assert isinstance(bare, UnprotectedError) and bare.exit_code == 4
    assert "no snapshot of it in resource group rg" in str(bare)
    assert "--snapshot-now" in str(bare) and "--snapshot-search subscription" in str(bare)
    full = str(base.unprotected(config(), 2))
    assert "2 full snapshots, which cannot be diffed" in full
    wide = str(base.unprotected(config("--snapshot-search", "subscription"), 1))
    assert "1 full snapshot," in wide and "subscription" in wide and "--snapshot-search" not in wide
    assert DISK.rsplit("/", 1)[1] in wide


@given(
    count=st.integers(1, 8),
    last=st.integers(0, 8),
    held=st.sets(st.integers(1, 8)),
    latest_only=st.booleans(),
)
async def test_every_job_diffs_from_what_the_base_blob_holds(
    count: int, last: int, held: set[int], latest_only: bool
) -> None:
    """Whatever restore points exist (after rollbacks, any subset): no snapshot with a restore point is
    copied again, the first job diffs from the snapshot the base blob holds (state.last) and each next
    one from the job before it, so every diff applies to exactly the bytes it was computed against;
    and every newer snapshot without a restore point is copied (the newest, with --latest-only)."""
    snaps = [snap(n) for n in range(1, count + 1)]
    state = done(snaps[last - 1]) if 0 < last <= count else State()
    held_ids = {f"u{n}" for n in held} | ({state.last.unique_id} if state.last else set())
    extra = ("--latest-only",) if latest_only else ()
    chosen = await base.choose_jobs(FakeSource(*snaps), config(*extra), state, IDENTITY, snaps, held_ids)
    assert not any(j.snapshot.unique_id in held_ids for j in chosen)
    holds = state.last.unique_id if state.last else None
    for job in chosen:
        assert job.base is None or job.base.unique_id == holds
        holds = job.snapshot.unique_id
    newer = snaps[last:] if state.last else snaps
    wanted = newer[-1:] if latest_only else newer
    assert [j.snapshot for j in chosen] == [s for s in wanted if s.unique_id not in held_ids]
