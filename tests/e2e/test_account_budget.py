"""End to end: several runs in one process (devtools.bench.concurrent, the fleet's library entry) write
into one storage account whose account limit (the emulator's link model) is below the sum of its
blobs' limits. Told the account's budget (requests/s, or ingress bytes/s for runs of 1 MiB writes),
they share it and the account refuses under 1 % of their requests; not told, the account's own 503s
(Azure's "Operations per second is over the account limit.") cut the budget they share. Either way
every restore point holds its snapshot's bytes.

The limits are counts, not timings: each blob serves 100 requests/s, the account 60 with a second of
backlog; three runs of 40 scattered writes each (one Put Page From URL per write) could send 300/s.
"""

from __future__ import annotations

from typing import Any

import pytest

from replicator.cli import replicate_cmd
from replicator.devtools.bench.concurrent import replicate_all
from replicator.devtools.disk_builder import control
from tests.e2e.world import MiB, World, pattern

RUNS = 3
WRITES = 40  # scattered 4 KiB writes, 32 MiB apart: one Put Page From URL each (no gap merged)
ACCOUNT_IOPS = 60
LIMITS = {
    "blob_limits": True,
    "blob_iops": 100,
    "account_limits": True,
    "account_iops": ACCOUNT_IOPS,
    "burst_seconds": 1.0,
}


def _jobs(world: World, length: int = 4096) -> list[tuple[str, str, str]]:
    """(disk ID, target URL, snapshot ID) of each run: a disk of its own, a blob of its own, one account;
    WRITES writes of `length` bytes each, 32 MiB apart."""
    jobs = []
    for run in range(RUNS):
        disk = world.create_disk(f"data{run}", 2)
        world.write(disk, *[(i * 32 * MiB, pattern(run * WRITES + i, length)) for i in range(WRITES)])
        jobs.append((disk.id, world.target_url(), world.snapshot(disk)))
    return jobs


async def _replicate(jobs: list[tuple[str, str, str]], *flags: str) -> list[dict[str, Any]]:
    configs = [
        replicate_cmd.load(["--source", disk, "--target", url, "--max-attempts", "30", *flags])
        for disk, url, _ in jobs
    ]
    return [run.to_json() for run in await replicate_all(configs)]


@pytest.fixture
def world(fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = fresh_emulator()
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    made = World(emulator.env)
    made.emulator_env = emulator.env  # type: ignore[attr-defined]
    yield made
    made.close()


async def test_runs_told_the_accounts_budget_share_it_with_under_one_percent_refused(world: World) -> None:
    env = world.emulator_env  # type: ignore[attr-defined]
    jobs = _jobs(world)
    control(env, "stats/reset", method="POST")
    control(env, "link", LIMITS)
    runs = await _replicate(jobs, "--account-requests", str(ACCOUNT_IOPS))
    control(env, "link", {"blob_limits": False, "account_limits": False})

    stats = control(env, "stats")
    account = stats["accounts"][world.account]
    refused = sum(account["throttled"].values())
    print("TOLD", account, [r["snapshots"][0]["account_budget"] for r in runs])
    assert account["requests"] >= RUNS * WRITES
    assert refused < 0.01 * (account["requests"] + refused)  # no 503 storm: under 1 %
    assert all(blob["throttled"] == 0 for blob in stats["blobs"].values())  # no blob was the limit
    budgets = [entry["account_budget"] for run in runs for entry in run["snapshots"]]
    assert len(budgets) == RUNS and all(b["account"].endswith(world.account) for b in budgets)
    assert all(b["requests_per_second"] <= ACCOUNT_IOPS for b in budgets)
    assert sum(b["waits"] for b in budgets) > 0  # the budget, not the account, held them back
    for (_, url, snapshot), run in zip(jobs, runs, strict=True):
        (entry,) = run["snapshots"]
        world.assert_restore_point_equals(url, entry["restore_point"], snapshot)


async def test_runs_told_the_accounts_ingress_share_it_too(world: World) -> None:
    env = world.emulator_env  # type: ignore[attr-defined]
    jobs = _jobs(world, length=1 * MiB)  # 1 MiB writes: 40 MiB each, the ingress binds
    control(env, "stats/reset", method="POST")
    control(env, "link", {"account_limits": True, "account_ingress_mibps": 16, "burst_seconds": 1.0})
    runs = await _replicate(jobs, "--account-ingress", "16MiB")
    control(env, "link", {"account_limits": False})

    account = control(env, "stats")["accounts"][world.account]
    assert account["ingress_bytes"] >= RUNS * WRITES * MiB  # Put Page From URL's ranges count
    assert account["throttled"] == {}
    budgets = [entry["account_budget"] for run in runs for entry in run["snapshots"]]
    assert all(b["ingress_bytes_per_second"] == 16 * MiB for b in budgets)
    assert sum(b["waits"] for b in budgets) > 0
    for (_, url, snapshot), run in zip(jobs, runs, strict=True):
        (entry,) = run["snapshots"]
        world.assert_restore_point_equals(url, entry["restore_point"], snapshot)


async def test_runs_not_told_are_cut_down_by_the_accounts_own_503s(world: World) -> None:
    env = world.emulator_env  # type: ignore[attr-defined]
    jobs = _jobs(world)
    control(env, "stats/reset", method="POST")
    control(env, "link", LIMITS | {"burst_seconds": 0.2})
    runs = await _replicate(jobs)  # the budget starts at a standard account's 20,000 requests/s
    control(env, "link", {"blob_limits": False, "account_limits": False})

    refused = control(env, "stats")["accounts"][world.account]["throttled"]
    budgets = [entry["account_budget"] for run in runs for entry in run["snapshots"]]
    seen = sum(b["throttled_by"].get("requests", 0) for b in budgets)
    print("NOT", refused, budgets)
    assert seen > 0 and seen <= refused["requests"]  # told apart from a blob's 503 by the message
    assert min(b["lowest_requests_per_second"] for b in budgets) < 20_000  # and the shared budget cut
    assert all(entry["pacing"]["throttled"] == 0 for run in runs for entry in run["snapshots"])
    for (_, url, snapshot), run in zip(jobs, runs, strict=True):
        (entry,) = run["snapshots"]
        world.assert_restore_point_equals(url, entry["restore_point"], snapshot)
