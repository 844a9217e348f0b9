"""ARM faults through the real CLI (a child process) against the emulator's fault rules
(emulator/middleware/arm_faults.py): throttled grants, polls and snapshot creates are waited out as
Retry-After asks, and logged; beyond the pipeline's retries they fail the run (exit 1) with every
grant revoked and the target resumable; operations ARM reports Failed name its code and message, and
leave nothing the tool created behind. Every check counts requests; none measures time.

A private emulator: its rules are global to it, so they never reach tests on the session emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.devtools.disk_builder import control
from replicator.emulator.process import EmulatorProcess
from replicator.source.arm_retry import ARM_RETRIES
from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.cli_runs import Run, run
from tests.logs import events, messages

FAILURE = {"code": "InternalDiskManagementError", "message": "An internal error occurred."}


@pytest.fixture(scope="module")
def arm_faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess(tmp_path_factory.mktemp("arm-faulty"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def faulty_world(arm_faulty: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A World on the private emulator, with no rule while it is set up and none after the test."""
    for key, value in arm_faulty.env.items():
        monkeypatch.setenv(key, value)
    rules(arm_faulty.env)
    w = World(arm_faulty.env)
    yield w
    rules(arm_faulty.env)
    w.close()


def rules(env: dict[str, str], *given: dict[str, Any]) -> None:
    control(env, "arm-faults", {"rules": list(given)})


def throttle(on: str, times: int) -> dict[str, Any]:
    return {"on": on, "status": 429, "retry_after": 1, "times": times}


def requests(env: dict[str, str]) -> dict[str, int]:
    """The ARM requests of each operation since the rules were set (throttled ones included)."""
    return control(env, "arm-faults")["requests"]


def disk_with_data(world: World) -> Disk:
    disk = world.create_disk("d", 1)
    world.write(disk, (0, pattern(1, MiB)), (64 * MiB, pattern(2, MiB)))
    return disk


def replicate(env: dict[str, str], disk: Disk, url: str, *extra: str) -> Run:
    return run(env, "--source", disk.id, "--target", url, "--json", *extra)


def snapshots(world: World) -> dict[str, str]:
    """The resource group's snapshots: name -> provisioningState."""
    return {s.name: s.provisioning_state for s in world.compute.snapshots.list_by_resource_group(world.rg)}


def assert_nothing_written(world: World, url: str) -> None:
    assert world.restore_points(url) == []
    with world.target(url) as blob:
        assert not blob.exists() or not [r for r in blob.list_page_ranges() if not r.cleared]


def test_throttled_grants_and_polls_are_waited_out_and_logged(
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    env, world = arm_faulty.env, faulty_world
    disk = disk_with_data(world)
    s1, url = world.snapshot(disk), world.target_url()
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
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    env, world = arm_faulty.env, faulty_world
    disk = disk_with_data(world)
    s1, url = world.snapshot(disk), world.target_url()
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
    rules(env)
    done = replicate(env, disk, url)
    assert done.code == 0, done.err
    (entry,) = done.doc["snapshots"]
    assert (entry["mode"], entry["base_snapshot_id"]) == ("diff", s1)
    world.assert_restore_point_equals(url, entry["restore_point"], s2)


def test_polls_throttled_beyond_the_retries_fail_and_revoke_the_grant(
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    """The grant took effect (only its status could not be read): the run revokes it."""
    env, world = arm_faulty.env, faulty_world
    disk = disk_with_data(world)
    s1, url = world.snapshot(disk), world.target_url()
    rules(env, throttle("poll", ARM_RETRIES + 1))
    failed = replicate(env, disk, url)
    assert failed.code == 1 and "throttled" in failed.doc["error"], failed.err
    assert requests(env)["revoke"] == 1
    world.assert_sas_free(s1)
    assert_nothing_written(world, url)
    rules(env)
    done = replicate(env, disk, url)
    assert done.code == 0, done.err
    world.assert_restore_point_equals(url, done.doc["snapshots"][0]["restore_point"], s1)


def test_a_failed_grant_names_arms_answer_uses_no_sas_and_writes_nothing(
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    env, world = arm_faulty.env, faulty_world
    disk = disk_with_data(world)
    s1, url = world.snapshot(disk), world.target_url()
    rules(env, {"on": "grant", "fail_operation": FAILURE})
    failed = replicate(env, disk, url)
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert f"{FAILURE['code']}: {FAILURE['message']}" in failed.doc["error"]
    assert "reported it Failed" in failed.doc["error"]
    assert requests(env).get("revoke", 0) == 0  # no SAS was handed out, so none is revoked
    assert_nothing_written(world, url)
    rules(env)
    done = replicate(env, disk, url)
    assert done.code == 0, done.err
    world.assert_restore_point_equals(url, done.doc["snapshots"][0]["restore_point"], s1)


def test_snapshot_now_waits_out_a_throttled_create(arm_faulty: EmulatorProcess, faulty_world: World) -> None:
    env, world = arm_faulty.env, faulty_world
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
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    env, world = arm_faulty.env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, throttle("snapshot-create", ARM_RETRIES + 1))
    failed = replicate(env, disk, url, "--snapshot-now")
    assert (failed.code, failed.doc["status"]) == (1, "failed"), failed.err
    assert "throttled" in failed.doc["error"]
    assert snapshots(world) == {}
    with world.target(url) as blob:
        assert not blob.exists()


@pytest.mark.parametrize(
    ("code", "exit_code", "status"),
    [("InternalDiskManagementError", 1, "failed"), ("SnapshotsLimitReached", 3, "limited")],
)
def test_the_snapshot_a_failed_create_leaves_is_deleted(
    arm_faulty: EmulatorProcess, faulty_world: World, code: str, exit_code: int, status: str
) -> None:
    """ARM leaves a failed create's snapshot in provisioningState Failed; the run took it, so it deletes
    it. A per-disk limit (SnapshotsLimitReached) is "retry later", anything else a failure."""
    env, world = arm_faulty.env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    rules(env, {"on": "snapshot-create", "fail_operation": {"code": code, "message": "It failed."}})
    failed = replicate(env, disk, url, "--snapshot-now")
    assert (failed.code, failed.doc["status"]) == (exit_code, status), failed.err
    assert f"{code}: It failed." in failed.doc["error"] and "Failed was deleted" in failed.doc["error"]
    assert requests(env)["snapshot-delete"] == 1
    assert snapshots(world) == {}
    with world.target(url) as blob:
        assert not blob.exists()


def test_a_failed_snapshot_is_never_a_source_nor_deleted(
    arm_faulty: EmulatorProcess, faulty_world: World
) -> None:
    """Someone else's create failed: its snapshot is left out of every run, and left where it is."""
    env, world = arm_faulty.env, faulty_world
    disk, url = disk_with_data(world), world.target_url()
    s1 = world.snapshot(disk)
    rules(env, {"on": "snapshot-create", "fail_operation": FAILURE})
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
