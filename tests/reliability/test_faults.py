"""Faults cost time, never data: 503 ServerBusy, 500 OperationTimedOut, dropped connections and
stalled answers on a seeded fraction of blob requests, full and diff copies, both copy modes."""

from __future__ import annotations

import pytest

from replicator.devtools.disk_builder import control
from replicator.emulator.middleware.faults import KINDS, FaultOptions, FaultPlan
from replicator.emulator.process import EmulatorProcess
from tests.e2e.world import World
from tests.helpers.cli_runs import FAST_RETRY, run
from tests.helpers.replication import change, check_points, scattered


def test_the_fault_stream_is_seeded() -> None:
    plan_a, plan_b = FaultPlan(FaultOptions(rate=0.3, seed=7)), FaultPlan(FaultOptions(rate=0.3, seed=7))
    a, b = [plan_a.draw() for _ in range(500)], [plan_b.draw() for _ in range(500)]
    assert a == b
    faulted = [k for k in a if k]
    assert 100 < len(faulted) < 200 and set(faulted) == set(KINDS)
    assert sum(plan_a.injected.values()) == len(faulted)


@pytest.mark.parametrize("bad", [{"rate": 2}, {"kinds": ["fire"]}, {"stall_seconds": -1}, {"colour": 1}])
def test_bad_fault_knobs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FaultOptions().updated(bad)


def _campaign(world: World, env: dict[str, str], *, seed: int, mode: str, rate: float) -> dict[str, int]:
    """A full copy of s1 and a diff to s2, each under faults; returns the retries of each."""
    disk = scattered(world, seed=seed)
    s1 = world.snapshot(disk)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", "--mode", mode, *FAST_RETRY)
    retries = {}
    for label in ("full", "diff"):
        control(env, "faults", {"rate": rate, "seed": seed * 10 + len(retries)})
        result = run(env, *args)
        injected = control(env, "faults", {"rate": 0})["injected"]
        assert result.code == 0, result.err
        entry = result.doc["snapshots"][-1]
        assert entry["mode"] == label
        retries[label] = entry["retries"]
        assert sum(injected.values()) > 0
        if label == "full":
            check_points(world, url, s1)
            change(world, disk, seed)
            s2 = world.snapshot(disk)
    check_points(world, url, s1, s2)
    world.assert_sas_free(s1, s2)
    return retries


def test_five_percent_faults_quick(faulty: EmulatorProcess, faulty_world: World) -> None:
    retries = _campaign(faulty_world, faulty.env, seed=1, mode="server", rate=0.05)
    assert sum(retries.values()) >= 1, "no fault reached a chunk write"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["server", "stream"])
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_five_percent_faults(faulty: EmulatorProcess, faulty_world: World, seed: int, mode: str) -> None:
    _campaign(faulty_world, faulty.env, seed=seed, mode=mode, rate=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_twenty_percent_of_one_kind(faulty: EmulatorProcess, faulty_world: World, kind: str) -> None:
    control(faulty.env, "faults", {"kinds": [kind]})
    try:
        _campaign(faulty_world, faulty.env, seed=5, mode="server", rate=0.2)
    finally:
        control(faulty.env, "faults", {"kinds": list(KINDS)})
