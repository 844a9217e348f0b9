"""End to end: a run that finds nothing it can replicate is `unprotected` (exit 4), never exit 0, and
says what it found and the fix; `--snapshot-search subscription` finds snapshots kept in another
resource group."""

from __future__ import annotations

from tests.e2e.world import MiB, World, pattern


def test_a_disk_without_snapshots_is_unprotected(world: World, replicate) -> None:
    disk = world.create_disk("bare", 1)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    assert run.code == 4, run.err
    assert run.doc["status"] == "unprotected"
    assert f"no snapshot of it in resource group {world.rg}" in run.doc["error"]
    assert "--snapshot-now" in run.doc["error"]
    with world.target(url) as blob:
        assert not blob.exists()
    assert replicate("--source", disk.id, "--target", url, "--plan").code == 4
    # A plan with --snapshot-now: the real run would take a snapshot, so it is not unprotected.
    planned = replicate("--source", disk.id, "--target", url, "--plan", "--snapshot-now", "--json")
    assert planned.code == 0 and planned.doc["status"] == "planned", planned.err
    assert not list(world.compute.snapshots.list_by_resource_group(world.rg))  # a plan takes none


def test_only_full_snapshots_is_unprotected(world: World, replicate) -> None:
    disk = world.create_disk("full", 1)
    world.snapshot(disk, incremental=False)
    world.snapshot(disk, incremental=False)
    run = replicate("--source", disk.id, "--target", world.target_url())
    assert run.code == 4, run.err
    assert "2 full snapshots, which cannot be diffed" in run.err and "--snapshot-now" in run.err


def test_snapshots_in_another_resource_group_need_subscription_search(world: World, replicate) -> None:
    disk = world.create_disk("d", 1)
    world.write(disk, (5 * MiB, pattern(1, 3 * MiB)))
    backups = f"{world.rg}-backups"
    snap = world.snapshot(disk, "kept-elsewhere", group=backups)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    assert run.code == 4, run.err
    assert "--snapshot-search subscription" in run.doc["error"]

    found = replicate("--source", disk.id, "--target", url, "--snapshot-search", "subscription", "--json")
    assert found.code == 0, found.err
    [entry] = found.doc["snapshots"]
    assert entry["snapshot_id"] == snap
    world.assert_restore_point_equals(url, entry["restore_point"], snap, full=True)
