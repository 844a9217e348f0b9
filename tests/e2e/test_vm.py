"""End to end: a virtual machine as the source, through the real CLI (a child process) against the
emulator: its disks from one VM restore point (a group), the group manifest, `list` of the groups,
an incomplete group completed by a rerun, a refused diff, a best-effort group, the fleet, and bad input.

The oracles share no code with the replicator: each disk's restore point is read back through the
SDK and compared with its disk restore point read through its own Read SAS (World.assert_restore_point_holds),
and the bytes the test wrote are looked for where it wrote them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from azure.storage.blob import ContainerClient

from replicator.devtools.disk_builder import control
from replicator.target import manifest
from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.cli_runs import Run, run
from tests.logs import events


def cli(world: World, *args: str) -> Run:
    return run(world.env, *args)


def vm_world(
    world: World, *, data2_sku: str = "Standard_LRS", os_caching: str = "ReadOnly"
) -> tuple[str, dict[str, Disk]]:
    """A VM with an OS disk and two data disks (LUNs 0 and 3), each written with a known pattern."""
    extra = {"logicalSectorSize": 512} if data2_sku == "PremiumV2_LRS" else {}
    disks = {
        "os": world.create_disk("vm1-os", 1),
        "data1": world.create_disk("vm1-data1", 1),
        "data2": world.create_disk("vm1-data2", 1, sku=data2_sku, **extra),
    }
    world.write(disks["os"], (0, pattern(1, MiB)))
    world.write(disks["data1"], (8 * MiB, pattern(2, MiB)))
    world.write(disks["data2"], (16 * MiB, pattern(3, MiB)))
    vm = world.create_vm("vm1", disks["os"], {0: disks["data1"], 3: disks["data2"]}, {"vm1-os": os_caching})
    return vm, disks


def prefix_url(world: World) -> str:
    """A folder of a new container: where a VM's disks and groups go."""
    return world.target_url(blob=f"vms/{uuid.uuid4().hex[:6]}")


def container_of(world: World, prefix: str) -> ContainerClient:
    """The container of a prefix URL made by `prefix_url`."""
    return ContainerClient.from_container_url(prefix.rsplit("/", 2)[0], credential=world.credential)


def by_name(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in group["disks"]}


def assert_group_holds(world: World, group: dict[str, Any]) -> None:
    """Every committed disk's restore point reads back as its disk restore point (or snapshot)."""
    for disk in group["disks"]:
        assert disk["committed"], disk
        world.assert_restore_point_holds(disk["target"], disk["restore_point"], disk["source_point_id"])


def read_bytes(world: World, url: str, restore_point: str, offset: int, length: int) -> bytes:
    with world.target(url, restore_point) as blob:
        return blob.download_blob(offset, length).readall()


def stored_manifest(world: World, url: str) -> tuple[dict[str, Any], dict[str, str]]:
    with world.target(url) as blob:
        return json.loads(blob.download_blob().readall()), blob.get_blob_properties().metadata


