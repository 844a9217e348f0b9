"""VMs, restore point collections, restore points and disk restore points, driven by the real
azure-mgmt-compute aio client against a running emulator; data through azure-storage-blob with the
granted SAS (and raw requests where a header matters), as the replicator reads them.

The oracle is the bytes each test wrote through the disks' Write SAS, never the emulator's own code.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.storage.blob import BlobClient

from replicator.devtools.disk_builder import control
from replicator.emulator.process import EmulatorProcess
from tests.emulator.test_arm_sdk import async_compute as compute

GIB = 1 << 30
MIB = 1 << 20
LOCATION = "westeurope"


def blob(env: dict[str, str], sas_url: str) -> BlobClient:
    return BlobClient.from_blob_url(sas_url, connection_verify=env["SSL_CERT_FILE"])


def code_of(e: HttpResponseError) -> str:
    assert e.error is not None
    return str(e.error.code)


def disk_body(sku: str = "Standard_LRS", location: str = LOCATION, **props: Any) -> dict[str, Any]:
    return {
        "location": location,
        "sku": {"name": sku},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1, **props},
    }


def vm_body(os_disk: str, data: dict[int, str], location: str = LOCATION, **props: Any) -> dict[str, Any]:
    return {
        "location": location,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
            "storageProfile": {
                "osDisk": {"createOption": "Attach", "osType": "Linux", "managedDisk": {"id": os_disk}},
                "dataDisks": [
                    {"lun": lun, "createOption": "Attach", "managedDisk": {"id": disk_id}}
                    for lun, disk_id in data.items()
                ],
            },
            **props,
        },
    }


class Vm:
    """A three-disk VM (OS disk, data disks at LUN 0 and 3) in its own resource group."""

    def __init__(self, env: dict[str, str], client: ComputeManagementClient) -> None:
        self.env = env
        self.client = client
        self.rg = f"rg-{uuid.uuid4().hex[:10]}"
        self.names = {"os": "vm1-os", 0: "vm1-data0", 3: "vm1-data3"}
        self.disks: dict[Any, Any] = {}
        self.id = ""

    async def create(self, sku: dict[Any, str] | None = None) -> Vm:
        for role, name in self.names.items():
            body = disk_body((sku or {}).get(role, "Premium_LRS"))
            self.disks[role] = await (
                await self.client.disks.begin_create_or_update(self.rg, name, body)
            ).result()
        data = {lun: self.disks[lun].id for lun in (0, 3)}
        vm = await (
            await self.client.virtual_machines.begin_create_or_update(
                self.rg, "vm1", vm_body(self.disks["os"].id, data)
            )
        ).result()
        self.id = vm.id
        return self

    async def write(self, role: Any, offset: int, data: bytes) -> None:
        """Write through the disk's Write SAS: the emulator's stand-in for the VM's own writes."""
        name = self.names[role]
        grant = {"access": "Write", "durationInSeconds": 600}
        sas = (await (await self.client.disks.begin_grant_access(self.rg, name, grant)).result()).access_sas
        try:
            blob(self.env, sas).upload_page(data, offset=offset, length=len(data))
        finally:
            await (await self.client.disks.begin_revoke_access(self.rg, name)).result()

    async def collection(self, name: str = "rpc1") -> Any:
        body = {"location": LOCATION, "properties": {"source": {"id": self.id}}}
        return await self.client.restore_point_collections.create_or_update(self.rg, name, body)

    async def restore_point(self, name: str, rpc: str = "rpc1", **props: Any) -> Any:
        body = {"properties": {"consistencyMode": "CrashConsistent", **props}}
        return await (await self.client.restore_points.begin_create(self.rg, rpc, name, body)).result()

    async def drp_sas(self, drp_id: str) -> str:
        rpc, rp, drp = drp_id.split("/")[-5], drp_id.split("/")[-3], drp_id.split("/")[-1]
        grant = {"access": "Read", "durationInSeconds": 600}
        poller = await self.client.disk_restore_point.begin_grant_access(self.rg, rpc, rp, drp, grant)
        return (await poller.result()).access_sas

    async def revoke(self, drp_id: str) -> None:
        rpc, rp, drp = drp_id.split("/")[-5], drp_id.split("/")[-3], drp_id.split("/")[-1]
        await (await self.client.disk_restore_point.begin_revoke_access(self.rg, rpc, rp, drp)).result()


