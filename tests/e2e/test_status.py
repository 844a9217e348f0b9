"""`replicate status` end to end through the real CLI: a fleet (fresh, stale, unprotected; an
unreadable target), single targets and their exit codes, and a run held in place mid-copy.

Nothing here waits for time to pass: a stale replica holds a snapshot created with the emulator's
clock set back two days (World.dated_back), and the run in progress is held by its own copy hook,
which runs `status` in a child process while the run's event loop waits on it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from replicator.target.page_blob import PageBlobTarget
from tests import envelope, logs
from tests.e2e.test_vm import prefix_url, vm_world
from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.cli_runs import Run, cli_process

DAY = 86400


def _replicated(
    world: World, replicate: Callable[..., Run], name: str, *, days_old: float = 0
) -> tuple[Disk, str, str]:
    """A disk with one snapshot (created `days_old` days ago) replicated into a new target."""
    disk = world.create_disk(name, 1)
    world.write(disk, (4 * MiB, pattern(len(name), MiB)))
    if days_old:
        with world.dated_back(days_old * DAY):
            snap = world.snapshot(disk, f"{name}-snap")
    else:
        snap = world.snapshot(disk, f"{name}-snap")
    url = world.target_url(blob=f"{name}.vhd")
    done = replicate("--source", disk.id, "--target", url)
    assert done.code == 0, done.err
    return disk, snap, url


def _by_target(doc: dict) -> dict[str, dict]:
    return {t["target"]: t for t in doc["targets"]}


def test_a_fleet_of_fresh_stale_and_unprotected(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_disk, fresh_snap, fresh = _replicated(world, replicate, "fresh")
    stale_disk, stale_snap, stale = _replicated(world, replicate, "stale", days_old=2)
    bare = world.create_disk("bare", 1)  # no incremental snapshot, never replicated
    unprotected = world.target_url(blob="bare.vhd")
    jobs = [(fresh_disk.id, fresh), (stale_disk.id, stale), (bare.id, unprotected)]
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps([{"source": s, "target": t} for s, t in jobs]))

    table = replicate("status", "--max-age", "26h")
    assert table.code == 4, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:2] == ["target", "verdict"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows[fresh][1] == "fresh" and rows[stale][1] == "stale" and rows[unprotected][1] == "unprotected"
    assert rows[fresh][2] == "fresh-snap" and rows[fresh][3].endswith("Z")
    assert "2d 0h" in " ".join(rows[stale]) and rows[unprotected][-2:] == ["0/500", "0/5"]
    assert f"{stale}: stale: the lag 2d 0h exceeds the maximum age 1d 2h." in lines
    assert (
        f"{unprotected}: unprotected: the target blob does not exist: nothing can be restored; the source "
        "disk has no incremental snapshot: no run can add a restore point (take one, or schedule runs with "
        "--snapshot-now; snapshots kept in another resource group are found with --snapshot-search "
        "subscription)."
    ) in lines
    assert lines[-1] == "3 targets: 1 fresh, 1 stale, 1 unprotected (maximum age 1d 2h)"

    probe = replicate("status", "--max-age", "26h", "--json")
    assert probe.code == 4, probe.err
    doc = probe.doc
    assert (doc["command"], doc["status"], doc["exit_code"]) == ("status", "unprotected", 4)
    assert doc["max_age_seconds"] == 26 * 3600
    assert doc["error"].startswith(f"2 of 3 targets not fresh: {unprotected} is unprotected")
    targets = _by_target(doc)
    assert [t["verdict"] for t in doc["targets"]] == ["fresh", "stale", "unprotected"]
    for url, snap in ((fresh, fresh_snap), (stale, stale_snap)):
        entry = targets[url]
        assert entry["newest_restore_point"]["snapshot_id"] == snap
        assert entry["newest_source_snapshot"]["id"] == snap and entry["newest_source_snapshot_replicated"]
        assert entry["lease"] == "free" and entry["in_progress"] is None and entry["restore_points"] == 1
        assert entry["source_snapshots"] == {"count": 1, "limit": 500}
        assert entry["active_grants"] == {"count": 0, "limit": 5}
    assert targets[fresh]["lag_seconds"] < 600
    assert 2 * DAY - 600 < targets[stale]["lag_seconds"] < 2 * DAY + 600
    bare_entry = targets[unprotected]
    assert bare_entry["source"] == bare.id and bare_entry["newest_restore_point"] is None
    assert bare_entry["source_snapshots"] == {"count": 0, "limit": 500} and bare_entry["lease"] is None

    # Without the unprotected one the stale one decides: exit 5. With a larger maximum age: exit 0.
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps([{"source": s, "target": t} for s, t in jobs[:2]]))
    assert replicate("status", "--max-age", "26h", "--json").doc["status"] == "stale"
    monkeypatch.setenv("REPLICATOR_MAX_AGE", "3d")
    everything_fresh = replicate("status", "--json")
    assert everything_fresh.code == 0 and everything_fresh.doc["error"] is None


def test_a_single_target_fresh_then_stale_by_its_exit_code(world: World, replicate, monkeypatch) -> None:
    disk, s1, url = _replicated(world, replicate, "single")
    world.write(disk, (8 * MiB, pattern(9, MiB)))
    s2 = world.snapshot(disk, "single-snap2")  # newer than what the target holds
    fresh = replicate("status", "--target", url, "--max-age", "1h", "--json")
    assert fresh.code == 0, fresh.err
    (entry,) = fresh.doc["targets"]
    assert (fresh.doc["status"], entry["verdict"]) == ("fresh", "fresh")
    assert entry["source"] == disk.id
    assert entry["newest_restore_point"]["snapshot_id"] == s1
    assert entry["newest_source_snapshot"]["id"] == s2 and entry["newest_source_snapshot_replicated"] is False
    assert entry["reason"].endswith("the newest snapshot single-snap2 is not replicated yet.")
    assert entry["source_snapshots"]["count"] == 2

    _, _, old = _replicated(world, replicate, "aged", days_old=1)
    monkeypatch.setenv("REPLICATOR_MAX_AGE", "12h")
    stale = replicate("status", "--target", old)
    assert stale.code == 5, stale.err
    assert stale.out.splitlines()[1].split()[:2] == [old, "stale"]
    assert "the lag 1d 0h exceeds the maximum age 12h 0m." in stale.out


def test_several_targets_a_blob_and_a_vm_prefix_are_each_judged(world: World, replicate) -> None:
    """`--target` given several times (one of them twice): each target once, in the order given; a
    VM's prefix by its newest complete group. The other commands take one (tests/unit/test_help.py)."""
    _, _, blob = _replicated(world, replicate, "several")
    vm, _ = vm_world(world)
    prefix = prefix_url(world)
    assert replicate("--source", vm, "--target", prefix, "--snapshot-now").code == 0
    run = replicate(
        "status", "--target", prefix, "--target", blob, "--target", prefix, "--max-age", "1h", "--json"
    )
    assert run.code == 0, run.err
    assert [(t["target"], t["verdict"]) for t in run.doc["targets"]] == [(prefix, "fresh"), (blob, "fresh")]
    table = replicate("status", "--target", blob, "--target", prefix, "--max-age", "1h")
    assert [line.split()[:2] for line in table.out.splitlines()[1:3]] == [[blob, "fresh"], [prefix, "fresh"]]


