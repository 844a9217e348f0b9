"""A run SIGKILLed at seeded random moments of a diff: the rerun (without any manual lease break)
completes byte-equal, earlier restore points are unchanged, and the killed attempt leaves no
restore point of its own (one that it committed just before dying is adopted, not duplicated)."""

from __future__ import annotations

import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from replicator.emulator.process import EmulatorProcess
from tests.e2e.world import World
from tests.helpers.cli_runs import FAST_RETRY, cli_process, run
from tests.helpers.replication import change, check_points, scattered

KILL_POINTS = 12
SEED = 20240601


def _kill_once(env: dict[str, str], delay: float, index: int) -> dict[str, object]:
    world = World(env)
    try:
        disk = scattered(world, seed=index)
        s1 = world.snapshot(disk)
        url = world.target_url()
        args = ("--source", disk.id, "--target", url, "--json", *FAST_RETRY)
        assert run(env, *args).code == 0
        [before] = check_points(world, url, s1)
        change(world, disk, index, chunks=24)
        s2 = world.snapshot(disk)
        victim = cli_process(env, *args, "--max-bandwidth", "2MiB", "--concurrency", "2")
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        left = [p.metadata["snapshot_id"] for p in world.restore_points(url)]
        assert left in ([s1], [s1, s2]), left
        started = time.monotonic()
        rerun = run(env, *args)  # default --lease-wait: outlasts the killed run's lease
        waited = time.monotonic() - started
        assert rerun.code == 0, rerun.err
        points = check_points(world, url, s1, s2)
        assert points[0].snapshot == before.snapshot, "an earlier restore point changed"
        world.assert_sas_free(s1, s2)
        return {"delay": delay, "killed_after_commit": len(left) == 2, "rerun_seconds": round(waited, 1)}
    finally:
        world.close()


@pytest.mark.slow
def test_sigkill_at_random_moments(
    faulty: EmulatorProcess, faulty_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    delays = sorted(round(rng.uniform(0.5, 7.0), 2) for _ in range(KILL_POINTS))
    with ThreadPoolExecutor(KILL_POINTS) as pool:
        outcomes = list(pool.map(_kill_once, [faulty.env] * KILL_POINTS, delays, range(KILL_POINTS)))
    with capsys.disabled():
        print(f"\nSIGKILL points: {outcomes}")
    assert len(outcomes) == KILL_POINTS
