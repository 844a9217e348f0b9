"""replicator.base: the pure decisions of the base choice (choose_jobs is tested in test_pipeline)."""

from __future__ import annotations

from dataclasses import replace

from replicator import base
from replicator.target import InProgress, State
from tests.unit.test_pipeline import IDENTITY, done, ref, snap


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
    assert base.first_job(done(s2), IDENTITY, s1, s2).reason.startswith("the source is older")


def test_following_jobs_diff_each_from_the_one_before_unless_resized_across_4tib() -> None:
    s1, s2, s3 = snap(1), snap(2, 5 * 1024**4), snap(3, 5 * 1024**4)
    jobs = base.following_jobs([s1, s2, s3])
    assert [(j.snapshot.name, j.base.name if j.base else None) for j in jobs] == [("s2", None), ("s3", "s2")]
