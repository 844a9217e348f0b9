"""End to end: a target blob that throttles beyond one request in flight (the emulator's link model,
replicator.emulator.middleware.linkmodel) is paced down from the first 503, and the run says so: its
`--json` entry gives the limit's lowest, highest and last value and the throttled count, one debug
`pacer` event per change draws the same trajectory, and the restore point holds the right bytes.

The blob's limits hold the run in a known state, not a timing: 4 requests/s and 0.3 s of backlog
admit one request at a time (0.25 s each), so of the first limit's 8 requests sent together all but
one are refused, and two in flight are refused within a round (the second arrives while the first is
queued), so no window of 8 clean requests can happen above one: the limit never grows past 2.

The run measures its CPU for real (engine.pacer.busy_time), and a busy machine cannot change the
outcome: a CPU-bound window only withholds growth at or above INITIAL, which no window here earns
(the first limit's window is throttled), and below INITIAL the CPU holds nothing.
"""

from __future__ import annotations

import itertools

from replicator.core import pacing
from replicator.devtools.disk_builder import control
from tests.e2e.world import MiB, World, pattern
from tests.logs import records

WRITES = 12  # scattered 4 KiB writes, 64 MiB apart: one Put Page From URL each (no gap merged)


def test_a_throttling_blob_is_paced_down_and_the_run_says_so(fresh_emulator, monkeypatch, replicate) -> None:
    emulator = fresh_emulator()
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    world = World(emulator.env)
    disk = world.create_disk("data", 1)
    world.write(disk, *[(i * 64 * MiB, pattern(i, 4096)) for i in range(WRITES)])
    snapshot = world.snapshot(disk)
    url = world.target_url()
    control(emulator.env, "link", {"blob_limits": True, "blob_iops": 4, "burst_seconds": 0.3})
    run = replicate(
        "--source", disk.id, "--target", url, "--json", "--log-level", "debug",
        "--concurrency", "16", "--max-attempts", "20",
        # nothing else at the target or the source while the writes run: no checkpoint, no count ahead
        "--checkpoint-seconds", "3600", "--progress-seconds", "3600",
    )  # fmt: skip
    control(emulator.env, "link", {"blob_limits": False})
    assert run.code == 0, run.err
    (entry,) = run.doc["snapshots"]
    world.assert_restore_point_equals(url, entry["restore_point"], snapshot)

    paced = entry["pacing"]
    assert paced["max_limit"] == pacing.INITIAL  # never grew: no clean window above one in flight
    assert paced["min_limit"] == 1 and paced["final_limit"] in (1, 2)
    assert paced["throttled"] >= pacing.INITIAL - 1  # the first limit's burst, all refused but one
    lines = records(run.err)
    busy_retries = [r for r in lines if r["event"] == "retry" and "ServerBusy" in r["error"]]
    assert len(busy_retries) == paced["throttled"] == entry["retries"]  # every 503 retried, only those
    assert paced["throttled"] <= control(emulator.env, "stats")["throttled"]

    changes = [(r["previous"], r["limit"]) for r in lines if r["event"] == "pacer"]
    assert changes[0] == (pacing.INITIAL, int(pacing.INITIAL * pacing.DECREASE))  # cut at the first 503
    assert all(after == before for (_, after), (before, _) in itertools.pairwise(changes))
    assert min(limit for _, limit in changes) == paced["min_limit"]
    assert changes[-1][1] == paced["final_limit"]
    assert all(r["level"] == "debug" for r in lines if r["event"] == "pacer")
    world.close()
