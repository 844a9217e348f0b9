"""--time-budget: a diff larger than one invocation finishes over several runs, each stopping cleanly
(exit 3, status "incomplete", checkpoint saved, nothing granted, lease released), byte-equal at the end."""

from __future__ import annotations

from tests.e2e.world import MiB, World, pattern

PIECES = 12  # 1 MiB changes, not adjacent: one op each, so a stopped run has done some, not all


def test_diff_finishes_over_several_budgeted_runs(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (0, pattern(0, MiB)))
    world.snapshot(disk)
    url = world.target_url()
    first = replicate("--source", disk.id, "--target", url, "--json")
    assert first.code == 0 and first.doc["status"] == "replicated", first.err
    world.write(disk, *[(i * 50 * MiB + 4096, pattern(100 + i, MiB)) for i in range(PIECES)])
    s2 = world.snapshot(disk)
    # 1 MiB/s over 12 MiB is about 12 s of copying; a 4 s budget (3 s before it stops feeding) stops
    # each run after a few pieces, with room for a slow start on a busy machine.
    args = ("--source", disk.id, "--target", url, "--json", "--concurrency", "1")
    args += ("--max-bandwidth", "1MiB", "--time-budget", "4", "--checkpoint-seconds", "0.2")
    checkpoints: list[int] = []
    for _ in range(12):
        run = replicate(*args)
        if run.code == 0:
            break
        assert run.code == 3, run.err
        assert run.doc["status"] == "incomplete" and "Traceback" not in run.err
        # the same shape as a success, and it says how far the snapshot got and how old the replica is
        assert run.doc.keys() == first.doc.keys()
        (stopped,) = run.doc["snapshots"]
        assert stopped["snapshot_id"] == s2 and stopped["committed"] is False
        assert stopped["remaining_bytes"] is not None and stopped["copied_bytes"] <= PIECES * MiB
        assert stopped["seconds"] > 0 and stopped["requests"] >= stopped["copied_bytes"] // MiB
        assert run.doc["newest_restore_point"] == first.doc["newest_restore_point"]
        assert run.doc["lag_seconds"] >= first.doc["lag_seconds"]
        assert world.snapshot_state(s2) != "ActiveSAS"
        with world.target(url) as blob:
            props = blob.get_blob_properties()
        assert props.lease.state == "available"
        checkpoints.append(int(props.metadata["inprogress_checkpoint"]))
    else:
        raise AssertionError(f"no run finished; checkpoints {checkpoints}")
    assert len(checkpoints) >= 2, "the budget should have needed several runs"
    assert checkpoints == sorted(checkpoints) and checkpoints[0] > 0
    entry = run.doc["snapshots"][0]
    assert entry["mode"] == "diff" and entry["resumed_from"] == checkpoints[-1]
    world.assert_restore_point_equals(url, entry["restore_point"], s2)
    assert len(world.restore_points(url)) == 2
