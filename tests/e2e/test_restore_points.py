"""End to end: list, restore (each restore point back to a disk, byte-for-byte), prune, refusals."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.cli import prune_cmd
from replicator.emulator.arm import vhd as emulator_vhd
from tests.e2e.world import MiB, World, pattern


def _three_points(world: World, replicate) -> tuple[str, list[str]]:
    disk = world.create_disk("d1", 1)
    url = world.target_url()
    snaps = []
    world.write(disk, (0, pattern(1, 2 * MiB)), (700 * MiB, pattern(2, 3 * MiB)))
    snaps.append(world.snapshot(disk, "s1"))
    world.write(disk, (MiB, pattern(3, 2 * MiB)), (700 * MiB, MiB))
    snaps.append(world.snapshot(disk, "s2"))
    world.write(disk, (1023 * MiB, pattern(4, MiB)), (0, 512 * 1024))
    snaps.append(world.snapshot(disk, "s3"))
    assert replicate("--source", disk.id, "--target", url).code == 0
    return url, snaps


def _restore(world: World, replicate, url: str, point: str, name: str, *extra: str):
    return replicate(
        "restore", "--target", url, "--point", point, "--resource-group", world.rg,
        "--disk-name", name, "--location", world.location, *extra,
    )  # fmt: skip


def test_list_restore_each_point_and_prune(world: World, replicate) -> None:
    url, snaps = _three_points(world, replicate)
    listed = replicate("list", "--target", url, "--json")
    assert listed.code == 0, listed.err
    points = listed.doc["restore_points"]
    assert [p["source_snapshot"]["id"] for p in points] == snaps
    assert [p["mode"] for p in points] == ["full", "diff", "diff"]
    assert [p["base_of_next_diff"] for p in points] == [False, False, True]
    assert {p["size_bytes"] for p in points} == {1024 * MiB + 512}
    assert {p["logical_sector_size"] for p in points} == {512}
    assert listed.doc["locked"] is False and listed.doc["in_progress"] is None
    human = replicate("list", "--target", url)
    assert human.code == 0 and "s1" in human.out and "base of next diff" in human.out
    assert "3 restore points" in human.out and "run: idle" in human.out

    # each restore point by another selector: its ID, a source snapshot name, latest
    for selector, snap, n in ((points[0]["id"], snaps[0], 1), ("s2", snaps[1], 2), ("latest", snaps[2], 3)):
        done = _restore(world, replicate, url, selector, f"restored{n}", "--sku", "Standard_LRS", "--json")
        assert done.code == 0, done.err
        assert done.doc["disk_id"].endswith(f"/disks/restored{n}")
        assert done.doc["restore_point"]["source_snapshot"]["id"] == snap
        world.assert_disk_equals(f"restored{n}", snap, full=True)
        created = world.compute.disks.get(world.rg, f"restored{n}").creation_data
        assert created.create_option == "Import" and "?snapshot=" in created.source_uri
        assert created.storage_account_id.endswith(f"/storageAccounts/{world.account}")
    plain = _restore(world, replicate, url, "latest", "restored4")
    assert plain.code == 0 and plain.out.strip().endswith("/disks/restored4")

    dry = replicate("prune", "--target", url, "--keep", "1", "--dry-run", "--json")
    assert dry.code == 0 and [p["id"] for p in dry.doc["deleted"]] == [p["id"] for p in points[:2]]
    assert len(world.restore_points(url)) == 3
    pruned = replicate("prune", "--target", url, "--older-than", "0", "--yes")
    deleted = [line.split()[:2] for line in pruned.out.splitlines()]
    assert pruned.code == 0 and deleted == [["deleted", p["id"]] for p in points[:2]]
    assert "the newest restore point" in pruned.err
    assert [p.snapshot for p in world.restore_points(url)] == [points[2]["id"]]
    # restored disks are independent of the restore points they came from
    world.assert_disk_equals("restored1", snaps[0])


def test_prune_refuses_while_a_run_holds_the_lease(world: World, replicate) -> None:
    url, _ = _three_points(world, replicate)
    with world.held_lease(url):
        locked = replicate("prune", "--target", url, "--keep", "1", "--yes")
        assert locked.code == 3 and "lease" in locked.err
        listed = replicate("list", "--target", url, "--json")
        assert listed.doc["locked"] is True
    assert len(world.restore_points(url)) == 3


def test_prune_asks_on_a_terminal_and_needs_yes_elsewhere(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = _three_points(world, replicate)
    unattended = replicate("prune", "--target", url, "--keep", "1", "--json")
    assert unattended.code == 2 and "--yes" in unattended.doc["error"]
    assert len(world.restore_points(url)) == 3

    questions: list[str] = []
    monkeypatch.setattr(prune_cmd, "interactive", lambda: True)
    monkeypatch.setattr(prune_cmd, "_ask", lambda q: questions.append(q) or "n\n")
    declined = replicate("prune", "--target", url, "--keep", "1")
    assert declined.code == 2 and "not confirmed" in declined.err
    assert questions == [f"Delete 2 restore points of {url.split('?')[0]}? [y/N] "]
    assert len(world.restore_points(url)) == 3

    monkeypatch.setattr(prune_cmd, "_ask", lambda q: "yes\n")
    accepted = replicate("prune", "--target", url, "--keep", "1")
    assert accepted.code == 0 and len(world.restore_points(url)) == 1


def test_restore_refusals(world: World, replicate) -> None:
    url, _ = _three_points(world, replicate)
    unknown = _restore(world, replicate, url, "nope", "x1", "--json")
    assert unknown.code == 2 and "no restore point 'nope'" in unknown.doc["error"]
    taken = _restore(world, replicate, url, "latest", "x2")
    assert taken.code == 0
    again = _restore(world, replicate, url, "latest", "x2")
    assert again.code == 2 and "already exists" in again.err
    missing = replicate("list", "--target", world.target_url())
    assert missing.code == 2 and "no target blob" in missing.err


def test_4096_sector_point_only_to_v2(world: World, replicate) -> None:
    disk = world.create_disk("v2", 1, sku="PremiumV2_LRS", logicalSectorSize=4096)
    world.write(disk, (8 * MiB, pattern(9, 4 * MiB)))
    snap = world.snapshot(disk, "v2s1")
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    refused = _restore(world, replicate, url, "latest", "v2r", "--sku", "Premium_LRS")
    assert refused.code == 2 and "4096-byte logical sectors" in refused.err
    assert "PremiumV2_LRS" in refused.err
    done = _restore(world, replicate, url, "latest", "v2r", "--sku", "PremiumV2_LRS", "--json")
    assert done.code == 0, done.err
    assert world.compute.disks.get(world.rg, "v2r").creation_data.logical_sector_size == 4096
    world.assert_disk_equals("v2r", snap)


def test_damaged_footer_is_refused_before_any_disk(world: World, replicate) -> None:
    """A restore point is immutable; so build a target whose restore point carries a corrupt footer."""
    url = world.target_url()
    size = 4 * MiB
    footer = bytearray(
        emulator_vhd.build_footer(size, original_size=size, created=_now(), unique_id=uuid.uuid4().bytes)
    )
    footer[200] ^= 0xFF  # breaks the checksum only
    with world.container(url) as container:
        container.create_container()
    with world.target(url) as blob:
        blob.create_page_blob(size + 512, metadata={"replicator_schema": "1"})
        blob.upload_page(pattern(5, MiB), 0, MiB)
        blob.upload_page(bytes(footer), size, 512)
        meta = {"snapshot_name": "broken", "snapshot_id": "x", "size_bytes": str(size + 512)}
        blob.create_snapshot(metadata={**meta, "logical_sector_size": "512", "mode": "full"})
    refused = _restore(world, replicate, url, "broken", "dmg", "--json")
    assert refused.code == 2 and "damaged" in refused.doc["error"] and "checksum" in refused.doc["error"]
    assert not [d for d in world.compute.disks.list_by_resource_group(world.rg) if d.name == "dmg"]


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_emulated_import_checks_the_storage_account(world: World, replicate) -> None:
    """Disk create Import over HTTP with the real SDK: storageAccountId must name the sourceUri's account."""
    url, _ = _three_points(world, replicate)
    point = world.restore_points(url)[-1].snapshot
    group = f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}"
    wrong = f"{group}/providers/Microsoft.Storage/storageAccounts/other"
    body = {
        "location": world.location,
        "properties": {
            "creationData": {
                "createOption": "Import",
                "sourceUri": f"{url}?snapshot={point}",
                "storageAccountId": wrong,
            }
        },
    }
    with pytest.raises(HttpResponseError) as refused:
        world.compute.disks.begin_create_or_update(world.rg, "wrongacct", body).result()
    assert refused.value.error.code == "InvalidParameter" and "storage account" in refused.value.error.message
