"""Failover-grade disk properties (sku, osType, hyperVGeneration, supportedCapabilities, security
type, zones, tags, network access, logical sector size, encryption with a disk encryption set) on
disks and snapshots, kept on Import, and what ARM refuses; driven by azure-mgmt-compute's aio client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.aio import ComputeManagementClient

from tests.emulator.test_vm_restore_points import LOCATION, code_of, compute, disk_body, vm_body
from tests.helpers.blob_clients import BlobClients

GIB = 1 << 30


@pytest.fixture
async def client(emulator_env: dict[str, str]) -> AsyncIterator[ComputeManagementClient]:
    async with compute(emulator_env) as c:
        yield c


def encryption_set_body(location: str, group: str) -> dict[str, Any]:
    """A disk encryption set's PUT body: a system identity and a key of a vault in `group`."""
    return {
        "location": location,
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "activeKey": {
                "sourceVault": {
                    "id": f"/subscriptions/s/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/kv"
                },
                "keyUrl": "https://kv.vault.azure.net/keys/k/0123456789abcdef",
            }
        },
    }


async def encryption_set(
    client: ComputeManagementClient, rg: str, name: str, location: str = LOCATION
) -> Any:
    body = encryption_set_body(location, rg)
    return await (await client.disk_encryption_sets.begin_create_or_update(rg, name, body)).result()


FAILOVER = {
    "osType": "linux",  # ARM's enums are case-insensitive; answered in Azure's spelling
    "hyperVGeneration": "V2",
    "supportedCapabilities": {
        "architecture": "Arm64",
        "acceleratedNetwork": True,
        "diskControllerTypes": "SCSI, NVMe",
    },
    "networkAccessPolicy": "DenyAll",
    "publicNetworkAccess": "Disabled",
}


async def test_properties_round_trip_on_disks_and_snapshots(client: ComputeManagementClient) -> None:
    rg = f"rg-{uuid.uuid4().hex[:10]}"
    des = await encryption_set(client, rg, "des1")
    assert (des.location, des.encryption_type, des.provisioning_state) == (
        LOCATION,
        "EncryptionAtRestWithCustomerKey",
        "Succeeded",
    )
    assert des.active_key.key_url.endswith("/k/0123456789abcdef") and des.identity.type == "SystemAssigned"
    body = {
        **disk_body("Premium_LRS", **FAILOVER, encryption={"diskEncryptionSetId": des.id}),
        "zones": ["2"],
        "tags": {"app": "db", "tier": "data"},
    }
    disk = await (await client.disks.begin_create_or_update(rg, "d1", body)).result()
    for got in (
        disk,
        await client.disks.get(rg, "d1"),
        *[d async for d in client.disks.list_by_resource_group(rg)],
    ):
        assert (got.sku.name, got.zones, got.tags) == ("Premium_LRS", ["2"], {"app": "db", "tier": "data"})
        assert (got.os_type, got.hyper_v_generation) == ("Linux", "V2")
        capabilities = got.supported_capabilities
        assert (
            capabilities.architecture,
            capabilities.accelerated_network,
            capabilities.disk_controller_types,
        ) == (
            "Arm64",
            True,
            "SCSI, NVMe",
        )
        assert (got.network_access_policy, got.public_network_access) == ("DenyAll", "Disabled")
        assert (got.encryption.type, got.encryption.disk_encryption_set_id) == (
            "EncryptionAtRestWithCustomerKey",
            des.id,
        )
        assert got.creation_data.logical_sector_size == 512 and got.security_profile is None

    # a snapshot carries what a replacement disk needs from its disk; network access is its own
    snap_body = {"location": LOCATION, "properties": {"incremental": True, "creationData": {
        "createOption": "Copy", "sourceResourceId": disk.id}}}  # fmt: skip
    snap = await (await client.snapshots.begin_create_or_update(rg, "s1", snap_body)).result()
    assert (snap.os_type, snap.hyper_v_generation, snap.supported_capabilities.architecture) == (
        "Linux",
        "V2",
        "Arm64",
    )
    assert snap.encryption.disk_encryption_set_id == des.id
    assert (snap.network_access_policy, snap.public_network_access) == ("AllowAll", "Enabled")
    own = {
        **snap_body,
        "properties": {**snap_body["properties"], "networkAccessPolicy": "DenyAll", "osType": "Windows"},
    }
    snap2 = await (await client.snapshots.begin_create_or_update(rg, "s2", own)).result()
    assert (snap2.network_access_policy, snap2.os_type) == ("DenyAll", "Windows")

    # a zonal disk attaches to a VM of its zone only
    os_body = {**disk_body(osType="Linux"), "zones": ["2"]}
    os_disk = await (await client.disks.begin_create_or_update(rg, "os", os_body)).result()
    with pytest.raises(HttpResponseError) as zone:
        await client.virtual_machines.begin_create_or_update(
            rg, "vm", {**vm_body(os_disk.id, {0: disk.id}), "zones": ["1"]}
        )
    assert "not in the same zone as the VM. VM zone: '1'. Disk zone: '2'" in str(zone.value)
    vm = await (
        await client.virtual_machines.begin_create_or_update(
            rg, "vm", {**vm_body(os_disk.id, {0: disk.id}), "zones": ["2"]}
        )
    ).result()
    assert vm.zones == ["2"]


