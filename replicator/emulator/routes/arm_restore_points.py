"""ARM routes of restore point collections, restore points and disk restore points, as
azure-mgmt-compute calls them, and the restore points' control (middleware/restore_points.py).

Answers as the operations' specs say: Restore Point Collections - Create Or Update 201/200 (not a
long-running operation), Get 200 (`$expand=restorePoints` lists them), Delete 202 or 204;
Restore Points - Create 201 with `Azure-AsyncOperation` (long-running), Get 200
(`$expand=instanceView` adds each disk restore point's status), Delete 202 or 204; Disk Restore
Point - Get and List By Restore Point 200, Grant Access and Revoke Access 202 (the SAS in the final
result, as for disks). The model and its rules are arm/restore_points.py's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.restore_points import (
    CapturedDisk,
    Collection,
    DiskRestorePoint,
    RestorePoint,
    RestorePoints,
)
from replicator.emulator.arm.vms import Vms
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.middleware import restore_points as controls
from replicator.emulator.routes.arm_disk_profile import profile_json
from replicator.emulator.routes.arm_wire import (
    PROVIDER,
    RESOURCE_GROUP,
    ArmWire,
    grant_request,
    json_body,
    json_object,
    location,
    tags,
)
from replicator.emulator.routes.context import EmulatorContext

_RPC = RESOURCE_GROUP + "/restorePointCollections/{rpc}"
_RP = _RPC + "/restorePoints/{rp}"
_DRP_LIST = _RP + "/diskRestorePoints"
_DRP = _DRP_LIST + "/{drp}"
_SUCCEEDED = {"code": "ReplicationState/succeeded", "level": "Info", "displayStatus": "Succeeded"}


def add_routes(app: web.Application, ctx: EmulatorContext, backend: ArmBackend, vms: Vms) -> None:
    """Mount the restore point routes and install their control (before the link model's middleware)."""
    switches = controls.RestorePointControls()
    routes = _RestorePointRoutes(ctx, backend, RestorePoints(backend, vms, lambda: switches.guest_agent))
    controls.install(app, switches, ctx.access_token, routes.points.is_disk_restore_point)
    app.router.add_route("PUT", _RPC, routes.guard(routes.put_collection))
    app.router.add_route("GET", _RPC, routes.guard(routes.get_collection))
    app.router.add_route("DELETE", _RPC, routes.guard(routes.delete_collection))
    app.router.add_route(
        "GET", RESOURCE_GROUP + "/restorePointCollections", routes.guard(routes.list_collections)
    )
    app.router.add_route(
        "GET",
        "/subscriptions/{sub}" + PROVIDER + "/restorePointCollections",
        routes.guard(routes.list_collections),
    )
    app.router.add_route("PUT", _RP, routes.guard(routes.create_point))
    app.router.add_route("GET", _RP, routes.guard(routes.get_point))
    app.router.add_route("DELETE", _RP, routes.guard(routes.delete_point))
    app.router.add_route("GET", _DRP_LIST, routes.guard(routes.list_disk_points))
    app.router.add_route("GET", _DRP, routes.guard(routes.get_disk_point))
    app.router.add_route("POST", _DRP + "/beginGetAccess", routes.guard(routes.grant))
    app.router.add_route("POST", _DRP + "/endGetAccess", routes.guard(routes.revoke))


def collection_json(rpc: Collection, points: list[RestorePoint] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "source": {"id": rpc.source_vm, "location": rpc.source_location},
        "restorePointCollectionId": rpc.collection_id,
        "provisioningState": "Succeeded",
    }
    if points is not None:
        props["restorePoints"] = [point_json(point) for point in points]
    return {"id": rpc.id, "name": rpc.name, "type": "Microsoft.Compute/restorePointCollections",
            "location": rpc.location, "tags": rpc.tags, "properties": props}  # fmt: skip


def point_json(point: RestorePoint, instance_view: bool = False) -> dict[str, Any]:
    os_disk = next((d for d in point.disks if d.role == "os"), None)
    storage: dict[str, Any] = {"dataDisks": [_captured_json(d) for d in point.disks if d.role == "data"]}
    if os_disk is not None:
        storage["osDisk"] = {**_captured_json(os_disk), "osType": os_disk.os_type}
    if point.disk_controller_type:
        storage["diskControllerType"] = point.disk_controller_type
    metadata: dict[str, Any] = {
        "vmId": point.vm_id,
        "hardwareProfile": {"vmSize": point.vm_size},
        "storageProfile": storage,
        "location": point.location,
    }
    if point.security_type:
        metadata["securityProfile"] = {"securityType": point.security_type}
    if point.hyper_v_generation:
        metadata["hyperVGeneration"] = point.hyper_v_generation
    props: dict[str, Any] = {
        "excludeDisks": [{"id": disk_id} for disk_id in point.exclude_disks],
        "sourceMetadata": metadata,
        "provisioningState": "Succeeded",
        "consistencyMode": point.consistency_mode,
        "timeCreated": point.time_created.isoformat(),
    }
    if instance_view:
        props["instanceView"] = {
            "diskRestorePoints": [
                {
                    "id": d.disk_restore_point,
                    "replicationStatus": {"status": _SUCCEEDED, "completionPercent": 100},
                }
                for d in point.disks
            ],
            "statuses": [_SUCCEEDED],
        }
    kind = "Microsoft.Compute/restorePointCollections/restorePoints"
    return {"id": point.id, "name": point.name, "type": kind, "properties": props}


def _captured_json(disk: CapturedDisk) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "name": disk.name,
        "caching": disk.caching,
        "diskSizeGB": disk.size_gb,
        "managedDisk": {"id": disk.disk_id, "storageAccountType": disk.sku},
        "diskRestorePoint": {"id": disk.disk_restore_point},
        "writeAcceleratorEnabled": False,
    }
    if disk.lun is not None:
        answer["lun"] = disk.lun
    return answer