def test_a_vm_replicated_twice_is_two_complete_groups_the_second_of_diffs(world: World) -> None:
    vm, disks = vm_world(world)
    url = prefix_url(world)
    first = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert first.code == 0, first.err
    (group1,) = first.doc["groups"]
    assert group1["complete"] and group1["consistency"] == "crash-consistent", group1
    assert [d["name"] for d in group1["disks"]] == ["vm1-os", "vm1-data1", "vm1-data2"]
    assert [(d["role"], d["lun"]) for d in group1["disks"]] == [("os", None), ("data", 0), ("data", 3)]
    assert {d["snapshots"][0]["mode"] for d in group1["disks"]} == {"full"}
    assert (
        first.doc["restore_point_taken"]
        and first.doc["newest_complete_group"]["group_id"] == group1["group_id"]
    )
    assert_group_holds(world, group1)

    world.write(disks["data1"], (32 * MiB, pattern(4, MiB)))
    world.write(disks["data2"], (16 * MiB, 512 * 1024))  # a TRIM
    world.write(disks["os"], (0, pattern(5, 64 * 1024)))
    second = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert second.code == 0, second.err
    (group2,) = second.doc["groups"]
    assert group2["complete"] and not group2["resumed"] and group2["group_id"] > group1["group_id"]
    for disk in group2["disks"]:
        (result,) = disk["snapshots"]
        assert result["mode"] == "diff", disk
        assert result["reason"].startswith("diff from vm1-"), disk
    # each disk's line says which disk of the VM it is, and its diff once ("diff from ...")
    starts = sorted(e["message"] for e in events(second.err, "snapshot_start"))
    assert [m.split(": diff from vm1-")[0] for m in starts] == [
        "vm1-data1 (disk 2 of 3)",
        "vm1-data2 (disk 3 of 3)",
        "vm1-os (disk 1 of 3)",
    ], starts
    assert_group_holds(world, group2)
    # the bytes the test wrote, where it wrote them (an oracle independent of the emulator's reads)
    d = by_name(group2)
    assert read_bytes(
        world, d["vm1-data1"]["target"], d["vm1-data1"]["restore_point"], 32 * MiB, MiB
    ) == pattern(4, MiB)
    assert read_bytes(
        world, d["vm1-data2"]["target"], d["vm1-data2"]["restore_point"], 16 * MiB, 512 * 1024
    ) == bytes(512 * 1024)
    assert read_bytes(world, d["vm1-os"]["target"], d["vm1-os"]["restore_point"], 0, 64 * 1024) == pattern(
        5, 64 * 1024
    )
    # the older group's restore points still hold the older bytes
    d1 = by_name(group1)
    assert read_bytes(
        world, d1["vm1-data2"]["target"], d1["vm1-data2"]["restore_point"], 16 * MiB, MiB
    ) == pattern(3, MiB)

    listed = cli(world, "list", "--target", url, "--json")
    assert listed.code == 0, listed.err
    assert [g["group_id"] for g in listed.doc["groups"]] == [group2["group_id"], group1["group_id"]]
    assert all(g["complete"] and g["missing"] == [] for g in listed.doc["groups"])
    document, metadata = stored_manifest(world, group2["manifest"])
    assert metadata[manifest.MARKER_KEY] == "1"
    assert document["vm"]["id"].casefold() == vm.casefold()
    assert [(x["name"], x["committed"], x["restore_point"]) for x in document["disks"]] == [
        (x["name"], True, x["restore_point"]) for x in group2["disks"]
    ]
    human = cli(world, "list", "--target", url)
    assert human.code == 0 and "2 groups of" in human.out and "(2 complete)" in human.out

    again = cli(world, "--source", vm, "--target", url, "--json")  # no new restore point: nothing new
    assert again.code == 0 and again.doc["status"] == "nothing new" and again.doc["groups"] == []


def test_an_incomplete_group_is_flagged_and_a_rerun_completes_it_first(world: World) -> None:
    vm, disks = vm_world(world)
    url = prefix_url(world)
    held = f"{url}/vm1-data2.vhd"
    with container_of(world, url) as container:
        container.create_container()
    with world.target(held) as blob:
        blob.create_page_blob(2 * 1024**3)
    with world.held_lease(held):  # one disk's target is held: that disk cannot commit
        stopped = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--lease-wait", "0", "--json")
    assert stopped.code == 3, stopped.err
    assert stopped.doc["status"] == "locked" and "is incomplete" in stopped.doc["error"]
    (group,) = stopped.doc["groups"]
    disks_run = by_name(group)
    assert (disks_run["vm1-data2"]["status"], disks_run["vm1-data2"]["committed"]) == ("locked", False)
    assert disks_run["vm1-os"]["committed"] and disks_run["vm1-data1"]["committed"]
    assert not group["complete"] and group["missing"] == ["vm1-data2"]

    listed = cli(world, "list", "--target", url, "--json")
    (flagged,) = listed.doc["groups"]
    assert (flagged["group_id"], flagged["complete"], flagged["missing"]) == (
        group["group_id"],
        False,
        ["vm1-data2"],
    )
    assert "incomplete: vm1-data2 not committed" in cli(world, "list", "--target", url).out

    world.write(disks["data1"], (40 * MiB, pattern(6, MiB)))
    rerun = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert rerun.code == 0, rerun.err
    completed, new = rerun.doc["groups"]
    assert (completed["group_id"], completed["resumed"], completed["complete"]) == (
        group["group_id"],
        True,
        True,
    )
    done = by_name(completed)
    assert done["vm1-os"]["status"] == "committed earlier" and done["vm1-data2"]["status"] == "replicated"
    assert new["complete"] and new["group_id"] > completed["group_id"]
    assert by_name(new)["vm1-data2"]["snapshots"][0]["mode"] == "diff"
    assert_group_holds(world, completed)
    assert_group_holds(world, new)
    assert all(g["complete"] for g in cli(world, "list", "--target", url, "--json").doc["groups"])


def test_a_refused_diff_between_disk_restore_points_is_a_full_copy_saying_why(world: World) -> None:
    vm, disks = vm_world(world)
    url = prefix_url(world)
    assert cli(world, "--source", vm, "--target", url, "--snapshot-now").code == 0
    world.write(disks["data1"], (48 * MiB, pattern(7, MiB)))
    control(world.env, "restore-points", {"refuse_diff": True})
    try:
        refused = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    finally:
        control(world.env, "restore-points", {"refuse_diff": False})
    assert refused.code == 0, refused.err
    (group,) = refused.doc["groups"]
    for disk in group["disks"]:
        (result,) = disk["snapshots"]
        assert result["mode"] == "full" and result["base_snapshot_id"] is None, disk
        assert "the service refused the diff from vm1-" in result["reason"]
        assert "does not document diffs between disk restore points" in result["reason"]
    assert_group_holds(world, group)


