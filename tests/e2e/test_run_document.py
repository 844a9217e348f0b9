"""End to end: the `--json` document of a run says which snapshot --snapshot-now took and which source
snapshots --source-keep deleted (not only the human lines on stderr)."""

from __future__ import annotations

from tests.e2e.world import MiB, World, pattern


def test_json_names_the_snapshot_taken_and_the_ones_deleted(world: World, replicate) -> None:
    disk = world.create_disk("d", 1)
    url = world.target_url()
    taken = []
    for n in (1, 2):
        world.write(disk, (n * 64 * MiB, pattern(n, MiB)))
        done = replicate(
            "--source", disk.id, "--target", url, "--snapshot-now", "--source-keep", "1", "--json"
        )
        assert done.code == 0, done.err
        (result,) = done.doc["snapshots"]
        assert done.doc["snapshot_taken"] == result["snapshot_id"]
        taken.append(done.doc["snapshot_taken"])
    assert done.doc["source_snapshots_deleted"] == [taken[0]]
    plain = replicate("--source", disk.id, "--target", url, "--json")
    assert (plain.doc["snapshot_taken"], plain.doc["source_snapshots_deleted"]) == (None, [])