@pytest.fixture
async def client(emulator_env: dict[str, str]) -> AsyncIterator[ComputeManagementClient]:
    async with compute(emulator_env) as c:
        yield c


def drp_ids(point: Any) -> dict[Any, str]:
    """Each captured disk's disk restore point ID, by role ("os" or the LUN)."""
    storage = point.source_metadata.storage_profile
    out = {} if storage.os_disk is None else {"os": storage.os_disk.disk_restore_point.id}
    return {**out, **{d.lun: d.disk_restore_point.id for d in storage.data_disks}}


# --- VMs ---------------------------------------------------------------------------------------


async def test_vm_attaches_its_disks_and_detaches_them_when_deleted(
    emulator_env: dict[str, str], client: ComputeManagementClient
) -> None:
    vm = await Vm(emulator_env, client).create()
    got = await client.virtual_machines.get(vm.rg, "vm1")
    assert uuid.UUID(got.vm_id) and got.provisioning_state == "Succeeded"
    assert (got.location, got.hardware_profile.vm_size) == (LOCATION, "Standard_D4s_v5")
    storage = got.storage_profile
    assert (storage.os_disk.name, storage.os_disk.os_type, storage.os_disk.caching) == (
        "vm1-os",
        "Linux",
        "ReadWrite",
    )
    assert storage.os_disk.managed_disk.id == vm.disks["os"].id
    assert [(d.lun, d.name, d.caching, d.create_option) for d in storage.data_disks] == [
        (0, "vm1-data0", "None", "Attach"),
        (3, "vm1-data3", "None", "Attach"),
    ]
    for role in vm.names:
        disk = await client.disks.get(vm.rg, vm.names[role])
        assert (disk.managed_by, disk.disk_state) == (vm.id, "Attached")
    assert [v.name async for v in client.virtual_machines.list(vm.rg)] == ["vm1"]
    assert vm.id in {v.id async for v in client.virtual_machines.list_all()}

    # a disk attached to a running VM cannot be read, resized or deleted
    with pytest.raises(HttpResponseError) as read:
        await client.disks.begin_grant_access(vm.rg, "vm1-data0", {"access": "Read", "durationInSeconds": 60})
    assert (read.value.status_code, code_of(read.value)) == (409, "Conflict")
    with pytest.raises(HttpResponseError) as grow:
        await client.disks.begin_update(vm.rg, "vm1-data0", {"properties": {"diskSizeGB": 2}})
    assert code_of(grow.value) == "Conflict" and "deallocated" in str(grow.value)
    with pytest.raises(HttpResponseError) as delete:
        await client.disks.begin_delete(vm.rg, "vm1-data0")
    assert code_of(delete.value) == "OperationNotAllowed" and vm.id in str(delete.value)

    # updating the VM detaches a data disk it no longer lists
    body = vm_body(vm.disks["os"].id, {0: vm.disks[0].id})
    updated = await (await client.virtual_machines.begin_create_or_update(vm.rg, "vm1", body)).result()
    assert updated.vm_id == got.vm_id and [d.lun for d in updated.storage_profile.data_disks] == [0]
    assert (await client.disks.get(vm.rg, "vm1-data3")).disk_state == "Unattached"

    await (await client.virtual_machines.begin_delete(vm.rg, "vm1")).result()
    with pytest.raises(ResourceNotFoundError):
        await client.virtual_machines.get(vm.rg, "vm1")
    for role in vm.names:
        disk = await client.disks.get(vm.rg, vm.names[role])
        assert (disk.managed_by, disk.disk_state) == (None, "Unattached")


