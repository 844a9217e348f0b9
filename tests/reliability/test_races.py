"""Races and outside interference: two runs on one target, many runs on one snapshot family, the
target lease broken, snapshots deleted, the emulator restarted, SAS expiring, in the middle of a run."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from azure.storage.blob import BlobLeaseClient

from replicator.emulator.process import EmulatorProcess
from tests.e2e.world import World
from tests.helpers.cli_runs import FAST_RETRY, cli_process, finish, run
from tests.helpers.replication import change, check_points, metadata, scattered, wait_for_checkpoint

SLOW = ("--max-bandwidth", "2MiB", "--concurrency", "2")


def _with_base(world: World, env: dict[str, str], chunks: int = 12) -> tuple[object, str, str, str, tuple]:
    """A disk replicated once (s1), then changed and snapshotted again (s2): a diff is pending."""
    disk = scattered(world)
    s1 = world.snapshot(disk)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", *FAST_RETRY)
    assert run(env, *args).code == 0
    change(world, disk, 1, chunks=chunks)
    return disk, s1, world.snapshot(disk), url, args


def test_two_runs_on_one_target(faulty: EmulatorProcess, faulty_world: World) -> None:
    env = faulty.env
    _, s1, s2, url, args = _with_base(faulty_world, env)
    # The first run is throttled to ~48 s of copying, so it certainly holds the lease when the
    # second starts, however busy the machine; once the second has answered, SIGTERM ends it cleanly.
    crawl = ("--max-bandwidth", "128KiB", "--concurrency", "1", "--checkpoint-seconds", "0.2")
    first = cli_process(env, *args, *crawl, "--lease-wait", "0")
    assert wait_for_checkpoint(faulty_world, url, first) > 0
    second = run(env, *args, "--lease-wait", "0")
    first.send_signal(signal.SIGTERM)
    stopped = finish(first)
    assert (stopped.code, second.code) == (143, 3), (stopped.err, second.err)
    assert "another replication holds the lease on" in second.err
    assert run(env, *args).code == 0  # resumes the first run's checkpoint
    check_points(faulty_world, url, s1, s2)
    faulty_world.assert_sas_free(s1, s2)


def test_target_lease_broken_mid_run(faulty: EmulatorProcess, faulty_world: World) -> None:
    env = faulty.env
    _, s1, s2, url, args = _with_base(faulty_world, env)
    victim = cli_process(env, *args, *SLOW)
    assert wait_for_checkpoint(faulty_world, url, victim) > 0
    with faulty_world.target(url) as blob:
        BlobLeaseClient(blob).break_lease(lease_break_period=0)
    broken = finish(victim)
    assert broken.code == 1, broken.err
    assert "lease" in broken.doc["error"], broken.doc["error"]
    assert [p.metadata["snapshot_id"] for p in faulty_world.restore_points(url)] == [s1]
    faulty_world.assert_sas_free(s1, s2)
    assert run(env, *args).code == 0
    check_points(faulty_world, url, s1, s2)


def test_current_snapshot_deleted_mid_run(faulty: EmulatorProcess, faulty_world: World) -> None:
    env = faulty.env
    disk, s1, s2, url, args = _with_base(faulty_world, env)
    victim = cli_process(env, *args, *SLOW)
    assert wait_for_checkpoint(faulty_world, url, victim) > 0
    # Azure refuses to delete a snapshot with an active SAS: whoever deletes it revokes first
    faulty_world.compute.snapshots.begin_revoke_access(faulty_world.rg, s2.rsplit("/", 1)[1]).result()
    faulty_world.delete_snapshot(s2)
    failed = finish(victim)
    assert failed.code != 0 and failed.doc["status"] == "failed"
    assert s2.rsplit("/", 1)[1] in failed.doc["error"], failed.doc["error"]
    assert [p.metadata["snapshot_id"] for p in faulty_world.restore_points(url)] == [s1]
    change(faulty_world, disk, 2)
    s3 = faulty_world.snapshot(disk)
    again = run(env, *args)
    assert again.code == 0, again.err
    [entry] = again.doc["snapshots"]
    # the target holds part of s2's diff: only a full copy of s3 is correct now
    assert entry["snapshot_id"] == s3 and entry["mode"] == "full", entry
    check_points(faulty_world, url, s1, s3)
    faulty_world.assert_sas_free(s1, s3)


def test_base_snapshot_deleted_before_run(faulty: EmulatorProcess, faulty_world: World) -> None:
    env = faulty.env
    _, s1, s2, url, args = _with_base(faulty_world, env)
    faulty_world.delete_snapshot(s1)
    result = run(env, *args)
    assert result.code == 0, result.err
    [entry] = result.doc["snapshots"]
    assert entry["mode"] == "full" and "no longer exists" in entry["reason"]
    points = faulty_world.restore_points(url)
    assert [p.metadata["snapshot_id"] for p in points] == [s1, s2]
    faulty_world.assert_restore_point_equals(url, points[1].snapshot, s2)


def _family_sas_peak(world: World, stop: threading.Event) -> Callable[[], int]:
    """Poll every snapshot of the world's group; the most ActiveSAS seen at once per family."""
    peak: list[int] = [0]

    def poll() -> None:
        while not stop.is_set():
            states = Counter(
                s.incremental_snapshot_family_id
                for s in world.compute.snapshots.list_by_resource_group(world.rg)
                if s.disk_state == "ActiveSAS"
            )
            peak[0] = max([peak[0], *states.values()])
            time.sleep(0.05)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return lambda: (stop.set(), thread.join(10), peak[0])[2]


