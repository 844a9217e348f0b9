"""ARM routes of virtual machines and disk encryption sets, as azure-mgmt-compute calls them.

Virtual Machines - Create Or Update answers 201 (created) or 200 (updated) with the VM and an
`Azure-AsyncOperation` header, Get and the lists 200, Delete 202 (204 when there is no such VM);
Disk Encryption Sets - Create Or Update 202 with the set, Get 200, Delete 202 or 204. The model and
its rules are arm/vms.py's and arm/encryption_sets.py's; only the disk-related part of a VM is
emulated (see docs/emulator.md).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.encryption_sets import EncryptionSet
from replicator.emulator.arm.vms import DiskAttachment, Vm, VmDisk, Vms, VmSpec
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.routes.arm_disk_profile import zones_of
from replicator.emulator.routes.arm_wire import (
    PROVIDER,
    RESOURCE_GROUP,
    ArmWire,
    json_body,
    json_object,
    location,
    optional_int,
    optional_str,
    tags,
)
from replicator.emulator.routes.context import EmulatorContext

_VM = RESOURCE_GROUP + "/virtualMachines/{name}"
_VM_RG_LIST = RESOURCE_GROUP + "/virtualMachines"
_VM_SUB_LIST = "/subscriptions/{sub}" + PROVIDER + "/virtualMachines"
_DES = RESOURCE_GROUP + "/diskEncryptionSets/{name}"


def add_routes(app: web.Application, ctx: EmulatorContext, backend: ArmBackend) -> Vms:
    """Mount the VM and disk encryption set routes; returns the VMs (restore points need them)."""
    routes = _VmRoutes(ctx, backend, Vms(backend))
    app.router.add_route("PUT", _VM, routes.guard(routes.put_vm))
    app.router.add_route("GET", _VM, routes.guard(routes.get_vm))
    app.router.add_route("DELETE", _VM, routes.guard(routes.delete_vm))
    app.router.add_route("GET", _VM_RG_LIST, routes.guard(routes.list_vms))
    app.router.add_route("GET", _VM_SUB_LIST, routes.guard(routes.list_vms))
    app.router.add_route("PUT", _DES, routes.guard(routes.put_des))
    app.router.add_route("GET", _DES, routes.guard(routes.get_des))
    app.router.add_route("DELETE", _DES, routes.guard(routes.delete_des))
    return routes.vms


def parse_vm_spec(body: dict[str, Any]) -> VmSpec:
    props = json_object(body, "properties")
    storage = json_object(props, "storageProfile")
    os_disk = storage.get("osDisk")
    data_disks = storage.get("dataDisks") or []
    if not isinstance(data_disks, list):
        raise arm_errors.invalid_parameter(target="dataDisks", detail="'dataDisks' must be a list.")
    return VmSpec(
        location=location(body),
        vm_size=optional_str(json_object(props, "hardwareProfile").get("vmSize"), "hardwareProfile.vmSize"),
        os_disk=None if os_disk is None else _attachment(os_disk, "osDisk"),
        data_disks=tuple(_attachment(entry, "dataDisks") for entry in data_disks),
        zones=zones_of(body),
        security_type=optional_str(
            json_object(props, "securityProfile").get("securityType"), "securityProfile.securityType"
        ),
        disk_controller_type=optional_str(
            storage.get("diskControllerType"), "storageProfile.diskControllerType"
        ),
        tags=tags(body),
    )


def _attachment(entry: Any, where: str) -> DiskAttachment:
    if not isinstance(entry, dict):
        raise arm_errors.invalid_parameter(target=where, detail=f"'{where}' entries must be objects.")
    disk_id = optional_str(json_object(entry, "managedDisk").get("id"), f"{where}.managedDisk.id")
    if not disk_id:
        raise arm_errors.invalid_parameter(
            target=f"{where}.managedDisk.id",
            detail=f"Required parameter '{where}.managedDisk.id' is missing (only managed disks attach).",
        )
    return DiskAttachment(
        disk_id=disk_id,
        create_option=optional_str(entry.get("createOption"), f"{where}.createOption") or "",
        caching=optional_str(entry.get("caching"), f"{where}.caching"),
        lun=optional_int(entry.get("lun"), f"{where}.lun"),
        os_type=optional_str(entry.get("osType"), f"{where}.osType"),
    )


def vm_json(vm: Vm) -> dict[str, Any]:
    storage: dict[str, Any] = {
        "osDisk": {**_disk_json(vm.os_disk), "osType": vm.os_disk.os_type},
        "dataDisks": [{"lun": d.lun, **_disk_json(d), "toBeDetached": False} for d in vm.data_disks],
    }
    if vm.disk_controller_type:
        storage["diskControllerType"] = vm.disk_controller_type
    props: dict[str, Any] = {
        "vmId": vm.vm_id,
        "provisioningState": "Succeeded",
        "timeCreated": vm.time_created.isoformat(),
        "hardwareProfile": {"vmSize": vm.vm_size},
        "storageProfile": storage,
    }
    if vm.security_type:
        props["securityProfile"] = {"securityType": vm.security_type}
    kind = "Microsoft.Compute/virtualMachines"
    answer = {
        "id": vm.id,
        "name": vm.name,
        "type": kind,
        "location": vm.location,
        "tags": vm.tags,
        "properties": props,
    }
    if vm.zones:
        answer["zones"] = list(vm.zones)
    return answer


def _disk_json(attached: VmDisk) -> dict[str, Any]:
    disk = attached.disk
    return {
        "name": disk.name,
        "caching": attached.caching,
        "createOption": "Attach",
        "diskSizeGB": disk.size_gb,
        "managedDisk": {"id": disk.id, "storageAccountType": disk.sku},
        "deleteOption": "Detach",
        "writeAcceleratorEnabled": False,
    }


def des_json(des: EncryptionSet) -> dict[str, Any]:
    props = {**(des.body.get("properties") or {}), "encryptionType": des.encryption_type,
             "provisioningState": "Succeeded"}  # fmt: skip
    answer = {"id": des.id, "name": des.name, "type": "Microsoft.Compute/diskEncryptionSets",
              "location": des.location, "tags": des.body.get("tags") or {}, "properties": props}  # fmt: skip
    if "identity" in des.body:
        answer["identity"] = des.body["identity"]
    return answer


class _VmRoutes(ArmWire):
    def __init__(self, ctx: EmulatorContext, backend: ArmBackend, vms: Vms) -> None:
        super().__init__(ctx, backend)
        self.vms = vms

    async def put_vm(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        spec = parse_vm_spec(await json_body(request))
        existed = self.vms.get_or_none(m["rg"], m["name"]) is not None
        vm = self.vms.put(m["rg"], m["name"], spec)
        return self.accepted(request, vm.location, None, vm_json(vm), status=200 if existed else 201)

    async def get_vm(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return web.json_response(vm_json(self.vms.get(m["rg"], m["name"])))

    async def delete_vm(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return self.deletion(
            request, lambda: self.vms.get(m["rg"], m["name"]), lambda: self.vms.delete(m["rg"], m["name"])
        )

    async def list_vms(self, request: web.Request) -> web.StreamResponse:
        page = self.vms.list(request.match_info.get("rg"), request.query.get("$skiptoken"))
        return self.page(request, [vm_json(vm) for vm in page.items], page.next_key)

    async def put_des(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await json_body(request)
        des = self.backend.encryption_sets.put(m["rg"], m["name"], location(body), body)
        return self.accepted(request, des.location, None, des_json(des))

    async def get_des(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return web.json_response(des_json(self.backend.encryption_sets.get(m["rg"], m["name"])))

    async def delete_des(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        sets = self.backend.encryption_sets
        return self.deletion(
            request, lambda: sets.get(m["rg"], m["name"]), lambda: sets.delete(m["rg"], m["name"])
        )
