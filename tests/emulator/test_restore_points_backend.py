"""Restore point limits and the shared SAS budget, on the backends with an injected clock and shrunk
`ArmLimits` (Azure's 500 per VM and 10,000 collections per region are too many to create over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.model import ArmLimits, SnapshotSpec
from replicator.emulator.arm.restore_points import RestorePoints
from replicator.emulator.arm.vms import DiskAttachment, Vms, VmSpec
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.errors.arm import ArmError
from tests.emulator.test_arm_backend import RG, SUB, Clock, disk_spec, expect


def world(
    tmp_path: Path, blobs: BlobBackend, clock: Clock, **limits: int
) -> tuple[ArmBackend, RestorePoints]:
    arm = ArmBackend(tmp_path / "arm.sqlite", blobs, SUB, ArmLimits(**limits), clock)  # type: ignore[arg-type]
    return arm, RestorePoints(arm, Vms(arm), agent_ready=lambda: False)


def make_vm(points: RestorePoints, name: str) -> str:
    arm = points.arm
    os_disk = arm.put_disk(RG, f"{name}-os", disk_spec(sku="Premium_LRS"))
    data = arm.put_disk(RG, f"{name}-data", disk_spec(sku="Premium_LRS"))
    spec = VmSpec(
        location="eastus",
        vm_size="Standard_D2s_v5",
        os_disk=DiskAttachment(os_disk.id, os_type="Linux"),
        data_disks=(DiskAttachment(data.id, lun=0),),
    )
    vm = points.vms.put(RG, name, spec)
    points.put_collection(RG, f"{name}-rpc", "eastus", vm.id, None)
    return f"{name}-rpc"


def test_restore_points_per_vm_across_collections(tmp_path: Path, blobs: BlobBackend) -> None:
    clock = Clock()
    arm, points = world(tmp_path, blobs, clock, restore_points_per_vm=4)
    rpc = make_vm(points, "vm1")
    vm_id = points.get_collection(RG, rpc).source_vm
    points.put_collection(RG, "second", "eastus", vm_id, None)
    for i in range(4):
        clock.now += 3600  # past the hourly throttle
        points.create_point(RG, rpc if i % 2 else "second", f"rp{i}", "CrashConsistent", ())
    clock.now += 3600
    with expect("VMRestorePointClientError", 409, "maximum allowed snapshot limit"):
        points.create_point(RG, rpc, "rp4", "CrashConsistent", ())
    points.delete_point(RG, rpc, "rp1")  # deleting frees a place
    assert points.create_point(RG, rpc, "rp4", "CrashConsistent", ()).name == "rp4"
    arm.close()


def test_collections_per_region(tmp_path: Path, blobs: BlobBackend) -> None:
    arm, points = world(tmp_path, blobs, Clock(), collections_per_region=2)
    make_vm(points, "vm1")
    vm_id = points.get_collection(RG, "vm1-rpc").source_vm
    points.put_collection(RG, "two", "East US", vm_id, None)
    with expect("OperationNotAllowed", 409, "2 restore point collections"):
        points.put_collection(RG, "three", "eastus", vm_id, None)
    arm.close()


def test_hourly_throttle_is_per_vm_and_per_consistency_mode(tmp_path: Path, blobs: BlobBackend) -> None:
    clock = Clock()
    arm, points = world(tmp_path, blobs, clock, restore_points_per_window=1)
    rpc1, rpc2 = make_vm(points, "vm1"), make_vm(points, "vm2")
    points.create_point(RG, rpc1, "a", "CrashConsistent", ())
    points.create_point(RG, rpc2, "a", "crashconsistent", ())  # another VM has its own budget
    clock.now += 600
    with pytest.raises(ArmError) as throttled:
        points.create_point(RG, rpc1, "b", "CrashConsistent", ())
    assert (throttled.value.status, throttled.value.code) == (429, "OperationNotAllowed")
    assert throttled.value.headers["Retry-After"] == "3000"
    assert throttled.value.body()["error"]["details"][0]["code"] == "TooManyRequests"
    clock.now += 3000
    assert points.create_point(RG, rpc1, "b", "CrashConsistent", ()).consistency_mode == "CrashConsistent"
    arm.close()


def test_disk_restore_points_share_their_disks_sas_budget(tmp_path: Path, blobs: BlobBackend) -> None:
    clock = Clock()
    arm, points = world(tmp_path, blobs, clock, sas_per_family=2)
    rpc = make_vm(points, "vm1")
    disk = arm.get_disk(RG, "vm1-data")
    arm.put_snapshot(RG, "s1", SnapshotSpec(location="eastus", source_resource_id=disk.id, incremental=True))
    arm.grant_snapshot(RG, "s1", "Read", 600)
    point = points.create_point(RG, rpc, "rp1", "CrashConsistent", ())
    data_drp = next(d for d in point.disks if d.lun == 0).disk_restore_point.rsplit("/", 1)[1]
    os_drp = next(d for d in point.disks if d.lun is None).disk_restore_point.rsplit("/", 1)[1]
    drp = points.get_disk_point(RG, rpc, "rp1", data_drp)
    assert drp.family_id == disk.family_id
    points.grant_disk_point(RG, rpc, "rp1", data_drp, "Read", 600)
    points.grant_disk_point(RG, rpc, "rp1", os_drp, "Read", 600)  # the OS disk is another family
    clock.now += 1
    arm.put_snapshot(RG, "s2", SnapshotSpec(location="eastus", source_resource_id=disk.id, incremental=True))
    with expect("OperationNotAllowed", 409, "2 SAS per snapshot family"):
        arm.grant_snapshot(RG, "s2", "Read", 600)
    points.revoke_disk_point(RG, rpc, "rp1", data_drp)
    assert "sig=" in arm.grant_snapshot(RG, "s2", "Read", 600)
    with expect("InvalidParameter", 400, "read-only"):
        points.grant_disk_point(RG, rpc, "rp1", data_drp, "Write", 600)
    arm.close()
