"""Premium page-blob targets end to end through the real CLI: the run document names the account kind,
the blob's tier and its limits and the pacer's ceiling; a premium run commits one restore point (the
ten-minute snapshot rule); the 100-snapshot limit is checked before copying (exit 2 naming
`replicate prune --keep N`), counted by `list` and `status` (warned from 90 on) and kept by `prune`,
which never deletes a snapshot the replicator did not take; a refused commit says when to rerun.

The account is made premium through the emulator's control (/_emulator/accounts); its snapshot
interval is set to 0 where a test takes several restore points, so nothing here waits for time.
"""

from __future__ import annotations

from replicator.devtools.disk_builder import control
from tests.e2e.world import MiB, World, pattern

GiB_DISK = 1023  # a P30 blob (5,000 requests/s, 200 MB/s); a 1 TiB disk's export (its 512-byte footer
# included) is one page past 1 TiB: a P40 blob


def _premium(world: World, interval: float = 0) -> None:
    body = {"account": world.account, "premium": True, "snapshot_interval_seconds": interval}
    control(world.env, "accounts", body)


def test_a_premium_target_runs_at_its_tier_and_says_so(world: World, replicate) -> None:
    _premium(world)
    disk = world.create_disk("prem", GiB_DISK)
    world.write(disk, *[(i * 256 * MiB, pattern(i, 64 * 1024)) for i in range(6)])
    older = world.snapshot(disk, "prem-1")
    world.write(disk, (8 * MiB, pattern(99, MiB)))
    newest = world.snapshot(disk, "prem-2")
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    assert run.code == 0, run.err
    account = run.doc["target_account"]
    assert (account["sku"], account["kind"], account["premium"]) == ("Premium_LRS", "StorageV2", True)
    assert account["tier"] == {
        "tier": "P30",
        "max_bytes": 1024**4,
        "requests_per_second": 5000,
        "mb_per_second": 200,
    }
    assert account["pacer_ceiling"] == 192  # 5,000/s x 128 ms, held to the process's connections
    assert account["snapshots"] == {"held": 1, "limit": 100, "room": 99}
    assert any("one snapshot every 10 minutes" in note for note in account["notes"])
    (entry,) = run.doc["snapshots"]  # the newest only: a premium blob takes one snapshot per run
    assert entry["snapshot_id"] == newest and entry["pacing"]["max_limit"] >= 24
    world.assert_restore_point_equals(url, entry["restore_point"], newest)
    assert older not in [e["snapshot_id"] for e in run.doc["snapshots"]]

    given = replicate("--source", disk.id, "--target", world.target_url(), "--json", "--concurrency", "16")
    assert given.code == 0, given.err
    assert given.doc["target_account"]["pacer_ceiling"] == 16  # --concurrency: the operator's word


def test_a_standard_target_says_standard(world: World, replicate) -> None:
    disk = world.create_disk("std", 1)
    world.write(disk, (0, pattern(1, MiB)))
    world.snapshot(disk)
    run = replicate("--source", disk.id, "--target", world.target_url(), "--json")
    assert run.code == 0, run.err
    account = run.doc["target_account"]
    assert (account["sku"], account["premium"], account["tier"]) == ("Standard_LRS", False, None)
    assert (account["pacer_ceiling"], account["snapshots"]) == (64, None)


