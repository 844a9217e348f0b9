"""End to end: a replica is never rolled back without being told, a source snapshot never gets two
restore points, and an ambiguous `restore --point` is refused rather than guessed."""

from __future__ import annotations

from tests.e2e.world import MiB, World, pattern


def _three_snapshots(world: World):
    disk = world.create_disk("d", 1)
    snaps = []
    for n in range(1, 4):
        world.write(disk, (n * 100 * MiB, pattern(n, 2 * MiB)), ((n - 1) * 100 * MiB, MiB))
        snaps.append(world.snapshot(disk, f"s{n}"))
    return disk, snaps


def _points(world: World, url: str) -> dict[str, str]:
    """Source snapshot ID -> restore point ID; fails on a source snapshot with two restore points."""
    points = world.restore_points(url)
    by_snapshot = {p.metadata["snapshot_id"]: p.snapshot for p in points}
    assert len(by_snapshot) == len(points), f"duplicate restore points: {points}"
    return by_snapshot


def test_an_older_snapshot_is_refused_unless_allow_rollback(world: World, replicate) -> None:
    disk, (s1, s2, s3) = _three_snapshots(world)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url, "--latest-only").code == 0
    with world.target(url) as blob:
        before = blob.get_blob_properties().metadata

    refused = replicate("--source", s1, "--target", url, "--json")
    assert refused.code == 2, refused.err
    error = refused.doc["error"]
    assert "s1" in error and "s3" in error and "--allow-rollback" in error
    assert "full copy of 1.0 GiB" in error and "rewrites the base blob" in error
    assert error.count("Z)") >= 2  # both times to the microsecond: snapshots taken in one second differ
    with world.target(url) as blob:
        assert blob.get_blob_properties().metadata == before  # nothing written
    assert list(_points(world, url)) == [s3]
    world.assert_sas_free(s1, s2, s3)  # nothing granted

    allowed = replicate("--source", s1, "--target", url, "--allow-rollback", "--json")
    assert allowed.code == 0, allowed.err
    [rolled] = allowed.doc["snapshots"]
    assert rolled["mode"] == "full" and "--allow-rollback" in rolled["reason"]
    # The newest restore point now holds s1, but `latest` (what a failover restores) is still the one
    # holding the newest snapshot, s3: a rollback never makes a failover restore older data.
    restore = ("restore", "--target", url, "--resource-group", world.rg, "--location", world.location)
    failover = replicate(*restore, "--point", "latest", "--disk-name", "after-rollback", "--json")
    assert failover.code == 0, failover.err
    assert failover.doc["restore_point"]["source_snapshot"]["id"] == s3
    world.assert_disk_equals("after-rollback", s3)

    # The base blob now holds s1: the next normal run diffs from it and skips s3, which has its
    # restore point already.
    again = replicate("--source", disk.id, "--target", url, "--json")
    assert again.code == 0, again.err
    assert [(s["snapshot_id"], s["mode"]) for s in again.doc["snapshots"]] == [(s2, "diff")]
    world.write(disk, (950 * MiB, pattern(4, MiB)), (200 * MiB, 512 * 1024))
    s4 = world.snapshot(disk, "s4")
    latest = replicate("--source", disk.id, "--target", url, "--json")
    assert latest.code == 0, latest.err
    [(s4_entry)] = latest.doc["snapshots"]
    assert (s4_entry["snapshot_id"], s4_entry["base_snapshot_id"]) == (s4, s2)

    nothing = replicate("--source", s3, "--target", url, "--json")  # has its restore point: protected
    assert nothing.code == 0 and nothing.doc["snapshots"] == [], nothing.err
    points = _points(world, url)
    assert set(points) == {s1, s2, s3, s4}
    for snapshot_id, point in points.items():
        world.assert_restore_point_equals(url, point, snapshot_id, full=True)


def test_an_ambiguous_point_is_refused_with_the_candidates(world: World, replicate) -> None:
    """A snapshot deleted and re-created under the same name leaves two restore points of that name."""
    disk = world.create_disk("d", 1)
    url = world.target_url()
    world.write(disk, (0, pattern(1, MiB)))
    first = world.snapshot(disk, "nightly")
    assert replicate("--source", disk.id, "--target", url).code == 0
    world.delete_snapshot(first)
    world.write(disk, (0, pattern(2, MiB)))
    second = world.snapshot(disk, "nightly")
    assert replicate("--source", disk.id, "--target", url).code == 0
    ids = [p.snapshot for p in world.restore_points(url)]
    assert len(ids) == 2

    restore = ("restore", "--target", url, "--resource-group", world.rg, "--location", world.location)
    ambiguous = replicate(*restore, "--point", "nightly", "--disk-name", "r1")
    assert ambiguous.code == 2, ambiguous.err
    assert all(i in ambiguous.err for i in ids) and "2 restore points" in ambiguous.err
    assert not any(d.name == "r1" for d in world.compute.disks.list_by_resource_group(world.rg))
    chosen = replicate(*restore, "--point", ids[1], "--disk-name", "r2", "--sku", "Standard_LRS")
    assert chosen.code == 0, chosen.err
    world.assert_disk_equals("r2", second)