@pytest.mark.slow
def test_many_runs_on_one_family(faulty: EmulatorProcess, faulty_world: World) -> None:
    """Four diffs of one disk into four targets at once want eight SAS; Azure allows five a family."""
    env, world = faulty.env, faulty_world
    disk = scattered(world)
    snaps = [world.snapshot(disk)]
    urls = [world.target_url() for _ in range(4)]
    for url in urls:
        assert run(env, "--source", disk.id, "--target", url, *FAST_RETRY).code == 0
    for seed in range(4):
        change(world, disk, seed + 3)
        snaps.append(world.snapshot(disk))
    peak = _family_sas_peak(world, threading.Event())
    procs = [
        cli_process(env, "--source", snaps[i + 1], "--target", url, "--json", *FAST_RETRY, *SLOW)
        for i, url in enumerate(urls)
    ]
    results = [finish(p) for p in procs]
    most = peak()
    assert [r.code for r in results] == [0, 0, 0, 0], [r.err for r in results]
    assert 2 <= most <= 5, most
    for i, url in enumerate(urls):
        check_points(world, url, snaps[0], snaps[i + 1])
    world.assert_sas_free(*snaps)


@pytest.mark.slow
def test_emulator_restarted_mid_copy(fresh_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = fresh_emulator()
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    world = World(emulator.env)
    _, s1, s2, url, args = _with_base(world, emulator.env, chunks=24)
    victim = cli_process(emulator.env, *args, *SLOW)
    assert wait_for_checkpoint(world, url, victim) > 0
    emulator.restart()
    result = finish(victim)
    if result.code != 0:  # failing cleanly is allowed; the rerun must then complete
        assert result.doc["status"] == "failed"
        result = run(emulator.env, *args)
    assert result.code == 0, result.err
    check_points(world, url, s1, s2)
    world.assert_sas_free(s1, s2)
    world.close()


@pytest.mark.parametrize("mode", ["server", "stream"])
def test_sas_expiring_during_a_copy(fresh_emulator, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    emulator = fresh_emulator("--sas-max-seconds", "2")
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    world = World(emulator.env)
    _, s1, s2, url, args = _with_base(world, emulator.env)
    result = run(emulator.env, *args, "--mode", mode, *SLOW)
    assert result.code == 0, result.err
    assert result.doc["snapshots"][0]["retries"] >= 1, "the expired SAS was never noticed"
    check_points(world, url, s1, s2)
    world.assert_sas_free(s1, s2)
    assert "inprogress_snapshot_id" not in metadata(world, url)
    world.close()
