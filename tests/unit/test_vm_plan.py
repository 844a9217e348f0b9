"""A VM run's pure decisions: its target prefix, which groups it works on, a new group's manifest,
the error of an incomplete group, and --snapshot-now / --source-keep of restore points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from azure.mgmt.compute.models import RestorePoint, VirtualMachine

from replicator.core.consistency import DiskFacts
from replicator.core.errors import LimitError, LockedError, ReplicationError, UserError
from replicator.core.progress import DiskRun, GroupRun
from replicator.engine import vm_restore_points as rps
from replicator.engine.time_budget import BudgetSpent
from replicator.engine.vm_plan import Choice, check_disk_names, choose_groups, new_manifest
from replicator.engine.vm_run import group_error
from replicator.plumbing.urlcheck import parse_target_prefix
from replicator.source import vm as vm_source
from replicator.source.arm import SnapshotInfo
from replicator.source.vm import CapturedDisk, Collection, VmDisk, VmInfo, VmRestorePoint
from replicator.target.groups import Stored
from replicator.target.manifest import DiskEntry, GroupManifest, group_id

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute"
VM_ID = f"{RG}/virtualMachines/vm1"
T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
PREFIX = parse_target_prefix(
    "https://acct.blob.core.windows.net/cont/vms/vm1?sv=1&sig=SECRET", allow_http=False
)


def disk(name: str, lun: int | None = None, caching: str = "None") -> VmDisk:
    return VmDisk(name, "os" if lun is None else "data", lun, f"{RG}/disks/{name}", caching)


OS, D1, D2 = disk("os"), disk("d1", 0), disk("d2", 3)
VM = VmInfo(VM_ID, "vm1", "guid", "westeurope", "Standard_D4s_v5", (OS, D1, D2))


def point(name: str, when: datetime, *disks: VmDisk, mode: str = "CrashConsistent") -> VmRestorePoint:
    rp = f"{RG}/restorePointCollections/c/restorePoints/{name}"
    captured = tuple(CapturedDisk(d, f"{rp}/diskRestorePoints/{d.name}_1") for d in disks)
    return VmRestorePoint(rp, name, when, mode, "Succeeded", "Standard_D4s_v5", captured)


def stored(rp: VmRestorePoint, *committed: str | None) -> Stored:
    disks = tuple(
        DiskEntry(
            c.disk.name,
            c.disk.role,
            c.disk.lun,
            c.disk.disk_id,
            "u",
            c.disk_restore_point_id,
            restore_point=p,
        )
        for c, p in zip(rp.disks, committed, strict=True)
    )
    group = GroupManifest(
        group_id(rp.id, rp.time_created), VM_ID, "vm1", "guid", rp.id, rp.time_created.isoformat(),
        "CrashConsistent", "crash-consistent", (), disks,
    )  # fmt: skip
    return Stored(group, "url", "etag")


# ---------------------------------------------------------------- the target prefix


@pytest.mark.parametrize(
    ("url", "container", "prefix"),
    [
        ("https://acct.blob.core.windows.net/cont", "cont", ""),
        ("https://acct.blob.core.windows.net/cont/", "cont", ""),
        ("https://acct.blob.core.windows.net/cont/vms/vm1/", "cont", "vms/vm1"),
        ("https://127.0.0.1:1000/acct/cont/vms?sv=1&sig=x", "cont", "vms"),
    ],
)
def test_a_prefix_is_a_container_or_a_folder_in_it(url: str, container: str, prefix: str) -> None:
    parsed = parse_target_prefix(url, allow_http=False)
    assert (parsed.container, parsed.prefix) == (container, prefix)
    assert parsed.blob("os.vhd").blob == (f"{prefix}/os.vhd" if prefix else "os.vhd")


def test_a_disk_blob_under_a_prefix_keeps_the_sas_but_never_shows_it() -> None:
    blob = PREFIX.blob("os.vhd")
    assert (
        blob.sas == "sv=1&sig=SECRET"
        and blob.display == "https://acct.blob.core.windows.net/cont/vms/vm1/os.vhd"
    )
    assert "SECRET" not in PREFIX.display + repr(PREFIX)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://acct.blob.core.windows.net/cont/vm1.vhd", "names one blob \\(vm1.vhd\\)"),
        ("https://acct.blob.core.windows.net/cont/x/OS.VHD", "names one blob"),
        ("https://acct.blob.core.windows.net/", "must name a container"),
        ("https://acct.blob.core.windows.net/Bad_Name/x", "container name"),
        ("http://acct.blob.core.windows.net/cont", "plain HTTP"),
    ],
)
def test_what_is_no_prefix_is_bad_input(url: str, says: str) -> None:
    with pytest.raises(UserError, match=says):
        parse_target_prefix(url, allow_http=False)


# ---------------------------------------------------------------- the groups


def test_two_disks_of_one_name_would_share_a_blob() -> None:
    check_disk_names(VM)
    twin = VmDisk("D1", "data", 4, f"{RG.replace('/rg/', '/other/')}/disks/D1", None)
    with pytest.raises(UserError, match="two disks named D1"):
        check_disk_names(VmInfo(VM_ID, "vm1", "g", "l", None, (OS, D1, twin)))


def test_the_newest_restore_point_makes_a_new_group_when_newer_than_the_newest_group() -> None:
    old, new = point("a", T0, OS), point("b", T0 + timedelta(hours=1), OS)
    assert choose_groups([], [], snapshot_now=False) == Choice(None, None, take=False)
    assert choose_groups([], [old, new], snapshot_now=False).new is new
    assert choose_groups([stored(old, "p")], [old, new], snapshot_now=False).new is new
    assert choose_groups([stored(new, "p")], [old, new], snapshot_now=False).new is None  # nothing new
    # the newest restore point was deleted: an older one would roll the replicas back
    assert choose_groups([stored(new, "p")], [old], snapshot_now=False).new is None


def test_an_incomplete_newest_group_is_completed_first() -> None:
    old, new = point("a", T0, OS, D1), point("b", T0 + timedelta(hours=1), OS, D1)
    incomplete = stored(old, "p", None)
    choice = choose_groups([incomplete], [old, new], snapshot_now=False)
    assert (choice.resume, choice.new) == (incomplete, new)
    choice = choose_groups([incomplete], [old], snapshot_now=True)
    assert (choice.resume, choice.new, choice.take) == (incomplete, None, True)
    # an older incomplete group under a newer complete one is left as it is
    assert choose_groups([stored(new, "p", "q"), incomplete], [old, new], snapshot_now=False).resume is None


def _snap(name: str) -> SnapshotInfo:
    return SnapshotInfo(f"{RG}/snapshots/{name}", name, "u", "f", T0, 1, 512, True, None, None, None)


def test_a_new_manifest_lists_every_disk_in_vm_order_with_its_source_point() -> None:
    rp = point("rp1", T0, D2, OS)  # listed out of order: the manifest puts the OS disk first, then LUNs
    facts = {d.name: DiskFacts(d.name, d.role, "Premium_LRS", d.caching) for d in (OS, D1, D2)}
    group = new_manifest(VM, rp, PREFIX, facts, {"d1": (D1, _snap("d1-snap"))})
    assert [(d.name, d.lun) for d in group.disks] == [("os", None), ("d1", 0), ("d2", 3)]
    assert group.disks[0].disk_restore_point_id == rp.disks[1].disk_restore_point_id
    assert (group.disks[1].disk_restore_point_id, group.disks[1].snapshot_id) == (
        None,
        f"{RG}/snapshots/d1-snap",
    )
    assert group.disks[2].blob_url == "https://acct.blob.core.windows.net/cont/vms/vm1/d2.vhd"
    assert not group.complete and group.not_captured == ()
    assert group.group_id == group_id(rp.id, T0) and group.restore_point_time == T0.isoformat()


def test_a_disk_the_restore_point_lacks_is_named_not_captured_and_consistency_is_judged() -> None:
    rp = point("rp1", T0, OS, D1)
    facts = {
        "os": DiskFacts("os", "os", "Premium_LRS", "ReadWrite"),
        "d1": DiskFacts("d1", "data", "Premium_LRS", "None"),
    }
    group = new_manifest(VM, rp, PREFIX, facts, {})
    assert group.not_captured == (("d2", D2.disk_id),)
    assert (
        group.consistency == "best-effort"
        and "os has read/write host caching" in group.consistency_reasons[0]
    )


def _group(*disks: DiskRun) -> GroupRun:
    return GroupRun("g1", "m", "rp", T0, "CrashConsistent", "crash-consistent", (), False, list(disks))


def _run(name: str, error: str | None = None, point: str | None = None) -> DiskRun:
    return DiskRun(name, "data", 0, "id", "t", "s", error=error, restore_point=point)


def test_an_incomplete_group_ends_with_the_error_of_its_disks() -> None:
    group = _group(_run("a", point="p"), _run("b", "held"), _run("c", "broke"))
    err = group_error(group, [LockedError("held"), ReplicationError("broke")])
    assert type(err) is ReplicationError  # a failure outranks a lock
    assert str(err) == (
        "the group g1 is incomplete (2 disks of 3 not committed: b: held; c: broke); a rerun completes it."
    )
    locked = group_error(group, [LockedError("held"), LockedError("also")])
    assert type(locked) is LockedError and "b: held" in str(locked)
    assert type(group_error(group, [RuntimeError("surprise")])) is ReplicationError


def test_the_error_keeps_what_its_class_carries() -> None:
    group = _group(_run("a", "limited"))
    limited = LimitError("limited", retry_after_seconds=42.0)
    err = group_error(group, [limited])
    assert isinstance(err, LimitError) and err.retry_after_seconds == 42.0 and err is not limited
    spent = group_error(group, [BudgetSpent("spent", "at offset 5 of x")])
    assert isinstance(spent, BudgetSpent) and spent.position == "at offset 5 of x"
    assert str(limited) == "limited"  # the disk's own error is left as it was


# ---------------------------------------------------------------- --snapshot-now and --source-keep


def test_restore_point_limits() -> None:
    now = T0 + timedelta(hours=2)
    recent = [point(f"r{i}", now - timedelta(minutes=50 - i * 10)) for i in range(3)]
    with pytest.raises(LimitError, match="3 crash-consistent restore points") as caught:
        rps.check_limits(recent, now)
    assert caught.value.retry_after_seconds == 600.0  # the oldest of the three leaves the hour then
    rps.check_limits([*recent[:2], point("app", now, mode="ApplicationConsistent")], now)
    with pytest.raises(LimitError, match="already has 500 restore points"):
        rps.check_limits([point(f"o{i}", T0) for i in range(500)], now)


def _collection(name: str, owned: bool, target: str | None, *points: VmRestorePoint) -> Collection:
    tag = rps.target_tag(target) if target else None
    return Collection(f"{RG}/restorePointCollections/{name}", name, "rg", owned, tag, points)


def test_source_keep_trims_only_the_tools_restore_points_for_this_target_and_never_a_needed_one() -> None:
    target = "https://acct.blob.core.windows.net/cont/vms/vm1"
    ours_ = [point(f"t{i}", T0 + timedelta(hours=i)) for i in range(4)]
    others = [point(f"h{i}", T0 + timedelta(hours=i, minutes=30)) for i in range(2)]
    elsewhere = [point("x", T0 - timedelta(hours=1))]
    collections = [
        _collection("mine", True, target, *ours_),
        _collection("ops", False, None, *others),
        _collection("theirs", True, target + "2", *elsewhere),
    ]
    # newest 3 of all 7 kept (t3, h1, t2); of the older t0, t1, h0, x: t1 is needed, h0 and x not ours
    trim = rps.plan_trim(collections, 3, {ours_[1].id.upper()}, target)
    assert [p.name for p in trim.delete] == ["t0"]
    assert trim.not_owned == 2


def test_the_restore_point_of_a_disk_restore_point() -> None:
    rp = point("rp1", T0, OS)
    assert rps.restore_point_of(rp.disks[0].disk_restore_point_id) == rp.id
    assert rps.restore_point_of(f"{RG}/snapshots/s1") == "" and rps.restore_point_of("nonsense") == ""


def test_one_collection_per_vm_and_target() -> None:
    a = rps.collection_name("vm1", "https://a.blob.core.windows.net/cont/x")
    assert a == rps.collection_name("vm1", "https://a.blob.core.windows.net/cont/x")
    assert a != rps.collection_name("vm1", "https://a.blob.core.windows.net/cont/y")
    assert a.startswith("vm1-replicator-") and len(rps.collection_name("v" * 80, "t")) <= 80


# ---------------------------------------------------------------- what ARM says of a VM


class _Source:
    """An ArmSource whose compute client answers one VM."""

    def __init__(self, vm: dict[str, Any]) -> None:
        async def get(group: str, name: str) -> VirtualMachine:
            return VirtualMachine(vm)

        self._compute = SimpleNamespace(virtual_machines=SimpleNamespace(get=get))

    def compute(self, subscription: str) -> Any:
        return self._compute

    def arm_errors(self, action: str) -> Any:
        import contextlib

        return contextlib.nullcontext()


def _vm(os_disk: dict[str, Any], *data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": VM_ID,
        "name": "vm1",
        "location": "westeurope",
        "properties": {
            "vmId": "guid",
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {"osDisk": os_disk, "dataDisks": list(data)},
        },
    }


async def test_a_vm_reads_as_its_managed_disks_os_first_then_by_lun() -> None:
    vm = _vm(
        {"name": "os", "caching": "ReadWrite", "managedDisk": {"id": OS.disk_id}},
        {"lun": 5, "name": "b", "managedDisk": {"id": f"{RG}/disks/b"}, "writeAcceleratorEnabled": True},
        {"lun": 1, "name": "a", "managedDisk": {"id": f"{RG}/disks/a"}},
    )
    info = await vm_source.read_vm(_Source(vm), VM_ID)  # type: ignore[arg-type]
    assert [(d.name, d.role, d.lun) for d in info.disks] == [
        ("os", "os", None),
        ("a", "data", 1),
        ("b", "data", 5),
    ]
    assert (info.disks[0].caching, info.disks[2].write_accelerator, info.size) == (
        "ReadWrite",
        True,
        "Standard_D4s_v5",
    )


async def test_an_unmanaged_disk_is_bad_input() -> None:
    vm = _vm(
        {"name": "os", "managedDisk": {"id": OS.disk_id}},
        {"lun": 2, "name": "old", "vhd": {"uri": "https://acct.blob.core.windows.net/vhds/old.vhd"}},
    )
    with pytest.raises(UserError, match="unmanaged disk \\(its data disk at LUN 2, old"):
        await vm_source.read_vm(_Source(vm), VM_ID)  # type: ignore[arg-type]


def test_a_restore_point_reads_as_the_disks_it_holds_excluded_ones_left_out() -> None:
    rp = f"{RG}/restorePointCollections/c/restorePoints/rp1"

    def captured(name: str, **more: Any) -> dict[str, Any]:
        return {"name": name, "managedDisk": {"id": f"{RG}/disks/{name}"}, **more}

    excluded = captured("x", lun=0)
    held = captured("d", lun=1, diskRestorePoint={"id": f"{rp}/diskRestorePoints/d_1"})
    os_disk = captured("os", caching="ReadWrite", diskRestorePoint={"id": f"{rp}/diskRestorePoints/os_1"})
    answer = RestorePoint(
        {
            "id": rp,
            "name": "rp1",
            "properties": {
                "consistencyMode": "CrashConsistent",
                "timeCreated": "2025-01-01T12:00:00+00:00",
                "excludeDisks": [{"id": f"{RG}/disks/x"}],
                "sourceMetadata": {
                    "hardwareProfile": {"vmSize": "Standard_E8ds_v6"},
                    "storageProfile": {"dataDisks": [held, excluded], "osDisk": os_disk},
                },
            },
        }
    )
    info = vm_source.restore_point_info(answer, "vm1")
    assert [(c.disk.name, c.disk_restore_point_id.rsplit("/", 1)[1]) for c in info.disks] == [
        ("os", "os_1"),
        ("d", "d_1"),
    ]
    assert (info.consistency_mode, info.vm_size, info.time_created) == (
        "CrashConsistent",
        "Standard_E8ds_v6",
        T0,
    )
