"""End to end through `replicate` (cli.main): real SDKs against the emulator, every restore point compared."""

from __future__ import annotations

import pytest

from tests.e2e.world import GiB, MiB, World, pattern
from tests.helpers.cli_runs import Run

TIB = 1024 * GiB
FOOTER = 512  # the exported VHD of a 512-sector disk ends with a footer page: data of the full copy


def _check(world: World, url: str, run: Run, *snapshot_ids: str) -> list[dict]:
    """The run succeeded, made one restore point per snapshot, each byte-equal to its source."""
    assert run.code == 0, run.err
    done = run.doc["snapshots"]
    assert [s["snapshot_id"] for s in done] == list(snapshot_ids)
    for entry in done:
        world.assert_restore_point_equals(url, entry["restore_point"], entry["snapshot_id"])
    world.assert_sas_free(*snapshot_ids)
    return done


def test_full_copy_then_diffs_then_nothing_new(world: World, replicate) -> None:
    disk = world.create_disk("data", 2)
    world.write(disk, (3 * MiB + 512, pattern(1, 5 * MiB)), (1 * GiB + 7 * 4096, pattern(2, 12288)))
    s1 = world.snapshot(disk)
    url = world.target_url()

    first = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    assert first[0]["mode"] == "full" and "no restore point" in first[0]["reason"]
    assert first[0]["changed_bytes"] == 5 * MiB + 12288 + FOOTER

    world.write(disk, (4 * MiB, pattern(3, 1024)), (1536 * MiB, pattern(4, 3 * MiB)))
    s2 = world.snapshot(disk)
    world.write(disk, (2 * GiB - 4096, pattern(5, 4096)))
    s3 = world.snapshot(disk)
    diffs = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s2, s3)
    assert [d["mode"] for d in diffs] == ["diff", "diff"]
    assert diffs[1]["base_snapshot_id"] == s2
    assert diffs[0]["changed_bytes"] < 4 * MiB  # only what changed since s1, not the disk

    points = world.restore_points(url)
    assert [p.metadata["snapshot_id"] for p in points] == [s1, s2, s3]
    assert points[2].metadata["mode"] == "diff" and points[2].metadata["size_bytes"] == str(2 * GiB + 512)
    # earlier restore points are never modified
    world.assert_restore_point_equals(url, points[0].snapshot, s1)

    again = replicate("--source", disk.id, "--target", url, "--json")
    assert again.code == 0 and again.doc["snapshots"] == [] and again.doc["status"] == "nothing new"
    assert "nothing new" in again.err


def test_latest_only_is_one_diff_to_the_newest(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 8192)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    world.write(disk, (10 * MiB, pattern(2, 4096)))
    world.snapshot(disk)
    world.write(disk, (20 * MiB, pattern(3, 4096)), (512, 1024))
    s3 = world.snapshot(disk)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--latest-only", "--json"), s3)
    assert done[0]["mode"] == "diff" and done[0]["base_snapshot_id"] == s1