async def test_attach_refusals_are_arms(
    emulator_env: dict[str, str], client: ComputeManagementClient
) -> None:
    vm = await Vm(emulator_env, client).create()
    rg = vm.rg
    spare = await (await client.disks.begin_create_or_update(rg, "spare", disk_body())).result()
    os2 = await (await client.disks.begin_create_or_update(rg, "os2", disk_body())).result()

    async def refused(body: dict[str, Any]) -> HttpResponseError:
        with pytest.raises(HttpResponseError) as e:
            await client.virtual_machines.begin_create_or_update(rg, "vm2", body)
        return e.value

    owned = await refused(vm_body(os2.id, {0: vm.disks[0].id}))
    assert (owned.status_code, code_of(owned)) == (409, "ConflictingUserInput")
    assert f"already owned by VM '{vm.id}'" in str(owned)
    twice = await refused(vm_body(os2.id, {1: spare.id, 2: spare.id}))
    assert code_of(twice) == "InvalidParameter" and "A disk named 'spare' already exists" in str(twice)
    spare2 = await (await client.disks.begin_create_or_update(rg, "spare2", disk_body())).result()
    same_lun = vm_body(os2.id, {1: spare.id})
    same_lun["properties"]["storageProfile"]["dataDisks"].append(
        {"lun": 1, "createOption": "Attach", "managedDisk": {"id": spare2.id}}
    )
    assert "A disk at LUN 1 already exists" in str(await refused(same_lun))
    far = await (await client.disks.begin_create_or_update(rg, "far", disk_body(location="eastus"))).result()
    elsewhere = await refused(vm_body(os2.id, {0: far.id}))
    assert (elsewhere.status_code, code_of(elsewhere)) == (404, "ResourceNotFound")
    zoned = await refused({**vm_body(os2.id, {}), "zones": ["1"]})
    assert (zoned.status_code, code_of(zoned)) == (400, "BadRequest") and "is not in zone '1'" in str(zoned)
    tl = await refused(vm_body(os2.id, {}, securityProfile={"securityType": "TrustedLaunch"}))
    assert "Security type of VM is not compatible" in str(tl)
    # nothing was attached by the refused creates
    assert (await client.disks.get(rg, "os2")).disk_state == "Unattached"


# --- restore points ----------------------------------------------------------------------------


async def test_restore_point_captures_every_disk_at_one_instant(
    emulator_env: dict[str, str], client: ComputeManagementClient
) -> None:
    vm = await Vm(emulator_env, client).create()
    before = {"os": b"\x01" * MIB, 0: b"\x02" * MIB, 3: b"\x03" * MIB}
    for role, data in before.items():
        await vm.write(role, 8 * MIB, data)
    rpc = await vm.collection()
    assert (rpc.source.id, rpc.source.location, rpc.provisioning_state) == (vm.id, LOCATION, "Succeeded")
    assert uuid.UUID(rpc.restore_point_collection_id)

    point = await vm.restore_point("rp1")
    for role in before:  # written after the restore point: must not show in it
        await vm.write(role, 8 * MIB, b"\xff" * MIB)

    got = await client.restore_points.get(vm.rg, "rpc1", "rp1")
    assert got.as_dict() == point.as_dict()
    assert (got.consistency_mode, got.provisioning_state, got.exclude_disks) == (
        "CrashConsistent",
        "Succeeded",
        [],
    )
    metadata = got.source_metadata
    vm_now = await client.virtual_machines.get(vm.rg, "vm1")
    assert (metadata.vm_id, metadata.location, metadata.hardware_profile.vm_size) == (
        vm_now.vm_id,
        LOCATION,
        "Standard_D4s_v5",
    )
    os_disk = metadata.storage_profile.os_disk
    assert (os_disk.name, os_disk.os_type) == ("vm1-os", "Linux")
    # read/write host caching: Azure does not guarantee crash consistency, creates the restore point,
    # and exposes no property saying so; the caching in sourceMetadata is what tells a client
    assert os_disk.caching == "ReadWrite"
    assert [(d.lun, d.name, d.caching, d.disk_size_gb) for d in metadata.storage_profile.data_disks] == [
        (0, "vm1-data0", "None", 1),
        (3, "vm1-data3", "None", 1),
    ]
    ids = drp_ids(got)
    for role, drp_id in ids.items():
        name = drp_id.rsplit("/", 1)[1]
        disk_name, _, guid = name.rpartition("_")
        assert disk_name == vm.names[role] and uuid.UUID(guid), name  # Azure's <disk name>_<GUID>

    listed = [d async for d in client.disk_restore_point.list_by_restore_point(vm.rg, "rpc1", "rp1")]
    assert sorted(d.id for d in listed) == sorted(ids.values())
    for role, drp_id in ids.items():
        drp = await client.disk_restore_point.get(vm.rg, "rpc1", "rp1", drp_id.rsplit("/", 1)[1])
        disk = vm.disks[role]
        assert (drp.source_resource_id, drp.source_unique_id) == (disk.id, disk.unique_id)
        assert drp.family_id and drp.logical_sector_size == 512 and drp.time_created is not None
        assert drp.encryption.type == "EncryptionAtRestWithPlatformKey"
        sas = await vm.drp_sas(drp_id)
        try:
            reader = blob(emulator_env, sas)
            assert reader.download_blob(8 * MIB, MIB).readall() == before[role]
            assert reader.get_blob_properties().size == GIB + 512  # data + the fixed VHD footer
            ranges = [(r.start, r.end) for r in reader.list_page_ranges() if not r.cleared]
            assert (8 * MIB, 9 * MIB - 1) in ranges
        finally:
            await vm.revoke(drp_id)
    expanded = await client.restore_points.get(vm.rg, "rpc1", "rp1", expand="instanceView")
    assert sorted(d.id for d in expanded.instance_view.disk_restore_points) == sorted(ids.values())
    listed_rpc = await client.restore_point_collections.get(vm.rg, "rpc1", expand="restorePoints")
    assert [p.name for p in listed_rpc.restore_points] == ["rp1"]
    assert rpc.id in {c.id async for c in client.restore_point_collections.list(vm.rg)}
    assert rpc.id in {c.id async for c in client.restore_point_collections.list_all()}