def test_a_premium_v2_data_disk_makes_a_best_effort_group_that_says_why(world: World) -> None:
    vm, _ = vm_world(world, data2_sku="PremiumV2_LRS")
    url = prefix_url(world)
    done = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert done.code == 0, done.err
    (group,) = done.doc["groups"]
    assert group["complete"] and group["consistency"] == "best-effort"
    (reason,) = group["consistency_reasons"]
    assert reason.startswith("vm1-data2 is a Premium SSD v2 disk, which Azure leaves out of crash-consistent")
    (taken,) = done.doc["snapshots_taken"]
    assert (
        by_name(group)["vm1-data2"]["source_point_id"] == taken
    )  # its own snapshot, beside the restore point
    assert_group_holds(world, group)
    document, _ = stored_manifest(world, group["manifest"])
    assert document["consistency"] == "best-effort" and document["consistency_reasons"] == [reason]
    v2 = next(x for x in document["disks"] if x["name"] == "vm1-data2")
    assert (v2["disk_restore_point_id"], v2["snapshot_id"]) == (None, taken)
    listed = cli(world, "list", "--target", url)
    assert "best-effort: vm1-data2 is a Premium SSD v2 disk" in listed.out


def test_without_snapshot_now_the_newest_restore_point_is_used_and_host_caching_is_said(world: World) -> None:
    vm, _ = vm_world(world, os_caching="ReadWrite")
    url = prefix_url(world)
    nothing = cli(world, "--source", vm, "--target", url, "--json")
    assert nothing.code == 4 and nothing.doc["status"] == "unprotected"
    assert "has no restore point" in nothing.doc["error"] and "--snapshot-now" in nothing.doc["error"]
    world.restore_point(vm)
    newest = world.restore_point(vm)
    done = cli(world, "--source", vm, "--target", url, "--json")
    assert done.code == 0, done.err
    (group,) = done.doc["groups"]
    assert (
        group["restore_point"]["id"].casefold() == newest.casefold()
        and done.doc["restore_point_taken"] is None
    )
    assert group["consistency"] == "best-effort"
    assert group["consistency_reasons"] == [
        "vm1-os has read/write host caching, under which Azure cannot guarantee crash consistency"
    ]
    assert_group_holds(world, group)


def test_a_vm_job_runs_like_a_disk_job_and_a_tagged_vm_is_discovered(world: World) -> None:
    from replicator.fleet.jobs import load_jobs, run_job

    vm, _ = vm_world(world)
    url = prefix_url(world)
    tagged = world.compute.virtual_machines.get(world.rg, "vm1")
    tagged.tags = {"replicator-target": url + "/"}
    world.compute.virtual_machines.begin_create_or_update(world.rg, "vm1", tagged).result()
    env = {
        **world.env,
        "REPLICATOR_DISCOVER": f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}",
        "REPLICATOR_SNAPSHOT_NOW": "true",
    }
    (job,) = asyncio.run(load_jobs(env))
    assert job.source.casefold() == vm.casefold() and job.target == f"{url}/vm1"
    outcome = asyncio.run(run_job(job, env, command="worker"))
    assert (outcome.status, outcome.exit_code) == ("replicated", 0), outcome.error
    assert len(outcome.snapshots) == 3
    assert cli(world, "list", "--target", job.target, "--json").doc["groups"][0]["complete"]


def test_bad_input_exits_2_before_anything_is_written(world: World) -> None:
    vm, _ = vm_world(world)
    url = prefix_url(world)
    one_blob = cli(world, "--source", vm, "--target", f"{url}/vm1.vhd", "--snapshot-now")
    assert one_blob.code == 2 and "names one blob" in one_blob.err
    # another disk's replica already where a disk of the VM would go
    other = world.create_disk("other", 1)
    world.snapshot(other)
    assert cli(world, "--source", other.id, "--target", f"{url}/vm1-data1.vhd").code == 0
    taken = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert taken.code == 2 and "replicates the disk" in taken.doc["error"], taken.err
    assert taken.doc["restore_point_taken"] is None  # refused before the restore point was created
    # a blob the replicator did not write where a group's manifest goes
    point = world.restore_point(vm)
    clean = prefix_url(world)
    created = world.compute.restore_points.get(world.rg, "ops", point.rsplit("/", 1)[1]).time_created
    with container_of(world, clean) as container:
        container.create_container()
        name = f"{clean.rsplit('/', 2)[1]}/{clean.rsplit('/', 1)[1]}/"
        name += manifest.manifest_name(manifest.group_id(point, created))
        container.upload_blob(name, b"{}")
        foreign = cli(world, "--source", vm, "--target", clean, "--json")
        assert foreign.code == 2 and "was not written by the replicator" in foreign.doc["error"], foreign.err
        assert [b.name for b in container.list_blobs()] == [name]  # nothing else was written