def test_clears_reach_the_target(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (1 * MiB, pattern(1, 6 * MiB)), (300 * MiB, pattern(2, 64 * 1024)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    world.write(disk, (2 * MiB + 512, 3 * MiB), (300 * MiB + 4096, 8192))
    s2 = world.snapshot(disk)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s2)
    assert done[0]["mode"] == "diff" and done[0]["cleared_bytes"] >= 3 * MiB + 8192


def test_snapshot_source_and_verify(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (5 * MiB, pattern(7, 9 * MiB)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    done = _check(world, url, replicate("--source", s1, "--target", url, "--verify", "--json"), s1)
    assert done[0]["verified"] is True


def test_growth_within_4tib(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (64 * 1024, pattern(1, 4096)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    world.resize_disk(disk, 2)
    world.write(disk, (GiB + 4096, pattern(2, 8192)))
    s2 = world.snapshot(disk)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s2)
    assert done[0]["mode"] == "diff"
    with world.target(url) as base:
        assert base.get_blob_properties().size == 2 * GiB + 512


def test_growth_across_4tib_is_a_full_copy(world: World, replicate) -> None:
    disk = world.create_disk("big", 4096)
    world.write(disk, (3 * TIB, pattern(1, 4096)), (512, pattern(2, 512)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    world.resize_disk(disk, 4097)
    world.write(disk, (4 * TIB + 4096, pattern(3, 4096)), (3 * TIB, 4096))
    s2 = world.snapshot(disk)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s2)
    assert done[0]["mode"] == "full" and "4 TiB" in done[0]["reason"]


def test_deleted_base_means_full_copy_with_reason(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (8 * MiB, pattern(1, 4096)), (9 * MiB, pattern(2, 4096)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s1)
    world.write(disk, (8 * MiB, 4096), (100 * MiB, pattern(3, 4096)))
    s2 = world.snapshot(disk)
    world.delete_snapshot(s1)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--json"), s2)
    assert done[0]["mode"] == "full" and "no longer exists" in done[0]["reason"]
    assert done[0]["cleared_bytes"] > 0  # the stale range at 8 MiB had to be cleared


@pytest.mark.parametrize("extra", [("--mode", "stream"), ("--mode", "stream", "--max-bandwidth", "64MiB")])
def test_stream_mode(world: World, replicate, extra: tuple[str, ...]) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 5 * MiB)), (700 * MiB, pattern(2, 1024)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    _check(world, url, replicate("--source", disk.id, "--target", url, "--json", *extra), s1)
    world.write(disk, (4 * MiB, pattern(3, 2 * MiB)), (700 * MiB, 512))
    s2 = world.snapshot(disk)
    done = _check(world, url, replicate("--source", disk.id, "--target", url, "--json", *extra), s2)
    assert done[0]["mode"] == "diff"


def test_many_listing_pages(fresh_emulator, monkeypatch, replicate) -> None:
    emulator = fresh_emulator("--max-page-ranges", "3")
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    world = World(emulator.env)
    disk = world.create_disk("data", 1)
    world.write(disk, *[(i * 3 * MiB + 512 * i, pattern(i, 4096 + 512 * i)) for i in range(1, 14)])
    s1 = world.snapshot(disk)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", "--list-window", "64MiB")
    first = _check(world, url, replicate(*args), s1)
    assert first[0]["changed_bytes"] == sum(4096 + 512 * i for i in range(1, 14)) + FOOTER
    world.write(disk, *[(i * 5 * MiB, pattern(100 + i, 1024)) for i in range(1, 12)], (3 * MiB + 512, 4096))
    s2 = world.snapshot(disk)
    _check(world, url, replicate(*args), s2)
    world.close()


def test_plan_writes_nothing_and_revokes(world: World, replicate) -> None:
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 4096)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--plan", "--json")
    assert run.code == 0, run.err
    assert run.doc["status"] == "planned"
    assert run.doc["snapshots"][0]["changed_bytes"] == 4096 + FOOTER
    assert run.doc["snapshots"][0]["restore_point"] is None
    with world.container(url) as container:
        assert not container.exists()
    world.assert_sas_free(s1)


def test_target_sas_is_honoured_and_never_printed(world: World, replicate, monkeypatch) -> None:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 4096)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    sas = generate_account_sas(
        world.account,
        world.env["REPLICATOR_ACCOUNT_KEY"],
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, write=True, create=True, list=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    run = replicate("--source", disk.id, "--target", f"{url}?{sas}", "--json", "--log-level", "debug")
    _check(world, url, run, s1)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    assert signature not in run.out and signature not in run.err


def test_premium_v2_waits_for_completion_and_records_sector_size(world: World, replicate) -> None:
    disk = world.create_disk("v2", 1, sku="PremiumV2_LRS", logicalSectorSize=4096)
    world.write(disk, (8192, pattern(1, 16384)))
    s1 = world.snapshot(disk)  # completes in the emulator's --completion-seconds (2 s)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    _check(world, url, run, s1)
    assert "complete" in run.err
    point = world.restore_points(url)[0]
    assert point.metadata["logical_sector_size"] == "4096"