def import_source(blob_clients: BlobClients, size: int = GIB + 512) -> tuple[str, str]:
    """A page blob the size of a fixed VHD in an emulated account: (sourceUri, storageAccountId)."""
    account, container = f"acct{uuid.uuid4().hex[:8]}", "vhds"
    service = blob_clients.key(account)
    service.create_container(container)
    service.get_blob_client(container, "os.vhd").create_page_blob(size)
    uri = f"{blob_clients.url(account)}/{container}/os.vhd"
    account_id = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{account}"
    return uri, account_id


def import_body(uri: str, account_id: str, **props: Any) -> dict[str, Any]:
    return {
        "location": LOCATION,
        "sku": {"name": "StandardSSD_LRS"},
        "properties": {
            "creationData": {"createOption": "Import", "sourceUri": uri, "storageAccountId": account_id},
            **props,
        },
    }


async def test_import_keeps_what_the_body_says(
    client: ComputeManagementClient, blob_clients: BlobClients
) -> None:
    rg = f"rg-{uuid.uuid4().hex[:10]}"
    des = await encryption_set(client, rg, "des1")
    uri, account_id = import_source(blob_clients)
    body = {
        **import_body(
            uri,
            account_id,
            **{**FAILOVER, "osType": "Windows"},
            securityProfile={"securityType": "TrustedLaunch"},
            encryption={"type": "EncryptionAtRestWithPlatformAndCustomerKeys", "diskEncryptionSetId": des.id},
        ),
        "zones": ["3"],
        "tags": {"replica-of": "vm1-os"},
    }
    disk = await (await client.disks.begin_create_or_update(rg, "restored", body)).result()
    got = await client.disks.get(rg, "restored")
    for d in (disk, got):
        assert (d.sku.name, d.os_type, d.hyper_v_generation, d.zones) == (
            "StandardSSD_LRS",
            "Windows",
            "V2",
            ["3"],
        )
        assert (d.security_profile.security_type, d.tags) == ("TrustedLaunch", {"replica-of": "vm1-os"})
        assert d.supported_capabilities.disk_controller_types == "SCSI, NVMe"
        assert (d.encryption.type, d.encryption.disk_encryption_set_id) == (
            "EncryptionAtRestWithPlatformAndCustomerKeys",
            des.id,
        )
        assert (d.creation_data.create_option, d.creation_data.logical_sector_size, d.disk_size_gb) == (
            "Import",
            512,
            1,
        )
        assert (d.network_access_policy, d.public_network_access) == ("DenyAll", "Disabled")


