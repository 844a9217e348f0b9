"""End to end: `replicate drill` through the real CLI (a child process) against the emulator.

A drill that passes (byte-exact), records itself on the target and shows in `status`; a drill whose
restored disk reads back different bytes (the emulator's `corrupt_import` fault rule,
docs/emulator.md "ARM faults") exits 6; a drill stopped by SIGINT while ARM holds its grant. Every
one deletes its scratch disk, and only that disk.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.arm_faults import requests, rules, throttle
from tests.helpers.cli_runs import Run, cli_process, finish, on_terminal, run
from tests.logs import events

SCRATCH = "drills"


@pytest.fixture
def faulty_world(arm_faulty_env: dict[str, str]) -> Iterator[World]:
    """A World on the private emulator whose ARM fault rules these tests set (tests/conftest.py)."""
    w = World(arm_faulty_env)
    yield w
    w.close()


def _replicated(world: World, env: dict[str, str]) -> tuple[Disk, str]:
    disk = world.create_disk("app", 1, sku="StandardSSD_LRS", properties={"osType": "Linux"})
    world.write(disk, (0, pattern(1, 2 * MiB)), (600 * MiB, pattern(2, 3 * MiB)), (1023 * MiB, MiB))
    world.snapshot(disk, "s1")
    url = world.target_url()
    done = run(env, "--source", disk.id, "--target", url, "--json")
    assert done.code == 0, done.err
    return disk, url


def _drill(world: World, env: dict[str, str], url: str, *extra: str) -> Run:
    return run(
        env,
        "drill",
        "--target",
        url,
        "--resource-group",
        SCRATCH,
        "--location",
        world.location,
        "--json",
        *extra,
    )


def _scratch_disks(world: World) -> list[str]:
    return [d.name for d in world.compute.disks.list_by_resource_group(SCRATCH)]


def _status(env: dict[str, str], url: str) -> Run:
    return run(env, "status", "--target", url, "--max-age", "1d", "--json")


def test_a_drill_passes_records_itself_and_status_shows_it(faulty_world: World, arm_faulty_env) -> None:
    world, env = faulty_world, arm_faulty_env
    disk, url = _replicated(world, env)
    bystander = world.create_disk("keep-me", 1)  # the drill deletes only its own disk
    done = _drill(world, env, url)
    assert done.code == 0, done.err
    doc = done.doc
    assert (doc["status"], doc["result"]) == ("passed", "passed")
    assert doc["comparison"]["first_mismatch"] is None and doc["comparison"]["bytes_compared"] >= 5 * MiB
    assert 0 < doc["rto_ready_seconds"] <= doc["rto_verified_seconds"]
    assert doc["scratch_disk_deleted"] and doc["recorded"]
    assert "/resourceGroups/drills/providers/Microsoft.Compute/disks/drill-" in doc["disk_id"]
    assert _scratch_disks(world) == []
    assert world.compute.disks.get(world.rg, bystander.name).name == bystander.name
    assert [e["result"] for e in events(done.err, "drill_done")] == ["passed"]

    status = _status(env, url)
    last = status.doc["targets"][0]["last_drill"]
    assert (last["result"], last["restore_point"]) == ("passed", doc["restore_point"]["id"])
    assert last["rto_verified_seconds"] == pytest.approx(doc["rto_verified_seconds"], abs=0.001)
    human = run(env, "status", "--target", url, "--max-age", "1d")
    assert "last drill passed" in human.out, human.out

    # The next replication keeps the record: it is the target's, not the run's.
    world.write(disk, (5 * MiB, pattern(3, MiB)))
    world.snapshot(disk, "s2")
    again = run(env, "--source", disk.id, "--target", url, "--json")
    assert again.code == 0, again.err
    assert _status(env, url).doc["targets"][0]["last_drill"]["result"] == "passed"


def test_on_a_terminal_a_drill_says_its_result_once_with_the_rto_as_measured(
    faulty_world: World, arm_faulty_env
) -> None:
    """The result line goes to stdout, not also to the terminal's log lines; an RTO under a second
    reads as measured ("0.4 s"), never "0 s"."""
    world, env = faulty_world, arm_faulty_env
    _, url = _replicated(world, env)
    where = ("--resource-group", SCRATCH, "--location", world.location)
    done = on_terminal(env, "drill", "--target", url, *where)
    assert done.code == 0, done.err
    [line] = done.out.splitlines()
    assert line.startswith("drill passed: restore point "), line
    assert re.search(r"; disk ready in \d+\.\d s, verified in \d+\.\d s$", line), line
    assert "drill passed" not in done.err and "deleted the drill's disk" in done.err, done.err
    assert "{" not in done.err  # human lines on a terminal, not JSON


def test_a_drill_reading_back_different_bytes_exits_6_and_deletes_its_disk(
    faulty_world: World, arm_faulty_env
) -> None:
    world, env = faulty_world, arm_faulty_env
    _, url = _replicated(world, env)
    rules(env, {"on": "disk-create", "corrupt_import": 600 * MiB + 7})
    failed = _drill(world, env, url)
    assert failed.code == 6, failed.err
    doc = failed.doc
    assert (doc["status"], doc["result"], doc["exit_code"]) == ("mismatch", "mismatch", 6)
    assert doc["comparison"]["first_mismatch"] == 600 * MiB + 7
    assert "differs from it at byte 629145607" in doc["error"]
    assert doc["scratch_disk_deleted"] and _scratch_disks(world) == []
    assert _status(env, url).doc["targets"][0]["last_drill"]["result"] == "mismatch"
    rules(env)
    assert _drill(world, env, url).code == 0  # the replica itself was never the problem


def test_an_interrupted_drill_revokes_and_deletes_its_disk(faulty_world: World, arm_faulty_env) -> None:
    """SIGINT while ARM throttles the disk grant (the drill waits out its Retry-After): the drill
    revokes, deletes its disk and exits 130; nothing is recorded for a drill that did not finish."""
    world, env = faulty_world, arm_faulty_env
    _, url = _replicated(world, env)
    rules(env, throttle("grant", times=1, retry_after=120))
    proc = cli_process(
        env, "drill", "--target", url, "--resource-group", SCRATCH, "--location", world.location, "--json"
    )
    deadline = time.monotonic() + 120
    while requests(env).get("grant", 0) < 1:  # the drill's disk exists and its grant was refused
        assert proc.poll() is None and time.monotonic() < deadline, "the drill never asked for its grant"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stopped = finish(proc, timeout=120)
    assert stopped.code == 130, stopped.err
    assert stopped.doc["status"] == "interrupted"
    assert _scratch_disks(world) == []
    assert requests(env).get("revoke", 0) >= 1
    assert _status(env, url).doc["targets"][0]["last_drill"] is None


def test_bad_input_creates_nothing(faulty_world: World, arm_faulty_env) -> None:
    world, env = faulty_world, arm_faulty_env
    _, url = _replicated(world, env)
    for args, words in (
        (("--restore-point", "nope"), "no restore point 'nope'"),
        (("--zone", "9"), "--zone must be"),
        (("--resource-group", "bad/name"), "resource group name"),
    ):
        refused = _drill(world, env, url, *args)
        assert refused.code == 2 and words in refused.err, (args, refused.err)
    assert _scratch_disks(world) == []
