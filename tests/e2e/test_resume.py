"""Failures cost time, never data: an interrupted run leaves no SAS, keeps its checkpoint, and a rerun
resumes from it to a byte-equal restore point. One writer per target: a held lease means exit 3."""

from __future__ import annotations

import signal
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobLeaseClient

from replicator.target.page_blob import PageBlobTarget
from tests import envelope
from tests.e2e.world import MiB, World, pattern
from tests.helpers.cli_runs import cli_process
from tests.helpers.replication import replicated_then_changed

CHUNKS = 24  # 1 MiB writes spread over the disk: enough ops that a failure lands mid-plan


def _scattered_disk(world: World):
    disk = world.create_disk("data", 1)
    world.write(disk, *[(i * 40 * MiB + 512 * i, pattern(i, MiB)) for i in range(CHUNKS)])
    return disk, world.snapshot(disk)


def _metadata(world: World, url: str) -> dict[str, str]:
    with world.target(url) as blob:
        return blob.get_blob_properties().metadata


def test_failure_mid_copy_then_resume(world: World, replicate, monkeypatch: pytest.MonkeyPatch) -> None:
    disk, s1 = _scattered_disk(world)
    url = world.target_url()
    real_copy = PageBlobTarget.copy_from_url
    calls = 0

    async def failing_copy(self, op, source_url, source_auth=None):
        nonlocal calls
        calls += 1
        if calls > CHUNKS // 2:
            raise HttpResponseError(message="injected permanent failure")
        import asyncio

        await asyncio.sleep(0.05)  # let the checkpointer see progress
        return await real_copy(self, op, source_url, source_auth)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", failing_copy)
    args = ("--source", disk.id, "--target", url, "--json", "--concurrency", "1")
    args += ("--checkpoint-seconds", "0.1")
    failed = replicate(*args)
    assert failed.code == 1, failed.err
    assert "injected permanent failure" in failed.err and "Traceback" not in failed.err
    assert failed.doc["status"] == "failed"
    assert world.snapshot_state(s1) != "ActiveSAS"
    meta = _metadata(world, url)
    assert meta["inprogress_snapshot_id"] == s1
    checkpoint = int(meta["inprogress_checkpoint"])
    assert checkpoint > 0
    assert world.restore_points(url) == []
    with world.target(url) as blob:
        assert blob.get_blob_properties().lease.state == "available"  # released on the way out

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", real_copy)
    resumed = replicate(*args)
    assert resumed.code == 0, resumed.err
    entry = resumed.doc["snapshots"][0]
    assert entry["resumed_from"] == checkpoint
    assert 0 < entry["copied_bytes"] < entry["changed_bytes"]
    world.assert_restore_point_equals(url, entry["restore_point"], s1)
    assert world.snapshot_state(s1) != "ActiveSAS"
    assert "inprogress_snapshot_id" not in _metadata(world, url)


def test_lease_conflict_exits_3_and_writes_nothing(world: World, replicate) -> None:
    disk, s1, s2, url = replicated_then_changed(world, replicate)
    with world.held_lease(url):
        run = replicate("--source", disk.id, "--target", url)
    assert run.code == 3, run.err
    assert "another replication holds the lease on" in run.err
    assert len(world.restore_points(url)) == 1
    assert world.snapshot_state(s2) != "ActiveSAS" and world.snapshot_state(s1) != "ActiveSAS"


def test_killed_subprocess_resumes_byte_equal(world: World, emulator_env: dict[str, str]) -> None:
    disk, s1 = _scattered_disk(world)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", "--checkpoint-seconds", "0.2")
    slow = cli_process(emulator_env, *args, "--max-bandwidth", "2MiB", "--concurrency", "2")
    try:
        deadline = time.monotonic() + 30
        checkpoint = 0
        while time.monotonic() < deadline and checkpoint == 0:
            time.sleep(0.2)
            try:
                checkpoint = int(_metadata(world, url).get("inprogress_checkpoint", "0"))
            except Exception:  # the blob may not exist yet
                continue
        assert checkpoint > 0, "the run never saved a checkpoint"
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.communicate(timeout=10)
    with world.target(url) as blob:
        BlobLeaseClient(blob).break_lease(lease_break_period=0)  # what an operator does after a crash

    rerun = cli_process(emulator_env, *args)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    entry = envelope.parse(out)["snapshots"][0]
    assert entry["resumed_from"] >= checkpoint > 0
    assert entry["copied_bytes"] < entry["changed_bytes"]
    world.assert_restore_point_equals(url, entry["restore_point"], s1)
    assert world.snapshot_state(s1) != "ActiveSAS"


@pytest.mark.parametrize("mode", ["server", "stream"])
def test_sas_revoked_mid_copy_is_regranted(world: World, emulator_env: dict[str, str], mode: str) -> None:
    disk, s1 = _scattered_disk(world)
    url = world.target_url()
    run = cli_process(
        emulator_env, "--source", disk.id, "--target", url, "--json", "--mode", mode,
        "--max-bandwidth", "4MiB", "--concurrency", "2", "--checkpoint-seconds", "0.2",
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        try:
            if int(_metadata(world, url).get("inprogress_checkpoint", "0")) > 0:
                break
        except Exception:  # the blob may not exist yet
            continue
    world.compute.snapshots.begin_revoke_access(world.rg, s1.rsplit("/", 1)[1]).result()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    entry = envelope.parse(out)["snapshots"][0]
    assert entry["retries"] >= 1, "the revoked SAS was never noticed"
    world.assert_restore_point_equals(url, entry["restore_point"], s1)
    assert world.snapshot_state(s1) != "ActiveSAS"
