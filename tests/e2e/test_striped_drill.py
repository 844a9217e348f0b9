"""End to end: `replicate drill` of a striped restore point (a 16 TiB source in three stripes, built by
hand as striping writes one: tests/e2e/test_striped_restore.py) through the real CLI.

The drill restores the point as `restore` does (by upload) and compares the disk with the stripe
snapshots; a written run touches both sides of the 8 TiB boundary, so a compared range spans two
stripes. The failing drill's difference is made by the emulator, not by the code under test: a
`corrupt_import` rule on `revoke` (docs/emulator.md "ARM faults") inverts one byte of the disk when
the revoke ends its upload, after every page was copied, so the disk no longer holds what the stripe
snapshots hold. Either way the drill's disk is deleted (the emulator, as Azure, refuses to delete a
disk with an active SAS) and every grant is revoked; a bystander disk in the same resource group is
untouched. A VM's group with a disk over 8 TiB is restored (`restore --group`) and drilled
(`drill --group`) the same way, its other disks by Import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from azure.storage.blob import BlobClient

from tests.e2e.test_striped_restore import DATA, STRIPE, TiB, striped_point
from tests.e2e.test_stripes import striped_vm
from tests.e2e.world import MiB, World, pattern
from tests.helpers.arm_faults import requests, rules
from tests.helpers.cli_runs import Run, run
from tests.logs import events

WRITTEN_DATA = 4096 + MiB + 8192 + 6 * MiB + 512  # the extents of striped_point but its footer


@pytest.fixture
def faulty_world(arm_faulty_env: dict[str, str]) -> Iterator[World]:
    """A World on the private emulator whose ARM fault rules (and request counts) these tests set."""
    w = World(arm_faulty_env)
    yield w
    w.close()


def _drill(replicate: Callable[..., Run], world: World, url: str) -> Run:
    return replicate(
        "drill", "--target", url, "--resource-group", world.rg, "--location", world.location, "--json"
    )


def _left(world: World, bystander: str) -> set[str]:
    """The disks of the scratch resource group but the bystander (which must still be there)."""
    names = {d.name for d in world.compute.disks.list_by_resource_group(world.rg)}
    assert bystander in names
    return names - {bystander}


def test_a_striped_point_drills_byte_for_byte_and_leaves_nothing(
    faulty_world: World, arm_faulty_env: dict[str, str], replicate: Callable[..., Run]
) -> None:
    world, env = faulty_world, arm_faulty_env
    made = striped_point(world)
    bystander = world.create_disk("keep-me", 1).name
    rules(env)  # zero the request counts
    done = _drill(replicate, world, made.url)
    assert done.code == 0, done.err
    doc = done.doc
    assert (doc["status"], doc["result"]) == ("passed", "passed")
    assert doc["restore_point"]["id"] == made.point
    comparison = doc["comparison"]
    assert (comparison["expected_size"], comparison["actual_size"]) == (DATA + 512, DATA + 512)
    assert comparison["first_mismatch"] is None and comparison["bytes_compared"] == WRITTEN_DATA
    assert 0 < doc["rto_ready_seconds"] <= doc["rto_verified_seconds"]
    assert doc["scratch_disk_deleted"] and doc["recorded"]
    assert _left(world, bystander) == set()
    counted = requests(env)
    assert counted["grant"] == counted["revoke"] == 3  # upload's Write, footer's Read, the drill's Read
    assert [e["result"] for e in events(done.err, "drill_done")] == ["passed"]
    status = replicate("status", "--target", made.url, "--max-age", "1d", "--json")
    assert status.doc["targets"][0]["last_drill"]["result"] == "passed"


@pytest.mark.parametrize(
    ("offset", "stripe", "local"),
    [
        (STRIPE + 100, 1, 100),  # inside a written extent of stripe 1
        (12 * TiB + 64 * MiB + 3, 1, 4 * TiB + 64 * MiB + 3),  # a page only the disk holds
    ],
)
def test_a_disk_that_differs_from_its_stripes_fails_the_drill_naming_where(
    faulty_world: World,
    arm_faulty_env: dict[str, str],
    replicate: Callable[..., Run],
    offset: int,
    stripe: int,
    local: int,
) -> None:
    world, env = faulty_world, arm_faulty_env
    made = striped_point(world)
    bystander = world.create_disk("keep-me", 1).name
    rules(env, {"on": "revoke", "corrupt_import": offset})  # the revoke that ends the upload
    failed = _drill(replicate, world, made.url)
    assert failed.code == 6, failed.err
    doc = failed.doc
    assert (doc["status"], doc["result"], doc["exit_code"]) == ("mismatch", "mismatch", 6)
    assert doc["comparison"]["first_mismatch"] == offset
    assert f"differs from it at byte {offset} (stripe {stripe}, byte {local} of its snapshot)" in doc["error"]
    assert doc["scratch_disk_deleted"] and _left(world, bystander) == set()
    counted = requests(env)
    assert counted["grant"] == counted["revoke"] == 3
    status = replicate("status", "--target", made.url, "--max-age", "1d", "--json")
    assert status.doc["targets"][0]["last_drill"]["result"] == "mismatch"
    rules(env)
    again = _drill(replicate, world, made.url)  # the restore point itself was never the problem
    assert again.code == 0, again.err


def test_a_group_with_a_disk_over_8_tib_restores_and_drills(world: World) -> None:
    vm, url = striped_vm(world, "gvm")  # written across the stripe boundary and before its end
    assert run(world.env, "--source", vm, "--target", url, "--snapshot-now").code == 0
    where = ("--group", "latest", "--location", world.location, "--json")

    dr = f"{world.rg}-dr"
    done = run(world.env, "restore", "--target", url, "--resource-group", dr, "--name-suffix=-dr", *where)
    assert done.code == 0, done.err
    assert [d["name"] for d in done.doc["disks"]] == ["gvm-os", "gvm-big"]
    assert world.compute.disks.get(dr, "gvm-big-dr").creation_data.create_option == "Upload"
    assert world.compute.disks.get(dr, "gvm-os-dr").creation_data.create_option == "Import"
    with world.disks.sas("disks", "gvm-big-dr", "Read", dr) as sas, BlobClient.from_blob_url(sas) as disk:
        assert disk.download_blob(STRIPE - 4096, 8192).readall() == pattern(2, 8192)  # across stripes
        assert disk.download_blob(9 * TiB - 4096, 4096).readall() == pattern(3, 4096)

    scratch = f"{world.rg}-drills"
    drilled = run(world.env, "drill", "--target", url, "--resource-group", scratch, *where)
    assert drilled.code == 0, drilled.err
    assert [(d["name"], d["result"], d["scratch_disk_deleted"]) for d in drilled.doc["disks"]] == [
        ("gvm-os", "passed", True),
        ("gvm-big", "passed", True),
    ]
    assert list(world.compute.disks.list_by_resource_group(scratch)) == []
