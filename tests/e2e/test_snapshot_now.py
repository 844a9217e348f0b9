"""End to end: --snapshot-now (within and beyond Azure's rate limit) and --source-keep."""

from __future__ import annotations

from tests.e2e.world import MiB, World, pattern


def _snapshot_names(world: World) -> list[str]:
    return sorted(s.name for s in world.compute.snapshots.list_by_resource_group(world.rg))


def test_snapshot_now_then_source_keep(world: World, replicate) -> None:
    disk = world.create_disk("d", 1)
    url = world.target_url()
    for n in range(1, 5):
        world.write(disk, (n * 64 * MiB, pattern(n, 2 * MiB)))
        done = replicate(
            "--source", disk.id, "--target", url, "--snapshot-now", "--source-keep", "2", "--json"
        )
        assert done.code == 0, done.err
        (result,) = done.doc["snapshots"]
        assert "-repl-" in result["snapshot_name"] and "taking incremental snapshot" in done.err
        world.assert_restore_point_equals(url, result["restore_point"], result["snapshot_id"])
    names = _snapshot_names(world)
    assert len(names) == 2 and result["snapshot_name"] in names
    assert "deleting source snapshot" in done.err
    assert len(world.restore_points(url)) == 4  # source-keep trims the source, never the target


def test_snapshot_now_refused_beyond_the_rate_limit(world: World, replicate) -> None:
    disk = world.create_disk("d", 1)
    url = world.target_url()
    for _ in range(7):
        world.snapshot(disk)
    refused = replicate("--source", disk.id, "--target", url, "--snapshot-now", "--json")
    assert refused.code == 3 and "last 5 minutes" in refused.doc["error"]
    with world.target(url) as blob:
        assert not blob.exists()  # refused before anything was written


def test_service_refusal_of_snapshot_now_exits_3(world: World, replicate) -> None:
    """Snapshots kept in another resource group escape the local count; Azure's refusal still exits 3."""
    disk = world.create_disk("d", 1)
    for n in range(7):
        world.snapshot(disk, f"b{n}", group=f"{world.rg}-bak")
    refused = replicate("--source", disk.id, "--target", world.target_url(), "--snapshot-now")
    assert refused.code == 3 and "Azure refused the snapshot" in refused.err


def test_snapshot_now_needs_a_disk_source(world: World, replicate) -> None:
    disk = world.create_disk("d", 1)
    snap = world.snapshot(disk)
    bad = replicate("--source", snap, "--target", world.target_url(), "--snapshot-now")
    assert bad.code == 2 and "need a managed disk" in bad.err


def test_source_keep_deletes_only_the_snapshots_the_tool_took(world: World, replicate) -> None:
    """Hand-made snapshots (another team's restore points) survive any --source-keep; the tool's own
    carry the owner tag, and only those beyond the newest N are deleted."""
    disk = world.create_disk("disk1", 1)
    hand_made = [world.snapshot(disk, f"disk1-snap{n}") for n in range(1, 5)]
    url = world.target_url()
    taken = []
    for n in range(1, 4):  # 4 hand-made + 3 taken: Azure's 7 per 5 minutes
        world.write(disk, (n * 64 * MiB, pattern(n, MiB)))
        done = replicate(
            "--source", disk.id, "--target", url, "--snapshot-now", "--source-keep", "1", "--json"
        )
        assert done.code == 0, done.err
        taken.append(done.doc["snapshot_taken"])
        assert "left 4 older snapshots" in done.err and "not the tool's" in done.err
    tags = {s.id: s.tags for s in world.compute.snapshots.list_by_resource_group(world.rg)}
    ours = {"replicator-owner": "replicator", "replicator-target": url.split("?")[0]}
    assert all(tags[t] == ours for t in taken[-1:])
    assert all(not tags[h] for h in hand_made)
    assert set(tags) == {*hand_made, taken[-1]}  # the tool's older two are gone, every hand-made one kept
    assert done.doc["source_snapshots_deleted"] == [taken[1]]


def test_source_keep_of_one_target_leaves_another_targets_base(world: World, replicate) -> None:
    """One disk, two targets, each with --snapshot-now: the first's --source-keep 1 must not delete
    the snapshot the second target's next diff starts from."""
    disk = world.create_disk("shared", 1)
    first, second = world.target_url(), world.target_url()
    world.write(disk, (0, pattern(1, MiB)))
    seeded = replicate("--source", disk.id, "--target", second, "--snapshot-now", "--json")
    assert seeded.code == 0, seeded.err
    base = seeded.doc["snapshot_taken"]
    for n in (2, 3):
        world.write(disk, (n * 64 * MiB, pattern(n, MiB)))
        done = replicate(
            "--source", disk.id, "--target", first, "--snapshot-now", "--source-keep", "1", "--json"
        )
        assert done.code == 0, done.err
    assert "taken for another target" in done.err
    names = {s.id for s in world.compute.snapshots.list_by_resource_group(world.rg)}
    assert base in names
    again = replicate("--source", disk.id, "--target", second, "--json")
    assert again.code == 0, again.err
    assert [(s["mode"], s["base_snapshot_id"]) for s in again.doc["snapshots"]] == [("diff", base)]
    (entry,) = again.doc["snapshots"]
    world.assert_restore_point_equals(second, entry["restore_point"], entry["snapshot_id"])
