"""ARM faults through the real CLI (a child process) against the emulator's fault rules
(emulator/middleware/arm_faults.py): throttled grants, polls and snapshot creates are waited out as
Retry-After asks, and logged; beyond the pipeline's retries they fail the run (exit 1) with every
grant revoked and the target resumable; operations ARM reports Failed name its code and message, and
leave nothing the tool created behind. Every check counts requests; none measures time.

On the private emulator `arm_faulty` (tests/conftest.py): the rules are global to an emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.source.arm_retry import ARM_RETRIES
from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.arm_faults import FAILURE, fail, requests, rules, throttle
from tests.helpers.cli_runs import Run, run
from tests.logs import events, messages


@pytest.fixture
def faulty_world(arm_faulty_env: dict[str, str]) -> Iterator[World]:
    """A World on the private emulator `arm_faulty` (tests/conftest.py); `arm_faulty_env` clears the rules."""
    w = World(arm_faulty_env)
    yield w
    w.close()


def disk_with_data(world: World) -> Disk:
    disk = world.create_disk("d", 1)
    world.write(disk, (0, pattern(1, MiB)), (64 * MiB, pattern(2, MiB)))
    return disk


def snapshotted(world: World) -> tuple[Disk, str, str]:
    """A disk with data, its snapshot, and a target URL."""
    disk = disk_with_data(world)
    return disk, world.snapshot(disk), world.target_url()


def replicate(env: dict[str, str], disk: Disk, url: str, *extra: str) -> Run:
    return run(env, "--source", disk.id, "--target", url, "--json", *extra)


def rerun_replicates(env: dict[str, str], world: World, disk: Disk, url: str, snapshot_id: str) -> Run:
    """With the rules cleared, a rerun replicates `snapshot_id` byte for byte."""
    rules(env)
    done = replicate(env, disk, url)
    assert done.code == 0, done.err
    world.assert_restore_point_equals(url, done.doc["snapshots"][-1]["restore_point"], snapshot_id)
    return done


def snapshots(world: World) -> dict[str, str]:
    """The resource group's snapshots: name -> provisioningState."""
    return {s.name: s.provisioning_state for s in world.compute.snapshots.list_by_resource_group(world.rg)}


def assert_nothing_written(world: World, url: str) -> None:
    assert world.restore_points(url) == []
    with world.target(url) as blob:
        assert not blob.exists() or not [r for r in blob.list_page_ranges() if not r.cleared]


