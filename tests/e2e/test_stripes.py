"""End to end: a 16 TiB disk replicated into stripes (the base blob plus `<base>.stripe<k>` blobs).

The oracle here shares no code with the replicator: it spells the stripe names and the 8 TiB
boundary itself, reads the source snapshot and each stripe's blob snapshot with the plain SDK, and
compares every byte of the union of their valid ranges (everything else reads as zeros on both).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from replicator.target.page_blob import PageBlobTarget
from replicator.target.stripe_set import StripeSet
from tests.e2e.world import GiB, MiB, World, pattern
from tests.helpers.cli_runs import run
from tests.helpers.target_sas import blob_sas

TIB = 1024 * GiB
EIGHT = 8 * TIB  # the page-blob limit and the stripe width, spelled here on purpose
SIZE = 16 * TIB + 512  # a 16 TiB disk of 512-byte sectors exports with its footer: three stripes


def _valid(client: BlobClient, shift: int = 0) -> list[tuple[int, int]]:
    return [(r.start + shift, r.end + 1 + shift) for r in client.list_page_ranges() if not r.cleared]


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def assert_striped_point_equals(world: World, url: str, point: str, snapshot_id: str) -> None:
    """Restore point `point` (the base blob's snapshot and the stripes' it names) holds the source."""
    with world.target(url, point) as base:
        times = base.get_blob_properties().metadata["stripe_snapshots"].split(",")
    assert all(t < point for t in times), "the base blob's snapshot (the commit) is taken last"
    parts = [world.target(url, point)] + [world.target(f"{url}.stripe{k}", t) for k, t in enumerate(times, 1)]
    try:
        with world.read_snapshot(snapshot_id) as source:
            size = source.get_blob_properties().size
            lengths = [p.get_blob_properties().size for p in parts]
            assert sum(lengths) == size and all(n == EIGHT for n in lengths[:-1])
            spans = _valid(source) + [s for k, p in enumerate(parts) for s in _valid(p, k * EIGHT)]
            for span_start, span_end in _union(spans):
                start = span_start
                while start < span_end:  # a span crossing a boundary is read from both stripes
                    k = start // EIGHT
                    end = min(span_end, (k + 1) * EIGHT)
                    want = source.download_blob(start, end - start).readall()
                    got = parts[k].download_blob(start - k * EIGHT, end - start).readall()
                    assert got == want, (
                        f"restore point {point} differs from {snapshot_id} in [{start}, {end})"
                    )
                    start = end
    finally:
        for p in parts:
            p.close()


def assert_disk_equals(world: World, name: str, snapshot_id: str) -> None:
    """The managed disk `name` reads back as the source snapshot, every valid byte and every zero."""
    with world.read_disk(name) as disk, world.read_snapshot(snapshot_id) as source:
        assert disk.get_blob_properties().size == source.get_blob_properties().size
        for start, end in _union(_valid(disk) + _valid(source)):
            for pos in range(start, end, 4 * MiB):
                length = min(4 * MiB, end - pos)
                want = source.download_blob(pos, length).readall()
                assert disk.download_blob(pos, length).readall() == want, f"disk {name} differs at {pos}"


def _striped_disk(world: World):
    disk = world.create_disk("big", 16 * 1024)
    world.write(
        disk,
        (0, pattern(1, MiB)),
        (EIGHT - 2 * MiB, pattern(2, 4 * MiB)),  # both sides of the first boundary
        (12 * TIB + 4096, pattern(3, 3 * MiB)),
        (16 * TIB - 8192, pattern(4, 8192)),  # the last pages before the footer
    )
    return disk


def _stripe_names(world: World, url: str) -> list[str]:
    blob = url.rsplit("/", 1)[1]
    with world.container(url) as container:
        return sorted(b.name for b in container.list_blobs(name_starts_with=blob))


def test_full_diff_verify_list_prune_across_stripes(world: World, replicate) -> None:
    disk = _striped_disk(world)
    s1 = world.snapshot(disk)
    url = world.target_url()
    first = replicate("--source", disk.id, "--target", url, "--verify", "--json")
    assert first.code == 0, first.err
    entry = first.doc["snapshots"][0]
    assert entry["mode"] == "full" and entry["verified"] is True
    assert _stripe_names(world, url) == ["replica.vhd", "replica.vhd.stripe1", "replica.vhd.stripe2"]
    assert_striped_point_equals(world, url, entry["restore_point"], s1)

    world.write(
        disk,
        (EIGHT - 4096, pattern(5, 8192)),  # a diff on both sides of the boundary
        (12 * TIB + 4096, MiB),  # a clear in stripe 1
        (16 * TIB - 4096, pattern(6, 4096)),
    )
    s2 = world.snapshot(disk)
    diff = replicate("--source", disk.id, "--target", url, "--verify", "--json")
    assert diff.code == 0, diff.err
    entry2 = diff.doc["snapshots"][0]
    assert entry2["mode"] == "diff" and entry2["changed_bytes"] < 4 * MiB and entry2["cleared_bytes"] >= MiB
    assert_striped_point_equals(world, url, entry2["restore_point"], s2)
    assert_striped_point_equals(world, url, entry["restore_point"], s1)  # the older point is untouched

    listed = replicate("list", "--target", url, "--json")
    assert listed.code == 0, listed.err
    assert [p["stripes"] for p in listed.doc["restore_points"]] == [3, 3]
    human = replicate("list", "--target", url)
    assert human.code == 0 and "16.0 TiB (3 stripes)" in human.out, human.out

    status = replicate("status", "--target", url, "--max-age", "1d", "--json")
    assert status.code == 0, status.err

    restored = replicate(
        "restore", "--target", url, "--point", "latest", "--resource-group", world.rg,
        "--disk-name", "back", "--location", world.location, "--json",
    )  # fmt: skip
    assert restored.code == 0, restored.err
    assert_disk_equals(world, "back", s2)  # replicated in stripes, restored by upload: the source's bytes

    pruned = replicate("prune", "--target", url, "--keep", "1", "--yes", "--json")
    assert pruned.code == 0, pruned.err
    with world.container(url) as container:
        left = [(b.name, b.snapshot) for b in container.list_blobs(include=["snapshots"]) if b.snapshot]
    assert sorted(n for n, _ in left) == ["replica.vhd", "replica.vhd.stripe1", "replica.vhd.stripe2"]
    assert_striped_point_equals(world, url, entry2["restore_point"], s2)


def test_a_commit_killed_between_stripe_snapshots_resumes_and_deletes_its_orphans(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _striped_disk(world)
    s1 = world.snapshot(disk)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json", "--concurrency", "1")
    real_snapshot = StripeSet.snapshot

    async def killed_after_stripe_snapshots(self, leases):
        await real_snapshot(self, leases)  # the stripes' snapshots are taken, the base's never is
        raise HttpResponseError(message="injected: killed between the stripe snapshots and the commit")

    monkeypatch.setattr(StripeSet, "snapshot", killed_after_stripe_snapshots)
    failed = replicate(*args)
    assert failed.code == 1 and "injected" in failed.err, failed.err
    assert world.restore_points(url) == []
    with world.container(url) as container:
        orphans = [b for b in container.list_blobs(include=["snapshots"]) if b.snapshot]
    assert sorted(b.name for b in orphans) == ["replica.vhd.stripe1", "replica.vhd.stripe2"]

    monkeypatch.setattr(StripeSet, "snapshot", real_snapshot)
    resumed = replicate(*args)
    assert resumed.code == 0, resumed.err
    point = resumed.doc["snapshots"][0]["restore_point"]
    assert_striped_point_equals(world, url, point, s1)
    with world.container(url) as container:
        left = {(b.name, b.snapshot) for b in container.list_blobs(include=["snapshots"]) if b.snapshot}
    assert not left & {(b.name, b.snapshot) for b in orphans}, "the orphaned stripe snapshots were deleted"
    assert len(left) == 3


def test_a_foreign_blob_by_a_stripes_name_is_refused(world: World, replicate) -> None:
    disk = _striped_disk(world)
    world.snapshot(disk)
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
        container.get_blob_client("replica.vhd.stripe1").create_page_blob(4096)
    run = replicate("--source", disk.id, "--target", url)
    assert run.code == 2, run.err
    assert "replica.vhd.stripe1" in run.err and "not created by the replicator" in run.err
    with world.target(f"{url}.stripe1") as foreign:
        assert foreign.get_blob_properties().size == 4096  # untouched


def test_a_blob_sas_that_cannot_reach_the_stripes_is_refused_before_anything(world: World, replicate) -> None:
    """A blob SAS is signed for the base blob's path: Azure refuses it on a stripe with 403
    AuthenticationFailed, which reads as a wrong key. Named up front instead, nothing created."""
    disk = _striped_disk(world)
    snap = world.snapshot(disk)
    url = world.target_url()
    with world.container(url) as container:
        container.create_container()
    sas = blob_sas(world, url)
    refused = replicate("--source", disk.id, "--target", f"{url}?{sas}")
    assert refused.code == 2, refused.err
    last = refused.err.strip().splitlines()[-1]
    assert "sr=b" in last and "3 blobs" in last and "container SAS (sr=c)" in last, last
    assert sas.split("sig=")[1].split("&")[0] not in refused.err + refused.out
    assert _stripe_names(world, url) == []  # not even the base blob
    world.assert_sas_free(snap)


def test_status_reports_a_missing_stripe_snapshot(world: World, replicate) -> None:
    disk = _striped_disk(world)
    world.snapshot(disk)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    assert run.code == 0, run.err
    assert replicate("status", "--target", url, "--max-age", "1d").code == 0
    point = run.doc["snapshots"][0]["restore_point"]
    with world.target(url, point) as base:
        stripe2 = base.get_blob_properties().metadata["stripe_snapshots"].split(",")[1]
    with world.target(f"{url}.stripe2", stripe2) as snapshot:
        snapshot.delete_blob()  # what an operator must never do
    status = replicate("status", "--target", url, "--max-age", "1d")
    assert status.code == 4, status.err
    assert f"the newest restore point {point} misses the snapshot of stripe(s) 2" in status.out + status.err


def test_a_source_growing_past_8_tib_gets_its_stripe(world: World, replicate) -> None:
    disk = world.create_disk("grows", 5 * 1024)
    world.write(disk, (0, pattern(1, MiB)), (5 * TIB - MiB, pattern(2, MiB)))
    world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    assert _stripe_names(world, url) == ["replica.vhd"]
    world.resize_disk(disk, 9 * 1024)
    world.write(disk, (EIGHT - 4096, pattern(3, 8192)), (9 * TIB - 4096, pattern(4, 4096)))
    s2 = world.snapshot(disk)
    grown = replicate("--source", disk.id, "--target", url, "--json")
    assert grown.code == 0, grown.err
    entry = grown.doc["snapshots"][0]
    assert entry["mode"] == "diff" and "resized the target" in grown.err
    assert _stripe_names(world, url) == ["replica.vhd", "replica.vhd.stripe1"]
    assert_striped_point_equals(world, url, entry["restore_point"], s2)
    world.write(disk, (MiB, pattern(5, 4096)))
    world.snapshot(disk)
    again = replicate("--source", disk.id, "--target", url, "--json")
    assert again.code == 0 and "resized the target" not in again.err, again.err


def striped_vm(world: World, name: str) -> tuple[str, str]:
    """A VM `name` with a 1 GiB OS disk (`<name>-os`) and a 9 TiB data disk (`<name>-big`, over a page
    blob) written across the 8 TiB stripe boundary and 4 KiB before its end; and a target prefix for it."""
    os_disk, big = world.create_disk(f"{name}-os", 1), world.create_disk(f"{name}-big", 9 * 1024)
    world.write(os_disk, (0, pattern(1, MiB)))
    world.write(big, (EIGHT - 4096, pattern(2, 8192)), (9 * TIB - 4096, pattern(3, 4096)))
    return world.create_vm(name, os_disk, {0: big}, {}), world.target_url(blob="vms/striped")


def test_a_vm_disk_over_8_tib_is_striped_through_the_same_path(world: World) -> None:
    vm, url = striped_vm(world, "svm")
    done = run(world.env, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert done.code == 0, done.err
    (group,) = done.doc["groups"]
    entry = next(d for d in group["disks"] if d["name"] == "svm-big")
    with world.target(entry["target"], entry["restore_point"]) as base:
        times = base.get_blob_properties().metadata["stripe_snapshots"].split(",")
        assert base.download_blob(EIGHT - 4096, 4096).readall() == pattern(2, 8192)[:4096]
    assert len(times) == 1
    with world.target(f"{entry['target']}.stripe1", times[0]) as stripe1:
        assert stripe1.download_blob(0, 4096).readall() == pattern(2, 8192)[4096:]
        assert stripe1.download_blob(TIB - 4096, 4096).readall() == pattern(3, 4096)


def test_a_copy_failing_in_one_stripe_resumes_to_an_equal_restore_point(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _striped_disk(world)
    s1 = world.snapshot(disk)
    url = world.target_url()
    real_copy = PageBlobTarget.copy_from_url

    async def failing_in_stripe_1(self, op, source_url, source_auth=None):
        if EIGHT <= op.range.start < 2 * EIGHT:
            raise HttpResponseError(message="injected permanent failure in stripe 1")
        return await real_copy(self, op, source_url, source_auth)

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", failing_in_stripe_1)
    args = ("--source", disk.id, "--target", url, "--json", "--checkpoint-seconds", "0.1")
    failed = replicate(*args)
    assert failed.code == 1 and "injected" in failed.err, failed.err
    with world.target(url) as base:
        meta = base.get_blob_properties().metadata
    checkpoint = int(meta["inprogress_checkpoint"])
    assert checkpoint < 2 * EIGHT  # never past stripe 1's unwritten ops, whatever stripe 0 did
    assert world.restore_points(url) == []

    monkeypatch.setattr(PageBlobTarget, "copy_from_url", real_copy)
    resumed = replicate(*args)
    assert resumed.code == 0, resumed.err
    entry = resumed.doc["snapshots"][0]
    assert entry["resumed_from"] == checkpoint
    assert_striped_point_equals(world, url, entry["restore_point"], s1)