def test_an_unreadable_target_is_unknown_and_the_others_judged(world: World, replicate, monkeypatch) -> None:
    disk, _, fresh = _replicated(world, replicate, "readable")
    nowhere = "https://127.0.0.1:9/acct/ccc/gone.vhd"  # the discard port: nothing listens
    monkeypatch.setenv(
        "REPLICATOR_JOBS",
        json.dumps([{"source": disk.id, "target": fresh}, {"source": disk.id, "target": nowhere}]),
    )
    run = replicate("status", "--max-age", "1h", "--json")
    assert run.code == 1, run.err
    assert run.doc["status"] == "unknown"
    targets = _by_target(run.doc)
    assert targets[fresh]["verdict"] == "fresh"
    assert targets[nowhere]["verdict"] == "unknown"
    assert (
        targets[nowhere]["error"].startswith("Cannot reach the target endpoint")
        and "Traceback" not in run.err
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--max-age", "soon"], {}, "--max-age: expected a duration like 26h, 90m, 2d, 1d12h or 3600"),
        (["--max-age", "0"], {}, "--max-age: the duration must be more than zero"),
        ([], {"REPLICATOR_MAX_AGE": "-1h"}, "REPLICATOR_MAX_AGE (environment variable): expected a duration"),
        (["--target", "https://x.blob.core.windows.net/c/b"], {}, "--max-age is required"),
        (["--max-age", "1h"], {}, "nothing to check: give --target"),
        (
            ["--max-age", "1h"],
            {"REPLICATOR_JOBS": '[{"source": "d", "target": "ftp://x"}]'},
            "--target must be a blob URL",
        ),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    replicate, monkeypatch, args: list[str], env: dict, says: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    run = replicate("status", *args, "--json")
    assert run.code == 2
    assert run.doc["status"] == "bad input" and run.doc["error"].startswith(says)
    (line,) = logs.records(run.err)  # one line, a JSON `exit` record off a terminal
    assert line["event"] == "exit" and line["message"].startswith("replicate status: error: ")


CHUNKS = 24  # 1 MiB writes spread over the disk: the diff has enough ops to stop in the middle of


def test_a_run_in_progress_shows_its_checkpoint_lease_and_grants(
    world: World, replicate, emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk, s1, url = _replicated(world, replicate, "busy")
    world.write(disk, *[(i * 40 * MiB + 512 * i, pattern(i, MiB)) for i in range(CHUNKS)])
    s2 = world.snapshot(disk, "busy-snap2")
    real_copy = PageBlobTarget.copy_from_url
    calls = 0
    seen: dict[str, object] = {}

    async def held_copy(self: PageBlobTarget, op, source_url: str, source_auth: str | None = None) -> None:
        """At the middle op: wait until the checkpoint names this op's start (with one worker, no
        other checkpoint is written until it completes), then run `status` while the loop waits."""
        nonlocal calls
        calls += 1
        if calls == CHUNKS // 2:
            deadline = time.monotonic() + 60
            while True:
                meta = (await self.client.get_blob_properties()).metadata
                if int(meta.get("inprogress_checkpoint", "0")) == op.range.start:
                    break
                assert time.monotonic() < deadline, "the checkpoint never reached the held op"
                await asyncio.sleep(0.05)
            seen["checkpoint"] = op.range.start
            seen["total"] = int(meta["inprogress_total_bytes"])
            probe = cli_process(emulator_env, "status", "--target", url, "--max-age", "1h", "--json")
            out, err = probe.communicate(timeout=120)
            seen["code"], seen["doc"], seen["err"] = probe.returncode, envelope.parse(out), err
        await real_copy(self, op, source_url, source_auth)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", held_copy)
    done = replicate(
        "--source", disk.id, "--target", url, "--concurrency", "1", "--checkpoint-seconds", "0.1"
    )
    assert done.code == 0, done.err

    assert seen["code"] == 0, seen["err"]
    (entry,) = seen["doc"]["targets"]  # type: ignore[index]
    assert entry["verdict"] == "fresh" and entry["lease"] == "held"
    assert entry["newest_restore_point"]["snapshot_id"] == s1
    assert entry["newest_source_snapshot"]["id"] == s2 and entry["newest_source_snapshot_replicated"] is False
    assert entry["in_progress"]["snapshot_id"] == s2 and entry["in_progress"]["mode"] == "diff"
    assert entry["in_progress"]["running"] is True
    assert entry["in_progress"]["checkpoint"] == seen["checkpoint"] > 0
    assert entry["in_progress"]["total_bytes"] == seen["total"] == 1024 * MiB + 512
    assert entry["active_grants"] == {"count": 2, "limit": 5}  # the diff's base and current snapshots

    after = replicate("status", "--target", url, "--max-age", "1h", "--json")
    (entry,) = after.doc["targets"]
    assert after.code == 0 and entry["in_progress"] is None and entry["lease"] == "free"
    assert entry["newest_source_snapshot_replicated"] is True and entry["restore_points"] == 2
    assert entry["active_grants"] == {"count": 0, "limit": 5}