def test_source_keep_deletes_only_the_tools_old_restore_points_and_a_fourth_create_is_limited(
    world: World,
) -> None:
    vm, disks = vm_world(world)
    url = prefix_url(world)
    operator = world.restore_point(vm)  # an operator's: never the tool's to delete
    taken = []
    for n in range(2):  # with the operator's, Azure's 3 crash-consistent creates per VM per hour
        world.write(disks["data1"], (n * 8 * MiB, pattern(10 + n, MiB)))
        done = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--source-keep", "1", "--json")
        assert done.code == 0, done.err
        taken.append(done.doc["restore_point_taken"])
    assert done.doc["restore_points_deleted"] == [taken[0]]
    collections = world.compute.restore_point_collections
    expanded = [collections.get(world.rg, c.name, expand="restorePoints") for c in collections.list(world.rg)]
    points = [p.id for c in expanded for p in c.restore_points]
    assert sorted(p.casefold() for p in points) == sorted(p.casefold() for p in (operator, taken[1]))
    limited = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert limited.code == 3 and limited.doc["status"] == "limited", limited.err
    assert "Azure refused the restore point" in limited.doc["error"] and limited.doc["retry_after_seconds"]
    assert limited.doc["restore_point_taken"] is None and limited.doc["groups"] == []


def test_status_judges_a_vm_prefix_by_its_groups_and_a_disk_blob_by_its_restore_points(world: World) -> None:
    vm, _ = vm_world(world)
    url = prefix_url(world)
    nothing = cli(world, "status", "--target", url, "--max-age", "26h", "--json")
    assert nothing.code == 4, nothing.err
    assert f"replicate --source <VM ID> --target {url} --snapshot-now" in nothing.doc["targets"][0]["reason"]
    assert cli(world, "--source", vm, "--target", url, "--snapshot-now").code == 0
    group = cli(world, "list", "--target", url, "--json").doc["groups"][0]

    fresh = cli(world, "status", "--target", url, "--max-age", "26h", "--json")
    assert fresh.code == 0, fresh.err
    (checked,) = fresh.doc["targets"]
    assert checked["verdict"] == "fresh" and checked["target"] == url and checked["source"] == vm
    assert checked["newest_restore_point"]["id"] == group["group_id"]
    assert checked["reason"].startswith(f"the newest complete group {group['group_id']}: the lag")
    human = cli(world, "status", "--target", url, "--max-age", "26h")
    assert human.code == 0 and group["restore_point"]["id"].rsplit("/", 1)[-1] in human.out

    stale = cli(world, "status", "--target", url, "--max-age", "0.001", "--json")
    assert stale.code == 5, stale.err
    assert "exceeds the maximum age" in stale.doc["targets"][0]["reason"]

    disk = cli(world, "status", "--target", f"{url}/vm1-data1.vhd", "--max-age", "26h", "--json")
    assert disk.code == 0, disk.err
    (one,) = disk.doc["targets"]
    assert "no incremental snapshot" not in one["reason"] and "one disk of a VM's group" in one["reason"]
    assert one["verdict"] == "fresh" and one["restore_points"] == 1

    # a disk sent to the VM's prefix itself would become a blob named like the folder: refused
    other = world.create_disk("loose", 1)
    world.snapshot(other)
    before = sorted(b.name for b in container_of(world, url).list_blobs())
    loose = cli(world, "--source", other.id, "--target", url, "--json")
    assert loose.code == 2 and "is a virtual machine's prefix" in loose.doc["error"], loose.err
    assert sorted(b.name for b in container_of(world, url).list_blobs()) == before


def test_a_prefix_in_a_premium_page_blob_account_is_refused_before_anything(world: World) -> None:
    """A premium page-blob account holds no block blobs, and a group's manifest is one: refused up front
    (exit 2, no restore point taken, nothing written), not after every disk is copied."""
    vm, _ = vm_world(world)
    url = prefix_url(world)
    control(world.env, "accounts", {"account": world.account, "premium": True})
    refused = cli(world, "--source", vm, "--target", url, "--snapshot-now", "--json")
    assert refused.code == 2, refused.err
    assert "premium page-blob storage account" in refused.doc["error"], refused.doc["error"]
    assert refused.doc["restore_point_taken"] is None
    with container_of(world, url) as container:
        assert not container.exists() or list(container.list_blobs()) == []