def test_the_snapshot_limit_is_kept_by_run_prune_list_and_status(
    world: World, replicate, monkeypatch
) -> None:
    _premium(world)
    disk = world.create_disk("full", 1)
    world.write(disk, (0, pattern(1, MiB)))
    world.snapshot(disk, "full-1")
    url = world.target_url()
    assert (first := replicate("--source", disk.id, "--target", url)).code == 0, first.err
    with world.target(url) as blob:
        for _ in range(98):  # someone else's snapshots: they count, and are never pruned
            blob.create_snapshot()
    world.write(disk, (MiB, pattern(2, MiB)))
    world.snapshot(disk, "full-2")
    second = replicate("--source", disk.id, "--target", url, "--json")
    assert second.code == 0, second.err  # 99 + 1: the hundredth fits
    assert second.doc["target_account"]["snapshots"] == {"held": 100, "limit": 100, "room": 0}

    world.write(disk, (2 * MiB, pattern(3, MiB)))
    third_snapshot = world.snapshot(disk, "full-3")
    refused = replicate("--source", disk.id, "--target", url, "--json")
    assert refused.code == 2, refused.err
    assert "holding 100 of its 100 snapshots, 98 of them not taken by the replicator" in refused.doc["error"]
    assert "replicate prune --target URL --keep 1" in refused.doc["error"]
    assert len(world.restore_points(url)) == 100  # nothing was committed (nor copied)

    listed = replicate("list", "--target", url, "--json")
    assert listed.doc["snapshot_limit"] == {"held": 100, "limit": 100, "room": 0}
    assert sum(not p["taken_by_replicator"] for p in listed.doc["restore_points"]) == 98
    assert "premium page blob: 100 of its 100 snapshots (98 not taken by the replicator" in (
        replicate("list", "--target", url).out
    )

    monkeypatch.setenv("REPLICATOR_JOBS", f'[{{"source": "{disk.id}", "target": "{url}"}}]')
    status = replicate("status", "--max-age", "1h", "--json")
    (target,) = status.doc["targets"]
    assert target["target_snapshots"] == {"held": 100, "limit": 100, "room": 0, "near_limit": True}
    assert "prune old restore points" in target["warning"] and target["restore_points"] == 2

    pruned = replicate("prune", "--target", url, "--keep", "1", "--yes", "--json")
    assert pruned.code == 0, pruned.err
    assert [p["source_snapshot"]["name"] for p in pruned.doc["deleted"]] == ["full-1"]
    assert pruned.doc["snapshot_limit"] == {"held": 99, "limit": 100, "room": 1}
    assert sum(1 for p in world.restore_points(url) if "snapshot_id" not in p.metadata) == 98  # all kept

    again = replicate("--source", disk.id, "--target", url, "--json")
    assert again.code == 0, again.err
    (entry,) = again.doc["snapshots"]
    world.assert_restore_point_equals(url, entry["restore_point"], third_snapshot)


def test_a_refused_commit_says_when_to_rerun_and_the_rerun_commits(world: World, replicate) -> None:
    _premium(world, interval=600)  # Azure's ten minutes
    disk = world.create_disk("rate", 1)
    world.write(disk, (0, pattern(1, MiB)))
    world.snapshot(disk, "rate-1")
    url = world.target_url()
    assert (first := replicate("--source", disk.id, "--target", url)).code == 0, first.err
    world.write(disk, (4 * MiB, pattern(2, 2 * MiB)))
    second_snapshot = world.snapshot(disk, "rate-2")
    limited = replicate("--source", disk.id, "--target", url, "--json")
    assert limited.code == 3, limited.err
    assert "one snapshot every 10 minutes (409 SnapshotOperationRateExceeded)" in limited.doc["error"]
    assert len(world.restore_points(url)) == 1

    _premium(world, interval=0)  # ten minutes later
    rerun = replicate("--source", disk.id, "--target", url, "--json")
    assert rerun.code == 0, rerun.err
    (entry,) = rerun.doc["snapshots"]
    world.assert_restore_point_equals(url, entry["restore_point"], second_snapshot)


def test_the_emulator_holds_each_blob_to_its_own_limits(fresh_emulator, monkeypatch, replicate) -> None:
    """The link model at 4 requests/s per blob with 0.3 s of backlog: a standard target answers the
    run's first burst with 503s (the pacer's e2e test), a P30 target in a premium account serves the
    same burst at its 5,000/s without one. Counted in the target blob's own 503s, not timed (the copy
    source, a standard snapshot, is held to 4/s in both runs and refuses for itself)."""
    emulator = fresh_emulator()
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    world = World(emulator.env)
    disk = world.create_disk("limits", GiB_DISK)
    world.write(disk, *[(i * 64 * MiB, pattern(i, 4096)) for i in range(12)])
    snapshot = world.snapshot(disk)
    _premium(world)
    premium_url = world.target_url()
    standard_url = premium_url.replace(world.account, f"{world.account}std")
    control(emulator.env, "link", {"blob_limits": True, "blob_iops": 4, "burst_seconds": 0.3})
    throttled = {}
    for url in (premium_url, standard_url):
        control(emulator.env, "stats/reset", method="POST")
        run = replicate("--source", disk.id, "--target", url, "--json", "--max-attempts", "30")
        assert run.code == 0, run.err
        world.assert_restore_point_equals(url, run.doc["snapshots"][0]["restore_point"], snapshot)
        blob = url.split("/", 3)[3]  # account/container/blob, as the emulator's stats name it
        throttled[url] = control(emulator.env, "stats")["blobs"][blob]["throttled"]
    control(emulator.env, "link", {"blob_limits": False})
    assert throttled[premium_url] == 0
    assert throttled[standard_url] > 0
    world.close()