def test_throttled_grants_and_polls_are_waited_out_and_logged(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    env, world = arm_faulty_env, faulty_world
    disk, s1, url = snapshotted(world)
    rules(env, throttle("grant", ARM_RETRIES), throttle("poll", ARM_RETRIES))
    done = replicate(env, disk, url)
    assert done.code == 0, done.err
    waits = events(done.err, "arm_retry")
    assert [(w["level"], w["status"], w["delay_seconds"]) for w in waits] == [("warning", 429, 1)] * 6
    assert all(w["request"].endswith("/beginGetAccess") for w in waits[:ARM_RETRIES])
    assert all("/operations/" in w["request"] for w in waits[ARM_RETRIES:])
    assert "as its Retry-After asks" in waits[0]["message"]
    assert requests(env)["grant"] == ARM_RETRIES + 1
    (entry,) = done.doc["snapshots"]
    world.assert_restore_point_equals(url, entry["restore_point"], s1)
    world.assert_sas_free(s1)


def test_grants_throttled_beyond_the_retries_fail_revoked_and_resumable(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    env, world = arm_faulty_env, faulty_world
    disk, s1, url = snapshotted(world)
    assert replicate(env, disk, url).code == 0
    world.write(disk, (128 * MiB, pattern(3, MiB)))
    s2 = world.snapshot(disk)
    rules(env, throttle("grant", ARM_RETRIES + 1))
    failed = replicate(env, disk, url)
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert "throttled" in failed.doc["error"] and "OperationNotAllowed" in failed.doc["error"]
    assert requests(env)["grant"] == ARM_RETRIES + 1
    world.assert_sas_free(s1, s2)
    assert len(world.restore_points(url)) == 1
    (entry,) = rerun_replicates(env, world, disk, url, s2).doc["snapshots"]
    assert (entry["mode"], entry["base_snapshot_id"]) == ("diff", s1)


@pytest.mark.parametrize(
    ("rule", "said", "revokes"),
    [
        # The grant took effect, only its status could not be read: the run revokes it.
        (throttle("poll", ARM_RETRIES + 1), "throttled it (OperationNotAllowed", 1),
        # ARM handed out no SAS: nothing to revoke, and revoking would end another run's access.
        (fail("grant"), f"reported it Failed ({FAILURE['code']}: {FAILURE['message']})", 0),
    ],
    ids=["poll-throttled", "grant-failed"],
)
def test_a_grant_that_cannot_complete_fails_the_run_writes_nothing_and_resumes(
    arm_faulty_env: dict[str, str], faulty_world: World, rule: dict[str, Any], said: str, revokes: int
) -> None:
    env, world = arm_faulty_env, faulty_world
    disk, s1, url = snapshotted(world)
    rules(env, rule)
    failed = replicate(env, disk, url)
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert said in failed.doc["error"]
    assert requests(env).get("revoke", 0) == revokes
    world.assert_sas_free(s1)
    assert_nothing_written(world, url)
    rerun_replicates(env, world, disk, url, s1)


def test_snapshot_now_waits_out_a_throttled_create(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    env, world = arm_faulty_env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, throttle("snapshot-create", ARM_RETRIES))
    done = replicate(env, disk, url, "--snapshot-now")
    assert done.code == 0, done.err
    waits = events(done.err, "arm_retry")
    assert len(waits) == ARM_RETRIES and all(w["request"].startswith("PUT ") for w in waits)
    assert requests(env)["snapshot-create"] == ARM_RETRIES + 1
    (entry,) = done.doc["snapshots"]
    assert entry["snapshot_id"] == done.doc["snapshot_taken"]
    world.assert_restore_point_equals(url, entry["restore_point"], entry["snapshot_id"])


def test_snapshot_now_throttled_beyond_the_retries_takes_and_writes_nothing(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    env, world = arm_faulty_env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, throttle("snapshot-create", ARM_RETRIES + 1))
    failed = replicate(env, disk, url, "--snapshot-now")
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert "throttled" in failed.doc["error"]
    assert snapshots(world) == {}
    with world.target(url) as blob:
        assert not blob.exists()


def test_snapshot_now_whose_create_cannot_be_confirmed_leaves_a_snapshot_the_next_run_replicates(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    """ARM accepted the create, then its status polls stayed throttled: the snapshot exists, tagged as
    the tool's, and the next run (without --snapshot-now) replicates it."""
    env, world = arm_faulty_env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, throttle("poll", ARM_RETRIES + 1))
    failed = replicate(env, disk, url, "--snapshot-now")
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert "throttled" in failed.doc["error"] and "ARM had accepted snapshot d-repl-" in failed.doc["error"]
    (taken,) = world.compute.snapshots.list_by_resource_group(world.rg)
    assert taken.provisioning_state == "Succeeded" and taken.tags["replicator-owner"] == "replicator"
    rerun_replicates(env, world, disk, url, taken.id)


@pytest.mark.parametrize(
    ("code", "exit_code", "status"),
    [("InternalDiskManagementError", 1, "failed"), ("SnapshotsLimitReached", 3, "limited")],
)
def test_the_snapshot_a_failed_create_leaves_is_deleted(
    arm_faulty_env: dict[str, str], faulty_world: World, code: str, exit_code: int, status: str
) -> None:
    """ARM leaves a failed create's snapshot in provisioningState Failed; the run took it, so it deletes
    it. A per-disk limit (SnapshotsLimitReached) is "retry later", anything else a failure."""
    env, world = arm_faulty_env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, fail("snapshot-create", {"code": code, "message": "It failed."}))
    failed = replicate(env, disk, url, "--snapshot-now")
    assert (failed.code, failed.doc["status"]) == (exit_code, status), failed.err
    assert f"{code}: It failed." in failed.doc["error"] and "Failed was deleted" in failed.doc["error"]
    assert requests(env)["snapshot-delete"] == 1
    assert snapshots(world) == {}
    with world.target(url) as blob:
        assert not blob.exists()


def test_a_failed_snapshot_is_never_a_source_nor_deleted(
    arm_faulty_env: dict[str, str], faulty_world: World
) -> None:
    """Someone else's create failed: its snapshot is left out of every run, and left where it is."""
    env, world = arm_faulty_env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    s1 = world.snapshot(disk)
    rules(env, fail("snapshot-create"))
    with pytest.raises(HttpResponseError):
        world.snapshot(disk, "failed")
    rules(env)
    done = replicate(env, disk, url, "--snapshot-now", "--source-keep", "1")
    assert done.code == 0, done.err
    assert [e["snapshot_id"] for e in done.doc["snapshots"]] == [s1, done.doc["snapshot_taken"]]
    (warned,) = [m for m in messages(done.err) if "/snapshots/failed of the disk was left out" in m]
    assert "provisioningState Failed" in warned
    assert snapshots(world)["failed"] == "Failed"
    for entry in done.doc["snapshots"]:
        world.assert_restore_point_equals(url, entry["restore_point"], entry["snapshot_id"])
