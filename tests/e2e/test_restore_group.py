"""End to end: `restore --group` brings back every disk of a VM's group, from one instant, in
parallel, into one resource group: the disk IDs in VM order (OS disk first, then data disks by LUN),
the document `az vm create --attach-os-disk ... --attach-data-disks ...` takes, each disk byte for
byte its restore point and with its source's recorded properties; refusals create nothing."""

from __future__ import annotations

import pytest
from azure.storage.blob import BlobClient

from replicator.cli import restore_cmd
from replicator.core.errors import ReplicationError
from tests.e2e.test_vm import cli, prefix_url, vm_world
from tests.e2e.world import MiB, World, pattern
from tests.logs import events


def _disks(world: World, group: str) -> list[str]:
    return sorted(d.name for d in world.compute.disks.list_by_resource_group(group))


def test_a_group_comes_back_in_vm_order(world: World) -> None:
    vm, _ = vm_world(world)
    url = prefix_url(world)
    assert cli(world, "--source", vm, "--target", url, "--snapshot-now").code == 0
    second = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert second.code == 0, second.err
    dr = f"{world.rg}-dr"

    done = cli(
        world, "restore", "--target", url, "--group", "latest", "--resource-group", dr,
        "--location", world.location, "--name-suffix=-dr", "--tags", "failover=drill", "--json",
    )  # fmt: skip
    assert done.code == 0, done.err
    doc = done.doc
    newest = second.doc["groups"][0]["group_id"]
    assert doc["group"]["group_id"] == newest
    assert [(d["name"], d["role"], d["lun"]) for d in doc["disks"]] == [
        ("vm1-os", "os", None),
        ("vm1-data1", "data", 0),
        ("vm1-data2", "data", 3),
    ]
    ids = [d["disk_id"] for d in doc["disks"]]
    assert [i.rsplit("/", 1)[1] for i in ids] == ["vm1-os-dr", "vm1-data1-dr", "vm1-data2-dr"]
    assert doc["az_vm_create"] == {"attach_os_disk": ids[0], "attach_data_disks": ids[1:], "os_type": None}
    # --json keeps the log stream's line of each disk restored (stderr), as a terminal shows it
    assert sorted(e["disk"] for e in events(done.err, "restored")) == sorted(ids)
    assert [e["group"] for e in events(done.err, "restored_group")] == [newest]
    assert _disks(world, dr) == ["vm1-data1-dr", "vm1-data2-dr", "vm1-os-dr"]
    for entry in doc["disks"]:
        created = world.compute.disks.get(dr, entry["disk_id"].rsplit("/", 1)[1])
        assert created.tags == {"failover": "drill"}
        assert created.sku.name == "Standard_LRS"  # the source disk's, recorded by the VM run
        assert entry["restore_point"]["id"] in created.creation_data.source_uri.replace("%3A", ":")
    with world.disks.sas("disks", "vm1-data1-dr", "Read", dr) as sas, BlobClient.from_blob_url(sas) as blob:
        assert blob.download_blob(8 * MiB, MiB).readall() == pattern(2, MiB)  # what vm_world wrote there

    human = cli(
        world, "restore", "--target", url, "--group", newest, "--resource-group", f"{dr}2",
        "--location", world.location,
    )  # fmt: skip
    assert human.code == 0, human.err
    assert [line.rsplit("/", 1)[1] for line in human.out.split()] == ["vm1-os", "vm1-data1", "vm1-data2"]
    assert "--attach-os-disk" in human.err and "--attach-data-disks" in human.err