@pytest.mark.parametrize(
    ("props", "extra", "status", "code", "text"),
    [
        (
            {
                "securityProfile": {"securityType": "ConfidentialVM_DiskEncryptedWithCustomerKey"},
                "hyperVGeneration": "V2",
            },
            {},
            400,
            "BadRequest",
            "Security Type 'ConfidentialVM_DiskEncryptedWithCustomerKey' is not supported for CreateOption "
            "'Import'. Supported create options are FromImage, ImportSecure, UploadPreparedSecure.",
        ),
        (
            {"securityProfile": {"securityType": "TrustedLaunch"}, "hyperVGeneration": "V1"},
            {},
            400,
            "BadRequest",
            "V2",
        ),
        (
            {},
            {"zones": ["1", "2"]},
            400,
            "ResourceTypeNotSupportMultiZones",
            "Please provide a single availability zone",
        ),
        (
            {},
            {"zones": ["4"]},
            400,
            "InvalidAvailabilityZone",
            "The supported zones for location 'westeurope' are '1,2,3'",
        ),
        (
            {},
            {"zones": ["1"], "location": "westus"},
            400,
            "InvalidAvailabilityZone",
            "for location 'westus' are ''",
        ),
        (
            {"creationData": {"logicalSectorSize": 4096}},
            {},
            400,
            "InvalidParameter",
            "4096 only for PremiumV2_LRS",
        ),
        ({"networkAccessPolicy": "AllowPrivate"}, {}, 400, "InvalidParameter", "diskAccessId"),
        ({"osType": "Plan9"}, {}, 400, "InvalidParameter", "Windows, Linux"),
        (
            {"encryption": {"type": "EncryptionAtRestWithCustomerKey"}},
            {},
            400,
            "InvalidParameter",
            "diskEncryptionSetId",
        ),
    ],
)
async def test_import_refusals(
    client: ComputeManagementClient,
    blob_clients: BlobClients,
    props: dict[str, Any],
    extra: dict[str, Any],
    status: int,
    code: str,
    text: str,
) -> None:
    rg = f"rg-{uuid.uuid4().hex[:10]}"
    uri, account_id = import_source(blob_clients)
    body = {
        **import_body(uri, account_id, **{k: v for k, v in props.items() if k != "creationData"}),
        **extra,
    }
    body["properties"]["creationData"].update(props.get("creationData", {}))
    with pytest.raises(HttpResponseError) as refused:
        await client.disks.begin_create_or_update(rg, "d", body)
    assert (refused.value.status_code, code_of(refused.value)) == (status, code)
    assert text in str(refused.value)
    with pytest.raises(ResourceNotFoundError):
        await client.disks.get(rg, "d")  # refused before anything was created


async def test_security_type_and_encryption_set_refusals(client: ComputeManagementClient) -> None:
    rg = f"rg-{uuid.uuid4().hex[:10]}"
    with pytest.raises(HttpResponseError) as empty:
        body = disk_body(securityProfile={"securityType": "TrustedLaunch"}, hyperVGeneration="V2")
        await client.disks.begin_create_or_update(rg, "d", body)
    assert code_of(empty.value) == "BadRequest"
    assert "Security Type 'TrustedLaunch' is not supported for CreateOption 'Empty'" in str(empty.value)
    far = await encryption_set(client, rg, "des-far", location="eastus")
    with pytest.raises(HttpResponseError) as elsewhere:
        await client.disks.begin_create_or_update(
            rg, "d", disk_body(encryption={"diskEncryptionSetId": far.id})
        )
    assert code_of(elsewhere.value) == "InvalidParameter" and "eastus" in str(elsewhere.value)
    missing = far.id.replace("des-far", "nope")
    with pytest.raises(ResourceNotFoundError):
        await client.disks.begin_create_or_update(
            rg, "d", disk_body(encryption={"diskEncryptionSetId": missing})
        )
    await (await client.disk_encryption_sets.begin_delete(rg, "des-far")).result()
    with pytest.raises(ResourceNotFoundError):
        await client.disk_encryption_sets.get(rg, "des-far")