def disk_point_json(drp: DiskRestorePoint) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": drp.id,
        "name": drp.name,
        "type": "Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints",
        "properties": {
            "timeCreated": drp.time_created.isoformat(),
            "sourceResourceId": drp.source_resource_id,
            "sourceUniqueId": drp.source_unique_id,
            "sourceResourceLocation": drp.location,
            "familyId": drp.family_id,
            "logicalSectorSize": drp.sector_size,
            "completionPercent": drp.completion_percent,
        },
    }
    profile_json(drp.profile, answer)
    return answer


class _RestorePointRoutes(ArmWire):
    def __init__(self, ctx: EmulatorContext, backend: ArmBackend, points: RestorePoints) -> None:
        super().__init__(ctx, backend)
        self.points = points

    # --- collections ------------------------------------------------------------------------

    async def put_collection(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await json_body(request)
        source = json_object(json_object(body, "properties"), "source").get("id")
        rpc, created = self.points.put_collection(m["rg"], m["rpc"], location(body), source, tags(body))
        return web.json_response(collection_json(rpc), status=201 if created else 200)

    async def get_collection(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        rpc = self.points.get_collection(m["rg"], m["rpc"])
        expand = request.query.get("$expand", "").lower() == "restorepoints"
        return web.json_response(
            collection_json(rpc, self.points.points_of(m["rg"], m["rpc"]) if expand else None)
        )

    async def delete_collection(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return self.deletion(
            request,
            lambda: self.points.get_collection(m["rg"], m["rpc"]),
            lambda: self.points.delete_collection(m["rg"], m["rpc"]),
        )

    async def list_collections(self, request: web.Request) -> web.StreamResponse:
        page = self.points.list_collections(request.match_info.get("rg"), request.query.get("$skiptoken"))
        return self.page(request, [collection_json(rpc) for rpc in page.items], page.next_key)

    # --- restore points ---------------------------------------------------------------------

    async def create_point(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        props = json_object(await json_body(request), "properties")
        if props.get("sourceRestorePoint") is not None:
            raise arm_errors.invalid_parameter(
                target="properties.sourceRestorePoint",
                detail="Copying a restore point (sourceRestorePoint) to another region is not emulated.",
            )
        point = self.points.create_point(
            m["rg"], m["rpc"], m["rp"], props.get("consistencyMode"), _excluded(props.get("excludeDisks"))
        )
        return self.accepted(request, point.location, None, point_json(point), status=201)

    async def get_point(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        point = self.points.get_point(m["rg"], m["rpc"], m["rp"])
        return web.json_response(
            point_json(point, request.query.get("$expand", "").lower() == "instanceview")
        )

    async def delete_point(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return self.deletion(
            request,
            lambda: self.points.get_point(m["rg"], m["rpc"], m["rp"]),
            lambda: self.points.delete_point(m["rg"], m["rpc"], m["rp"]),
        )

    # --- disk restore points ----------------------------------------------------------------

    async def get_disk_point(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return web.json_response(
            disk_point_json(self.points.get_disk_point(m["rg"], m["rpc"], m["rp"], m["drp"]))
        )

    async def list_disk_points(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        page = self.points.list_disk_points(m["rg"], m["rpc"], m["rp"], request.query.get("$skiptoken"))
        return self.page(request, [disk_point_json(drp) for drp in page.items], page.next_key)

    async def grant(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        access, seconds = await grant_request(request)
        drp = self.points.get_disk_point(m["rg"], m["rpc"], m["rp"], m["drp"])
        url = self.points.grant_disk_point(m["rg"], m["rpc"], m["rp"], m["drp"], access, seconds)
        return self.accepted(request, drp.location, {"accessSAS": url})

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        drp = self.points.get_disk_point(m["rg"], m["rpc"], m["rp"], m["drp"])
        self.points.revoke_disk_point(m["rg"], m["rpc"], m["rp"], m["drp"])
        return self.accepted(request, drp.location, None)


def _excluded(value: Any) -> tuple[str, ...]:
    """excludeDisks: a list of {"id": <disk ID>}."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(e, dict) and isinstance(e.get("id"), str) for e in value
    ):
        raise arm_errors.invalid_parameter(
            target="properties.excludeDisks", detail="'excludeDisks' must be a list of {\"id\": <disk ID>}."
        )
    return tuple(entry["id"] for entry in value)