async def test_exclude_disks_leaves_them_out(
    emulator_env: dict[str, str], client: ComputeManagementClient
) -> None:
    vm = await Vm(emulator_env, client).create()
    await vm.collection()
    point = await vm.restore_point("rp1", excludeDisks=[{"id": vm.disks[3].id}])
    assert [e.id for e in point.exclude_disks] == [vm.disks[3].id]
    assert set(drp_ids(point)) == {"os", 0}
    assert [d.lun for d in point.source_metadata.storage_profile.data_disks] == [0]
    with pytest.raises(HttpResponseError) as stranger:
        await vm.restore_point("rp2", excludeDisks=[{"id": vm.disks[3].id.replace("vm1-data3", "other")}])
    assert code_of(stranger.value) == "InvalidParameter"


async def test_diffs_between_disk_restore_points_and_the_refusal_control(
    fresh_emulator: Any,
) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    env = emulator.env
    async with compute(env) as client:
        vm = await Vm(env, client).create()
        await vm.write(0, 0, b"\x0a" * MIB)
        await vm.collection()
        first = drp_ids(await vm.restore_point("rp1"))[0]
        await vm.write(0, 4 * MIB, b"\x0b" * (2 * MIB))
        second = drp_ids(await vm.restore_point("rp2"))[0]
        old_sas, new_sas = await vm.drp_sas(first), await vm.drp_sas(second)
        try:
            reader = blob(env, new_sas)
            diff, cleared = reader.get_page_range_diff_for_managed_disk(old_sas)
            assert ([(r["start"], r["end"]) for r in diff], cleared) == ([(4 * MIB, 6 * MIB - 1)], [])

            assert control(env, "restore-points", {"refuse_diff": True}) == {
                "refuse_diff": True,
                "guest_agent": False,
                "refused_diffs": 0,
            }
            answer = _raw_diff(env, new_sas, old_sas)
            assert (answer["status"], answer["code"]) == (409, "PreviousSnapshotOperationNotSupported")
            assert "disk restore points" in answer["body"]
            # the refusal is for disk restore points only: the valid ranges still answer
            assert next((r.start, r.end) for r in reader.list_page_ranges() if not r.cleared) == (0, MIB - 1)
            assert control(env, "restore-points")["refused_diffs"] == 1
            control(env, "restore-points", {"refuse_diff": False})
            assert _raw_diff(env, new_sas, old_sas)["status"] == 200
        finally:
            await vm.revoke(first)
            await vm.revoke(second)


def _raw_diff(env: dict[str, str], sas: str, previous: str) -> dict[str, Any]:
    """Get Page Ranges with x-ms-previous-snapshot-url, as a raw request (status and error code)."""
    request = urllib.request.Request(
        f"{sas}&comp=pagelist",
        headers={"x-ms-version": "2021-08-06", "x-ms-previous-snapshot-url": previous},
    )
    context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            return {"status": answer.status, "code": None, "body": answer.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "code": e.headers.get("x-ms-error-code"), "body": e.read().decode()}


