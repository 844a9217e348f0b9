"""End to end: a restore point records its source disk's failover-grade properties and `restore`
gives them to the new disk (OS type, generation, capabilities, security type, SKU, zone, tags,
network access), each override replaces its value, and what Azure could not import, or a bad
override, is refused with exit 2 before any disk exists."""

from __future__ import annotations

from typing import Any

from tests.e2e.world import MiB, World, pattern
from tests.emulator.test_disk_profile import encryption_set_body
from tests.logs import events

BOOT = {
    "osType": "Windows",
    "hyperVGeneration": "V2",
    "supportedCapabilities": {
        "architecture": "x64",
        "acceleratedNetwork": True,
        "diskControllerTypes": "SCSI, NVMe",
    },
    "networkAccessPolicy": "DenyAll",
    "publicNetworkAccess": "Disabled",
}
TAGS = {"env": "prod", "app": "db"}


def _snapshot(world: World, disk_id: str, name: str, **properties: Any) -> str:
    """A snapshot as an operator takes it; `properties` are its own (a security type the disk's
    create option could not carry, as a Trusted Launch VM's OS disk snapshot has)."""
    body = {
        "location": world.location,
        "properties": {
            "incremental": True,
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            **properties,
        },
    }
    return world.compute.snapshots.begin_create_or_update(world.rg, name, body).result().id


def _replicated_os_disk(world: World, replicate, *, security_type: str | None = None) -> tuple[str, str]:
    """A Windows generation 2 OS disk (Standard_LRS, zone 1, tagged) replicated once: (target, snapshot)."""
    disk = world.create_disk("os", 1, sku="Standard_LRS", tags=TAGS, properties=BOOT, zones=["1"])
    world.write(disk, (0, pattern(1, 2 * MiB)), (900 * MiB, pattern(2, MiB)))
    security = {"securityProfile": {"securityType": security_type}} if security_type else {}
    snap = _snapshot(world, disk.id, "s1", **security)
    url = world.target_url()
    done = replicate("--source", disk.id, "--target", url)
    assert done.code == 0, done.err
    return url, snap


def _restore(world: World, replicate, url: str, name: str, *extra: str):
    return replicate(
        "restore", "--target", url, "--point", "latest", "--resource-group", world.rg,
        "--disk-name", name, "--location", world.location, "--json", *extra,
    )  # fmt: skip


def _encryption_set(world: World, name: str, location: str) -> str:
    body = encryption_set_body(location, world.rg)
    return world.compute.disk_encryption_sets.begin_create_or_update(world.rg, name, body).result().id


def _disk_names(world: World) -> set[str]:
    return {d.name for d in world.compute.disks.list_by_resource_group(world.rg)}


def test_an_os_disk_comes_back_as_it_was(world: World, replicate) -> None:
    url, snap = _replicated_os_disk(world, replicate, security_type="TrustedLaunch")
    listed = replicate("list", "--target", url, "--json").doc["restore_points"][0]["source_disk"]
    assert listed["os_type"] == "Windows" and listed["hyper_v_generation"] == "V2"
    assert (listed["sku"], listed["zone"], listed["tags"]) == ("Standard_LRS", "1", TAGS)
    assert listed["security_type"] == "TrustedLaunch"

    done = _restore(world, replicate, url, "back")
    assert done.code == 0, done.err
    disk = world.compute.disks.get(world.rg, "back")
    assert disk.sku.name == "Standard_LRS"  # not Premium_LRS, whatever the source was
    assert (disk.os_type, disk.hyper_v_generation, disk.zones) == ("Windows", "V2", ["1"])
    caps = disk.supported_capabilities
    assert (caps.architecture, caps.accelerated_network, caps.disk_controller_types) == (
        "x64",
        True,
        "SCSI, NVMe",
    )
    assert disk.security_profile.security_type == "TrustedLaunch"
    assert (disk.network_access_policy, disk.public_network_access) == ("DenyAll", "Disabled")
    assert disk.tags == TAGS
    assert done.doc["disk"]["os_type"] == "Windows" and done.doc["sku"] == "Standard_LRS"
    [said] = events(done.err, "restored")  # --json keeps the line a terminal shows, on the log stream
    assert said["disk"] == done.doc["disk_id"] and "OS type Windows" in said["message"]
    world.assert_disk_equals("back", snap, full=True)


