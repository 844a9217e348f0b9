"""Correctness of the run path under races and lies: a target another run wrote, a base re-created
under the same name, a target corrupted before the commit (--verify)."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core.ranges import Op, Range
from replicator.engine import job as job_mod
from replicator.target.page_blob import PageBlobTarget
from tests.e2e.world import MiB, World, pattern
from tests.helpers.replication import replicated_then_changed


def _metadata(world: World, url: str) -> dict[str, str]:
    with world.target(url) as blob:
        return blob.get_blob_properties().metadata


def test_full_copy_clears_a_target_that_another_run_wrote(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A created the blob, run B took the lease first and wrote: A's full copy must clear B's bytes."""
    disk = world.create_disk("data", 1)
    world.write(disk, (3 * MiB, pattern(1, MiB)), (200 * MiB, pattern(2, 2 * MiB)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    size = 1024**3 + 512
    with world.target(url) as blob:  # the other run's bytes, in the holes of this source
        world.container(url).create_container()
        blob.create_page_blob(size)
        for offset in (0, 64 * MiB, 512 * MiB, size - 512 - MiB):
            blob.upload_page(pattern(9, MiB), offset, MiB)

    async def created_by_us(self, size: int) -> bool:  # what run A saw before B got the lease
        return True

    monkeypatch.setattr(PageBlobTarget, "create", created_by_us)
    result = replicate("--source", disk.id, "--target", url, "--json")
    assert result.code == 0, result.err
    [entry] = result.doc["snapshots"]
    assert entry["mode"] == "full"
    world.assert_restore_point_equals(url, entry["restore_point"], s1)


def test_resumed_diff_with_a_recreated_base_copies_in_full(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base of an interrupted diff is deleted and re-created under its name: its uniqueId differs."""
    disk = world.create_disk("data", 1)
    world.write(disk, *[(i * 40 * MiB, pattern(i, MiB)) for i in range(8)])
    s1 = world.snapshot(disk, "base")
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", "--concurrency", "1")
    args += ("--checkpoint-seconds", "0.1")
    assert replicate(*args).code == 0
    world.write(disk, *[(i * 40 * MiB, pattern(100 + i, MiB)) for i in range(8)])
    s2 = world.snapshot(disk, "current")
    real_copy = PageBlobTarget.copy_from_url
    calls = 0

    async def failing_copy(self, op, source_url, source_auth=None):
        nonlocal calls
        calls += 1
        if calls > 4:
            raise HttpResponseError(message="injected permanent failure")
        await asyncio.sleep(0.15)  # let the checkpointer see progress
        return await real_copy(self, op, source_url, source_auth)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", failing_copy)
    assert replicate(*args).code == 1
    assert _metadata(world, url)["inprogress_snapshot_id"] == s2
    monkeypatch.setattr(PageBlobTarget, "copy_from_url", real_copy)
    world.delete_snapshot(s1)
    assert world.snapshot(disk, "base") == s1  # same resource ID, new uniqueId, holds s2's bytes
    resumed = replicate(*args)
    assert resumed.code == 0, resumed.err
    entry = resumed.doc["snapshots"][0]
    assert entry["snapshot_id"] == s2 and entry["mode"] == "full", entry
    assert entry["resumed_from"] == 0 and "uniqueId" in entry["reason"], entry
    world.assert_restore_point_equals(url, entry["restore_point"], s2)


def test_verify_fails_before_the_commit_on_a_corrupted_target(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (MiB, pattern(1, MiB)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    world.write(disk, (MiB, pattern(2, 4096)), (300 * MiB, 8192))
    world.snapshot(disk)
    real_write = job_mod.JobRunner._write

    async def write_then_corrupt(self, plan, *args, **kwargs):
        await real_write(self, plan, *args, **kwargs)
        # a changed page, written through the run's own target (it holds the lease)
        junk = b"x" * 512
        await self.target.put_pages(Op("copy", Range(MiB, MiB + 512)), junk, hashlib.md5(junk).digest())

    monkeypatch.setattr(job_mod.JobRunner, "_write", write_then_corrupt)
    failed = replicate("--source", disk.id, "--target", url, "--json", "--verify")
    assert failed.code == 1, failed.err
    assert failed.doc["status"] == "failed"
    assert f"offset {MiB}" in failed.doc["error"], failed.doc["error"]
    assert [p.metadata["snapshot_id"] for p in world.restore_points(url)] == [s1]
    meta = _metadata(world, url)
    assert meta["last_snapshot_id"] == s1 and "inprogress_snapshot_id" in meta


def test_verify_passes_a_full_copy_and_a_diff(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (MiB, pattern(1, 3 * MiB)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    first = replicate("--source", disk.id, "--target", url, "--json", "--verify")
    assert first.code == 0, first.err
    assert first.doc["snapshots"][0]["verified"] is True
    world.write(disk, (2 * MiB, pattern(2, 4096)), (MiB, 8192))
    s2 = world.snapshot(disk)
    second = replicate("--source", disk.id, "--target", url, "--json", "--verify")
    assert second.code == 0, second.err
    [entry] = second.doc["snapshots"]
    assert entry["mode"] == "diff" and entry["verified"] is True
    world.assert_restore_point_equals(url, entry["restore_point"], s2)
    world.assert_sas_free(s1, s2)


def test_the_lease_wait_ends_within_the_time_budget(world: World, replicate) -> None:
    disk, s1, _, url = replicated_then_changed(world, replicate)
    with world.held_lease(url):
        started = time.monotonic()
        run = replicate("--source", disk.id, "--target", url, "--lease-wait", "60", "--time-budget", "4")
    assert run.code == 3, run.err
    assert time.monotonic() - started < 10, "the lease wait outlived the time budget"
    assert [p.metadata["snapshot_id"] for p in world.restore_points(url)] == [s1]


def test_another_disk_cannot_take_over_an_interrupted_first_copy(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first copy into a target stops before any restore point exists; a run of another disk must
    be refused (the target is being filled from the first disk), and the first then resumes."""
    first = world.create_disk("first", 1)
    world.write(first, *[(i * 40 * MiB, pattern(i, MiB)) for i in range(8)])
    s1 = world.snapshot(first)
    other = world.create_disk("other", 1)
    world.write(other, (0, pattern(99, MiB)))
    world.snapshot(other)
    url = world.target_url()

    async def failing_copy(self, op, source_url, source_auth=None):
        raise HttpResponseError(message="injected permanent failure")

    real_copy = PageBlobTarget.copy_from_url
    monkeypatch.setattr(PageBlobTarget, "copy_from_url", failing_copy)
    assert replicate("--source", first.id, "--target", url).code == 1  # stops before any write
    monkeypatch.setattr(PageBlobTarget, "copy_from_url", real_copy)
    interrupted = _metadata(world, url)
    assert interrupted["inprogress_snapshot_id"] == s1 and world.restore_points(url) == []

    takeover = replicate("--source", other.id, "--target", url, "--json")
    assert takeover.code == 2, takeover.err
    assert first.id in takeover.doc["error"] and "use another target blob" in takeover.doc["error"]
    assert "(its first copy is unfinished), but --source is the disk" in takeover.doc["error"]
    assert _metadata(world, url) == interrupted and world.restore_points(url) == []

    resumed = replicate("--source", first.id, "--target", url, "--json")
    assert resumed.code == 0, resumed.err
    [entry] = resumed.doc["snapshots"]
    assert entry["snapshot_id"] == s1
    world.assert_restore_point_equals(url, entry["restore_point"], s1, full=True)