async def test_restore_point_limits_and_consistency_rules(fresh_emulator: Any) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    env = emulator.env
    async with compute(env, retry_total=0) as client:  # no retry: a 429 must reach the test
        vm = await Vm(env, client).create(sku={3: "PremiumV2_LRS"})
        await vm.collection()
        with pytest.raises(HttpResponseError) as v2:
            await vm.restore_point("rp0")
        assert (v2.value.status_code, code_of(v2.value)) == (409, "VMRestorePointClientError")
        assert vm.disks[3].id in str(v2.value) and "excludeDisks" in str(v2.value)
        without_v2 = {"excludeDisks": [{"id": vm.disks[3].id}]}
        for i in range(3):
            await vm.restore_point(f"rp{i}", **without_v2)
        with pytest.raises(HttpResponseError) as throttled:
            await vm.restore_point("rp3", **without_v2)
        response = throttled.value.response
        assert (response.status_code, code_of(throttled.value)) == (429, "OperationNotAllowed")
        assert 3500 < int(response.headers["Retry-After"]) <= 3600
        details = json.loads(response.text())["error"]["details"]
        assert details[0]["code"] == "TooManyRequests"
        assert json.loads(details[0]["message"])["allowedRequestCount"] == 3

        # application consistency needs the VM agent an emulated VM lacks, unless the control says so
        app = {"consistencyMode": "ApplicationConsistent", **without_v2}
        with pytest.raises(HttpResponseError) as agent:
            await vm.restore_point("app1", **app)
        assert code_of(agent.value) == "VMAgentStatusCommunicationError"
        control(env, "restore-points", {"guest_agent": True})
        assert (await vm.restore_point("app1", **app)).consistency_mode == "ApplicationConsistent"
        body = {"properties": {"excludeDisks": without_v2["excludeDisks"]}}  # omitted: application-consistent
        omitted = await (await client.restore_points.begin_create(vm.rg, "rpc1", "app2", body)).result()
        assert omitted.consistency_mode == "ApplicationConsistent"

        # an hour later (the ARM clock moved on) crash-consistent creates are allowed again
        control(env, "clock", {"offset_seconds": 3601})
        assert (await vm.restore_point("rp3", **without_v2)).name == "rp3"
        with pytest.raises(HttpResponseError) as again:
            await vm.restore_point("rp3", **without_v2)
        assert "Updating properties of an existing restore point is not allowed" in str(again.value)


async def test_deleting_restore_points(emulator_env: dict[str, str], client: ComputeManagementClient) -> None:
    vm = await Vm(emulator_env, client).create()
    await vm.collection()
    ids = drp_ids(await vm.restore_point("rp1"))
    await vm.restore_point("rp2")
    sas = await vm.drp_sas(ids[0])
    with pytest.raises(HttpResponseError) as busy:
        await client.restore_points.begin_delete(vm.rg, "rpc1", "rp1")
    assert (busy.value.status_code, code_of(busy.value)) == (409, "DiskRestorePointUsedByCustomer")
    await vm.revoke(ids[0])
    with pytest.raises(HttpResponseError):
        blob(emulator_env, sas).download_blob(0, 512).readall()  # revoked
    await (await client.restore_points.begin_delete(vm.rg, "rpc1", "rp1")).result()
    with pytest.raises(ResourceNotFoundError):
        await client.restore_points.get(vm.rg, "rpc1", "rp1")
    # the collection takes its remaining restore points with it
    await (await client.restore_point_collections.begin_delete(vm.rg, "rpc1")).result()
    with pytest.raises(ResourceNotFoundError):
        await client.restore_points.get(vm.rg, "rpc1", "rp2")
    with pytest.raises(ResourceNotFoundError):
        await client.restore_point_collections.get(vm.rg, "rpc1")
    # the VM's disks are untouched and their snapshots start afresh
    snap = {"location": LOCATION, "properties": {"incremental": True, "creationData": {
        "createOption": "Copy", "sourceResourceId": vm.disks[0].id}}}  # fmt: skip
    assert (await (await client.snapshots.begin_create_or_update(vm.rg, "s", snap)).result()).incremental


async def test_vms_and_restore_points_survive_a_restart(fresh_emulator: Any) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    async with compute(emulator.env) as client:
        vm = await Vm(emulator.env, client).create()
        await vm.write(3, 0, b"\x33" * 4096)
        await vm.collection()
        point = await vm.restore_point("rp1")
    emulator.restart()
    async with compute(emulator.env) as client:
        vm.env, vm.client = emulator.env, client
        assert (await client.virtual_machines.get(vm.rg, "vm1")).id == vm.id
        assert (await client.disks.get(vm.rg, "vm1-data3")).managed_by == vm.id
        again = await client.restore_points.get(vm.rg, "rpc1", "rp1")
        assert again.as_dict() == point.as_dict()
        sas = await vm.drp_sas(drp_ids(again)[3])
        assert blob(emulator.env, sas).download_blob(0, 4096).readall() == b"\x33" * 4096
        await vm.revoke(drp_ids(again)[3])