def test_each_override_replaces_what_was_recorded(world: World, replicate) -> None:
    url, snap = _replicated_os_disk(world, replicate)
    des = _encryption_set(world, "des-here", world.location)
    done = _restore(
        world, replicate, url, "moved",
        "--sku", "Premium_LRS", "--zone", "none", "--tags", "env=dr,owner=ops", "--disk-encryption-set", des,
    )  # fmt: skip
    assert done.code == 0, done.err
    disk = world.compute.disks.get(world.rg, "moved")
    assert disk.sku.name == "Premium_LRS" and not disk.zones
    assert disk.tags == {"env": "dr", "app": "db", "owner": "ops"}  # merged over the source's
    assert disk.encryption.disk_encryption_set_id.lower() == des.lower()
    assert disk.encryption.type == "EncryptionAtRestWithCustomerKey"
    assert disk.os_type == "Windows"  # what no override names is kept
    zoned = _restore(world, replicate, url, "zone3", "--zone", "3")
    assert zoned.code == 0, zoned.err
    assert world.compute.disks.get(world.rg, "zone3").zones == ["3"]
    world.assert_disk_equals("moved", snap, full=True)


def test_refusals_create_nothing(world: World, replicate) -> None:
    url, _ = _replicated_os_disk(world, replicate)
    far = _encryption_set(world, "des-far", "eastus")
    before = _disk_names(world)
    cases = [
        (("--disk-encryption-set", far), "customer-managed keys do not cross regions"),
        (("--disk-encryption-set", "/subscriptions/x/nope"), "is not a disk encryption set ID"),
        (("--zone", "4"), "--zone must be 1, 2, 3 or none"),
        (("--tags", "novalue"), "key=value"),
        (("--security-type", "ConfidentialVM_NonPersistedTPM"), "Standard or TrustedLaunch"),
        (("--sku", "Gold_LRS"), "invalid choice"),
        (("--tags", ",".join(f"k{i}=v" for i in range(49))), "at most 50"),
    ]
    for args, words in cases:
        refused = _restore(world, replicate, url, "never", *args)
        assert refused.code == 2, (args, refused.err)
        assert words in refused.err, (args, refused.err)
    assert _disk_names(world) == before


def test_a_confidential_vm_disk_is_refused_before_anything_is_created(world: World, replicate) -> None:
    url, _ = _replicated_os_disk(
        world, replicate, security_type="ConfidentialVM_DiskEncryptedWithPlatformKey"
    )
    before = _disk_names(world)
    refused = _restore(world, replicate, url, "never")
    assert refused.code == 2 and "confidential VM disk" in refused.err and "Azure Backup" in refused.err
    still = _restore(world, replicate, url, "never", "--security-type", "Standard")
    assert still.code == 2 and "encrypted with its VM guest state" in still.err, still.err
    assert _disk_names(world) == before


def test_a_guest_state_only_confidential_disk_restores_as_trusted_launch(world: World, replicate) -> None:
    url, snap = _replicated_os_disk(
        world, replicate, security_type="ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey"
    )
    refused = _restore(world, replicate, url, "never")
    assert refused.code == 2 and "--security-type TrustedLaunch" in refused.err
    done = _restore(world, replicate, url, "tl", "--security-type", "TrustedLaunch")
    assert done.code == 0, done.err
    assert world.compute.disks.get(world.rg, "tl").security_profile.security_type == "TrustedLaunch"
    world.assert_disk_equals("tl", snap, full=True)
