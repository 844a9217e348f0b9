"""ARM routes of the emulator: Microsoft.Compute disks and snapshots, as azure-mgmt-compute calls them.

Routes → wire (this module: parse JSON bodies, serialize resources, LRO headers) → ArmBackend
(typed model raising ArmError). Every request needs `Authorization: Bearer <token>`, the emulator's
subscription and an api-version.

Long-running operations, the guard and list pages are arm_wire.py's; the VM, disk encryption set
and restore point routes (arm_vms.py, arm_restore_points.py) are mounted here too, before the
catch-all that refuses any other path under /subscriptions/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from replicator.emulator.arm import uploads
from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.arm.model import (
    DATA_ACCESS_AUTH_MODES,
    SKU_TIERS,
    ArmLimits,
    Disk,
    DiskSpec,
    DiskUpdate,
    Snapshot,
    SnapshotSpec,
)
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.middleware import arm_faults
from replicator.emulator.routes import arm_restore_points, arm_vms
from replicator.emulator.routes.arm_disk_profile import parse_profile, profile_json
from replicator.emulator.routes.arm_wire import (
    PROVIDER,
    RESOURCE_GROUP,
    ArmWire,
    grant_request,
    json_body,
    json_object,
    location,
    optional_int,
    tags,
)
from replicator.emulator.routes.context import EmulatorContext

_RESOURCE = RESOURCE_GROUP + "/{kind:disks|snapshots}/{name}"
_RG_LIST = RESOURCE_GROUP + "/{kind:disks|snapshots}"
_SUB_LIST = "/subscriptions/{sub}" + PROVIDER + "/{kind:disks|snapshots}"
_OPERATION = "/subscriptions/{sub}" + PROVIDER + "/locations/{location}/operations/{op}"
FAILED_OPERATION_STATUS = 400
"""The Location URL of a failed operation answers its error with this status (assumed: ARM's contract
says "the response the request would have given", and the status of that is the service's)."""


def add_routes(
    app: web.Application, ctx: EmulatorContext, clock: Callable[[], float], faults: arm_faults.ArmFaultPlan
) -> None:
    """Mount ARM on `app`; call before the blob plane's catch-all routes (app.py does). `clock` dates
    what ARM creates and expires (app.py passes the one tests can set back: clock.py); `faults` are
    the rules that throttle or fail operations (app.py passes the ones its control route sets)."""
    backend = ArmBackend(
        db_path=ctx.options.data_dir / "arm.sqlite",
        blobs=ctx.blobs,
        subscription_id=ctx.options.subscription_id,
        limits=ArmLimits(
            completion_seconds=ctx.options.completion_seconds, sas_max_seconds=ctx.options.sas_max_seconds
        ),
        clock=clock,
    )

    async def close(_: web.Application) -> None:
        backend.close()

    app.on_cleanup.append(close)
    routes = _Routes(ctx, backend, faults)
    app.router.add_route("GET", _RESOURCE, routes.guard(routes.get))
    app.router.add_route("PUT", _RESOURCE, routes.guard(routes.put, "{kind}-create"))
    app.router.add_route("PATCH", _RESOURCE, routes.guard(routes.patch))
    app.router.add_route("DELETE", _RESOURCE, routes.guard(routes.delete, "{kind}-delete"))
    app.router.add_route("POST", _RESOURCE + "/beginGetAccess", routes.guard(routes.grant, "grant"))
    app.router.add_route("POST", _RESOURCE + "/endGetAccess", routes.guard(routes.revoke, "revoke"))
    app.router.add_route("GET", _RG_LIST, routes.guard(routes.list))
    app.router.add_route("GET", _SUB_LIST, routes.guard(routes.list))
    app.router.add_route("GET", _OPERATION, routes.guard(routes.operation, "poll"))
    vms = arm_vms.add_routes(app, ctx, backend, faults)
    arm_restore_points.add_routes(app, ctx, backend, vms, faults)
    # Anything else under /subscriptions/ is ARM's to refuse, not the blob plane's to misread.
    app.router.add_route("*", "/subscriptions/{sub}/{tail:.*}", routes.guard(routes.unknown))
    app.router.add_route("*", "/subscriptions{tail:.*}", routes.guard(routes.unknown))


def _data_access_auth_mode(props: dict[str, Any]) -> str | None:
    """properties.dataAccessAuthMode: one of the enum's values (ARM enums are case-insensitive), or None."""
    value = props.get("dataAccessAuthMode")
    if value is None:
        return None
    for mode in DATA_ACCESS_AUTH_MODES:
        if isinstance(value, str) and value.lower() == mode.lower():
            return mode
    raise arm_errors.invalid_parameter(
        target="dataAccessAuthMode",
        detail=f"dataAccessAuthMode must be one of {', '.join(DATA_ACCESS_AUTH_MODES)}, not {value!r}.",
    )


def _creation(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """What a disk and a snapshot PUT body both carry: location, properties, properties.creationData."""
    props = json_object(body, "properties")
    return location(body), props, json_object(props, "creationData")


def parse_disk_spec(body: dict[str, Any]) -> DiskSpec:
    where, props, creation = _creation(body)
    return DiskSpec(
        location=where,
        sku=json_object(body, "sku").get("name") or "Standard_LRS",
        size_gb=optional_int(props.get("diskSizeGB"), "diskSizeGB"),
        create_option=creation.get("createOption") or "",
        logical_sector_size=optional_int(creation.get("logicalSectorSize"), "creationData.logicalSectorSize"),
        source_uri=creation.get("sourceUri"),
        storage_account_id=creation.get("storageAccountId"),
        tags=tags(body),
        profile=parse_profile(body),
        data_access_auth_mode=_data_access_auth_mode(props),
        upload_size_bytes=optional_int(creation.get("uploadSizeBytes"), "creationData.uploadSizeBytes"),
    )


def parse_disk_update(body: dict[str, Any]) -> DiskUpdate:
    props = json_object(body, "properties")
    return DiskUpdate(
        size_gb=optional_int(props.get("diskSizeGB"), "diskSizeGB"),
        sku=json_object(body, "sku").get("name"),
        tags=tags(body),
        data_access_auth_mode=_data_access_auth_mode(props),
    )


def parse_snapshot_spec(body: dict[str, Any]) -> SnapshotSpec:
    where, props, creation = _creation(body)
    return SnapshotSpec(
        location=where,
        source_resource_id=creation.get("sourceResourceId") or "",
        create_option=creation.get("createOption") or "",
        incremental=bool(props.get("incremental", False)),
        sku=json_object(body, "sku").get("name"),
        tags=tags(body),
        profile=parse_profile(body),
        data_access_auth_mode=_data_access_auth_mode(props),
    )


def resource_json(resource: Disk | Snapshot) -> dict[str, Any]:
    """ARM's JSON of a disk or a snapshot: the envelope and properties both have, then each one's own."""
    if isinstance(resource, Disk):
        kind, creation, own = "disks", _disk_creation(resource), {}
    else:
        kind, creation, own = "snapshots", *_snapshot_properties(resource)
    if resource.data_access_auth_mode is not None:  # omitted when never set, as ARM omits unset properties
        own["dataAccessAuthMode"] = resource.data_access_auth_mode
    answer: dict[str, Any] = {
        "id": resource.id,
        "name": resource.name,
        "type": f"Microsoft.Compute/{kind}",
        "location": resource.location,
        "tags": resource.tags,
        "sku": {"name": resource.sku, "tier": SKU_TIERS.get(resource.sku, "Standard")},
        "properties": {
            "creationData": creation,
            "diskSizeGB": resource.size_gb,
            "diskSizeBytes": resource.size_bytes,
            "uniqueId": resource.unique_id,
            "timeCreated": resource.time_created.isoformat(),
            "provisioningState": "Succeeded",
            "diskState": resource.disk_state,
            **own,
        },
    }
    profile_json(resource.profile, answer)
    if isinstance(resource, Disk) and resource.managed_by:
        answer["managedBy"] = resource.managed_by
    return answer


def _disk_creation(disk: Disk) -> dict[str, Any]:
    creation: dict[str, Any] = {"createOption": disk.create_option, "logicalSectorSize": disk.sector_size}
    if disk.source_uri:
        creation["sourceUri"] = disk.source_uri
        creation["storageAccountId"] = disk.storage_account_id
    if disk.upload_size_bytes is not None:
        creation["uploadSizeBytes"] = disk.upload_size_bytes
    return creation


def _snapshot_properties(snap: Snapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """creationData, and the properties only a snapshot has."""
    creation = {
        "createOption": "Copy",
        "sourceResourceId": snap.source_resource_id,
        "sourceUniqueId": snap.source_unique_id,
        "logicalSectorSize": snap.sector_size,
    }
    own: dict[str, Any] = {
        "incremental": snap.incremental,
        "completionPercent": snap.completion_percent,
        "provisioningState": snap.provisioning_state,  # replaces the envelope's Succeeded
    }
    if snap.family_id is not None:
        own["incrementalSnapshotFamilyId"] = snap.family_id
    return creation, own


class _Routes(ArmWire):
    """Disk and snapshot handlers, and the operation status every long-running operation shares."""

    # --- resources ----------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return web.json_response(resource_json(self.backend.get(m["kind"], m["rg"], m["name"])))

    async def put(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await json_body(request)
        resource: Disk | Snapshot
        failure = arm_faults.failure_of(request)
        if m["kind"] == "disks":
            spec = parse_disk_spec(body)
            resource = self.backend.put_disk(m["rg"], m["name"], spec)
            if (offset := arm_faults.corruption_of(request)) is not None and spec.create_option == "Import":
                self.backend.corrupt_byte(resource, offset)
        else:
            resource = self.backend.put_snapshot(m["rg"], m["name"], parse_snapshot_spec(body))
            if failure is not None:  # ARM leaves what a failed PUT created, in provisioningState Failed
                resource = self.backend.fail_snapshot(m["rg"], m["name"])
        return self.accepted(request, resource.location, None, resource_json(resource), failure=failure)

    async def patch(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await json_body(request)
        if m["kind"] != "disks":
            snap = self.backend.get_snapshot(m["rg"], m["name"])
            raise arm_errors.property_change_not_allowed(target="properties", resource=snap.id)
        disk = self.backend.update_disk(m["rg"], m["name"], parse_disk_update(body))
        return self.accepted(request, disk.location, None, resource_json(disk))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return self.deletion(
            request,
            lambda: self.backend.get(m["kind"], m["rg"], m["name"]),
            lambda: self.backend.delete(m["kind"], m["rg"], m["name"]),
        )

    async def grant(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        access, seconds = await grant_request(request)
        resource = self.backend.get(m["kind"], m["rg"], m["name"])
        if (failed := self.failed(request, resource)) is not None:
            return failed
        if m["kind"] == "disks":
            url = self.backend.grant_disk(m["rg"], m["name"], access, seconds)
        else:
            url = self.backend.grant_snapshot(m["rg"], m["name"], access, seconds)
        return self.accepted(request, resource.location, {"accessSAS": url})

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        resource = self.backend.get(m["kind"], m["rg"], m["name"])
        if (failed := self.failed(request, resource)) is not None:
            return failed
        self.backend.revoke(m["kind"], m["rg"], m["name"])
        offset = arm_faults.corruption_of(request)
        if offset is not None and isinstance(resource, Disk) and resource.disk_state == uploads.ACTIVE:
            self.backend.corrupt_byte(resource, offset)  # the upload this revoke ended
        return self.accepted(request, resource.location, None)

    async def list(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        page = self.backend.list(m["kind"], m.get("rg"), request.query.get("$skiptoken"))
        return self.page(request, [resource_json(item) for item in page.items], page.next_key)

    # --- long-running operations --------------------------------------------------------

    async def operation(self, request: web.Request) -> web.StreamResponse:
        op_id = request.match_info["op"]
        finished, output, error = self.backend.operation(op_id)
        if request.query.get("monitor", "").lower() == "true":  # the Location URL: the final result
            if error is not None:  # what the request would have answered had it failed at once
                return web.json_response({"error": error}, status=FAILED_OPERATION_STATUS)
            return web.json_response(output) if output is not None else web.Response(status=200)
        status: dict[str, Any] = {
            "startTime": finished.isoformat(),
            "endTime": finished.isoformat(),
            "status": "Succeeded" if error is None else "Failed",
            "name": op_id,
        }
        if error is not None:
            status["error"] = error
        elif output is not None:
            status["properties"] = {"output": output}
        return web.json_response(status)