def test_group_refusals_create_nothing(world: World) -> None:
    vm, _ = vm_world(world)
    url = prefix_url(world)
    assert cli(world, "--source", vm, "--target", url, "--snapshot-now").code == 0
    dr = f"{world.rg}-dr"
    taken = {
        "location": world.location,
        "properties": {"diskSizeGB": 1, "creationData": {"createOption": "Empty"}},
    }
    world.compute.disks.begin_create_or_update(dr, "vm1-data2-dr", taken).result()
    cases = [
        (("--group", "latest", "--name-suffix=-dr"), "vm1-data2-dr already exists"),
        (("--group", "20990101T000000Z-00000000"), "there is no group"),
        (("--group", "latest", "--disk-name", "x"), "--disk-name names one disk"),
        (("--group", "latest", "--zone", "7"), "--zone must be"),
        (("--point", "latest"), "--disk-name is required with --point"),
        (("--point", "latest", "--disk-name", "x"), "`restore` and `drill` take one with --group"),
    ]
    for args, words in cases:
        refused = cli(
            world, "restore", "--target", url, "--resource-group", dr, "--location", world.location, *args
        )
        assert refused.code == 2 and words in refused.err, (args, refused.err)
    assert _disks(world, dr) == ["vm1-data2-dr"]  # the OS and first data disk were never created


def test_a_group_drill_passes_and_cleans_up(world: World) -> None:
    vm, _ = vm_world(world)
    url = prefix_url(world)
    assert cli(world, "--source", vm, "--target", url, "--snapshot-now").code == 0
    scratch = f"{world.rg}-drills"
    done = cli(
        world, "drill", "--target", url, "--group", "latest", "--resource-group", scratch,
        "--location", world.location, "--json",
    )  # fmt: skip
    assert done.code == 0, done.err
    doc = done.doc
    assert (doc["status"], doc["result"]) == ("passed", "passed")
    assert [(d["name"], d["result"], d["scratch_disk_deleted"]) for d in doc["disks"]] == [
        ("vm1-os", "passed", True),
        ("vm1-data1", "passed", True),
        ("vm1-data2", "passed", True),
    ]
    assert doc["rto_verified_seconds"] == max(d["rto_verified_seconds"] for d in doc["disks"])
    assert _disks(world, scratch) == []
    for disk in doc["disks"]:  # each disk's drill is recorded on its own target
        status = cli(world, "status", "--target", disk["target"], "--max-age", "1d", "--json")
        assert status.doc["targets"][0]["last_drill"]["result"] == "passed"


def test_a_group_restore_that_fails_part_way_lists_the_disks_it_created(
    world: World, replicate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One disk's create fails (ARM refused it: here a stand-in for the create of vm1-data1), the
    others are created: exit 1, and the `--json` envelope lists every disk that exists, as the
    success document would, each also logged as `restored`."""
    vm, _ = vm_world(world)
    url = prefix_url(world)
    assert replicate("--source", vm, "--target", url, "--snapshot-now").code == 0
    real = restore_cmd.make  # what the CLI makes each disk of a group with (engine.striped_restore)

    async def make(config, prepared, on_message):
        if prepared.request.disk_name == "vm1-data1-dr":
            raise ReplicationError("ARM refused the disk create (a stand-in)")
        return await real(config, prepared, on_message)

    monkeypatch.setattr(restore_cmd, "make", make)
    dr = f"{world.rg}-dr"
    failed = replicate(
        "restore", "--target", url, "--group", "latest", "--resource-group", dr,
        "--location", world.location, "--name-suffix=-dr", "--json",
    )  # fmt: skip
    assert failed.code == 1, failed.err
    doc = failed.doc
    assert "1 of 3 disks" in doc["error"] and "vm1-data1: ARM refused" in doc["error"]
    assert [(d["name"], d["role"]) for d in sorted(doc["disks"], key=lambda d: d["name"])] == [
        ("vm1-data2", "data"),
        ("vm1-os", "os"),
    ]
    assert sorted(d["disk_id"].rsplit("/", 1)[1] for d in doc["disks"]) == _disks(world, dr)
    assert sorted(e["disk"] for e in events(failed.err, "restored")) == sorted(
        d["disk_id"] for d in doc["disks"]
    )
