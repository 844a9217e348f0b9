"""ARM routes of the emulator: Microsoft.Compute disks and snapshots, as azure-mgmt-compute calls them.

Routes → wire (this module: parse JSON bodies, serialize resources, LRO headers) → ArmBackend
(typed model raising ArmError). Every request needs `Authorization: Bearer <token>`, the emulator's
subscription and an api-version.

Long-running operations (PUT, PATCH, DELETE, beginGetAccess, endGetAccess) answer as Azure does:
202 with `Azure-AsyncOperation` (status monitor) and `Location` (`?monitor=true`, the final result)
and `Retry-After: 1`. The work is done before the 202 is sent, so the first status poll already
says Succeeded; Retry-After is 1 rather than 0 because azure-core treats 0 as "no header" and would
fall back to its 30-second default interval.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

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
from replicator.emulator.entra.tokens import ARM_AUDIENCES, Expired, TokenRejected, WrongAudience
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.errors.blob import BlobError
from replicator.emulator.routes.context import EmulatorContext

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PROVIDER = "/providers/Microsoft.Compute"
_RESOURCE = "/subscriptions/{sub}/resourceGroups/{rg}" + _PROVIDER + "/{kind:disks|snapshots}/{name}"
_RG_LIST = "/subscriptions/{sub}/resourceGroups/{rg}" + _PROVIDER + "/{kind:disks|snapshots}"
_SUB_LIST = "/subscriptions/{sub}" + _PROVIDER + "/{kind:disks|snapshots}"
_OPERATION = "/subscriptions/{sub}" + _PROVIDER + "/locations/{location}/operations/{op}"
_COMMON = {"encryption": {"type": "EncryptionAtRestWithPlatformKey"}, "networkAccessPolicy": "AllowAll",
           "publicNetworkAccess": "Enabled"}  # fmt: skip


def add_routes(app: web.Application, ctx: EmulatorContext, clock: Callable[[], float] = time.time) -> None:
    """Mount ARM on `app`; call before the blob plane's catch-all routes (app.py does). `clock` dates
    what ARM creates and expires (app.py passes the one tests can set back: clock.py)."""
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
    routes = _Routes(ctx, backend)
    app.router.add_route("GET", _RESOURCE, routes.guard(routes.get))
    app.router.add_route("PUT", _RESOURCE, routes.guard(routes.put))
    app.router.add_route("PATCH", _RESOURCE, routes.guard(routes.patch))
    app.router.add_route("DELETE", _RESOURCE, routes.guard(routes.delete))
    app.router.add_route("POST", _RESOURCE + "/beginGetAccess", routes.guard(routes.grant))
    app.router.add_route("POST", _RESOURCE + "/endGetAccess", routes.guard(routes.revoke))
    app.router.add_route("GET", _RG_LIST, routes.guard(routes.list))
    app.router.add_route("GET", _SUB_LIST, routes.guard(routes.list))
    app.router.add_route("GET", _OPERATION, routes.guard(routes.operation))
    # Anything else under /subscriptions/ is ARM's to refuse, not the blob plane's to misread.
    app.router.add_route("*", "/subscriptions/{sub}/{tail:.*}", routes.guard(routes.unknown))
    app.router.add_route("*", "/subscriptions{tail:.*}", routes.guard(routes.unknown))


def _error_response(e: arm_errors.ArmError) -> web.Response:
    headers = {"x-ms-failure-cause": "gateway"} if e.status == 401 else {}
    if e.status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"'
        )
    return web.json_response(e.body(), status=e.status, headers=headers)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as e:
        raise arm_errors.invalid_request_content(detail=f"the body is not JSON ({e.msg}).") from e
    if not isinstance(body, dict):
        raise arm_errors.invalid_request_content(detail="the body must be a JSON object.")
    return body


def _optional_int(value: Any, target: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise arm_errors.invalid_parameter(
            target=target, detail=f"'{target}' must be an integer, not {value!r}."
        )
    return value


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())):
        raise arm_errors.invalid_parameter(target="tags", detail="'tags' must be an object of strings.")
    return tags


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise arm_errors.invalid_parameter(target=key, detail=f"'{key}' must be an object.")
    return value


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
    props = _object(body, "properties")
    creation = _object(props, "creationData")
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise arm_errors.invalid_parameter(
            target="location", detail="Required parameter 'location' is missing (null)."
        )
    return location, props, creation


def parse_disk_spec(body: dict[str, Any]) -> DiskSpec:
    location, props, creation = _creation(body)
    return DiskSpec(
        location=location,
        sku=_object(body, "sku").get("name") or "Standard_LRS",
        size_gb=_optional_int(props.get("diskSizeGB"), "diskSizeGB"),
        create_option=creation.get("createOption") or "",
        logical_sector_size=_optional_int(
            creation.get("logicalSectorSize"), "creationData.logicalSectorSize"
        ),
        source_uri=creation.get("sourceUri"),
        storage_account_id=creation.get("storageAccountId"),
        tags=_tags(body),
        data_access_auth_mode=_data_access_auth_mode(props),
    )


def parse_disk_update(body: dict[str, Any]) -> DiskUpdate:
    props = _object(body, "properties")
    return DiskUpdate(
        size_gb=_optional_int(props.get("diskSizeGB"), "diskSizeGB"),
        sku=_object(body, "sku").get("name"),
        tags=_tags(body),
        data_access_auth_mode=_data_access_auth_mode(props),
    )


def parse_snapshot_spec(body: dict[str, Any]) -> SnapshotSpec:
    location, props, creation = _creation(body)
    return SnapshotSpec(
        location=location,
        source_resource_id=creation.get("sourceResourceId") or "",
        create_option=creation.get("createOption") or "",
        incremental=bool(props.get("incremental", False)),
        sku=_object(body, "sku").get("name"),
        tags=_tags(body),
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
    return {
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
            **_COMMON,
        },
    }


def _disk_creation(disk: Disk) -> dict[str, Any]:
    creation: dict[str, Any] = {"createOption": disk.create_option, "logicalSectorSize": disk.sector_size}
    if disk.source_uri:
        creation["sourceUri"] = disk.source_uri
        creation["storageAccountId"] = disk.storage_account_id
    return creation


def _snapshot_properties(snap: Snapshot) -> tuple[dict[str, Any], dict[str, Any]]:
    """creationData, and the properties only a snapshot has."""
    creation = {
        "createOption": "Copy",
        "sourceResourceId": snap.source_resource_id,
        "sourceUniqueId": snap.source_unique_id,
        "logicalSectorSize": snap.sector_size,
    }
    own: dict[str, Any] = {"incremental": snap.incremental, "completionPercent": snap.completion_percent}
    if snap.family_id is not None:
        own["incrementalSnapshotFamilyId"] = snap.family_id
    return creation, own


class _Routes:
    """Request handlers; `guard` adds auth, subscription and api-version checks and error mapping."""

    def __init__(self, ctx: EmulatorContext, backend: ArmBackend) -> None:
        self.ctx = ctx
        self.backend = backend

    def guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self._authenticate(request)
                sub = request.match_info.get("sub")
                if sub is not None and sub.lower() != self.ctx.options.subscription_id.lower():
                    raise arm_errors.subscription_not_found(subscription=sub)
                if not request.query.get("api-version"):
                    raise arm_errors.missing_api_version()
                return await handler(request)
            except arm_errors.ArmError as e:
                return _error_response(e)
            except BlobError as e:  # the blob plane refused what ARM asked: an emulator bug
                return _error_response(arm_errors.blob_plane_refused(code=e.code))

        return guarded

    def _authenticate(self, request: web.Request) -> None:
        """The emulator's root token, or an Entra ID token for ARM: Azure's four audiences or the
        emulator's own base URL (what a client with `base_url=` asks for), with or without the slash.
        Roles are not checked on ARM (the emulator models data roles only)."""
        header = request.headers.get("Authorization")
        if not header:
            raise arm_errors.authentication_missing()
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            raise arm_errors.invalid_authentication_token()
        if hmac.compare_digest(token.strip().encode(), self.ctx.access_token.encode()):
            return
        audiences = (*ARM_AUDIENCES, self.ctx.base_url, f"{self.ctx.base_url}/")
        try:
            self.ctx.entra.verify(token.strip(), audiences)
        except WrongAudience as e:
            raise arm_errors.invalid_authentication_token_audience(audience=e.audience) from None
        except Expired as e:
            expired, now = (
                datetime.fromtimestamp(t, UTC).strftime("%m/%d/%Y %H:%M:%S")
                for t in (e.expired_at, self.ctx.clock())
            )
            raise arm_errors.expired_authentication_token(expired=expired, now=now) from None
        except TokenRejected:
            raise arm_errors.invalid_authentication_token() from None

    # --- resources ----------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        return web.json_response(resource_json(self.backend.get(m["kind"], m["rg"], m["name"])))

    async def put(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await _json_body(request)
        resource: Disk | Snapshot
        if m["kind"] == "disks":
            resource = self.backend.put_disk(m["rg"], m["name"], parse_disk_spec(body))
        else:
            resource = self.backend.put_snapshot(m["rg"], m["name"], parse_snapshot_spec(body))
        return self._accepted(request, resource.location, None, resource_json(resource))

    async def patch(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await _json_body(request)
        if m["kind"] != "disks":
            snap = self.backend.get_snapshot(m["rg"], m["name"])
            raise arm_errors.property_change_not_allowed(target="properties", resource=snap.id)
        disk = self.backend.update_disk(m["rg"], m["name"], parse_disk_update(body))
        return self._accepted(request, disk.location, None, resource_json(disk))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        try:
            resource = self.backend.get(m["kind"], m["rg"], m["name"])
        except arm_errors.ArmError as e:
            if e.status == 404:
                return web.Response(status=204)  # Azure: deleting what is not there is a no-op
            raise
        self.backend.delete(m["kind"], m["rg"], m["name"])
        return self._accepted(request, resource.location, None)

    async def grant(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        body = await _json_body(request)
        access = body.get("access")
        seconds = _optional_int(body.get("durationInSeconds"), "grantAccessData.durationInSeconds")
        if not isinstance(access, str) or seconds is None:
            raise arm_errors.invalid_parameter(
                target="grantAccessData",
                detail="Required parameters 'access' and 'durationInSeconds' must be given.",
            )
        resource = self.backend.get(m["kind"], m["rg"], m["name"])
        if m["kind"] == "disks":
            url = self.backend.grant_disk(m["rg"], m["name"], access, seconds)
        else:
            url = self.backend.grant_snapshot(m["rg"], m["name"], access, seconds)
        return self._accepted(request, resource.location, {"accessSAS": url})

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        resource = self.backend.get(m["kind"], m["rg"], m["name"])
        self.backend.revoke(m["kind"], m["rg"], m["name"])
        return self._accepted(request, resource.location, None)

    async def list(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        page = self.backend.list(m["kind"], m.get("rg"), request.query.get("$skiptoken"))
        body: dict[str, Any] = {"value": [resource_json(item) for item in page.items]}
        if page.next_key is not None:
            api = quote(request.query["api-version"], safe="")
            skip = quote(page.next_key, safe="")
            body["nextLink"] = f"{self._origin(request)}{request.path}?api-version={api}&$skiptoken={skip}"
        return web.json_response(body)

    # --- long-running operations --------------------------------------------------------

    async def operation(self, request: web.Request) -> web.StreamResponse:
        op_id = request.match_info["op"]
        finished, output = self.backend.operation(op_id)
        if request.query.get("monitor", "").lower() == "true":  # the Location URL: the final result
            return web.json_response(output) if output is not None else web.Response(status=200)
        status: dict[str, Any] = {
            "startTime": finished.isoformat(),
            "endTime": finished.isoformat(),
            "status": "Succeeded",
            "name": op_id,
        }
        if output is not None:
            status["properties"] = {"output": output}
        return web.json_response(status)

    def _accepted(
        self,
        request: web.Request,
        location: str,
        output: dict[str, Any] | None,
        body: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        op_id = self.backend.record_operation(output)
        region = location.replace(" ", "").lower()
        sub = self.ctx.options.subscription_id
        base = f"{self._origin(request)}/subscriptions/{sub}{_PROVIDER}/locations/{region}/operations/{op_id}"
        api = quote(request.query["api-version"], safe="")
        headers = {
            "Azure-AsyncOperation": f"{base}?api-version={api}",
            "Location": f"{base}?monitor=true&api-version={api}",
            "Retry-After": "1",
        }
        if body is None:
            return web.Response(status=202, headers=headers)
        return web.json_response(body, status=202, headers=headers)

    @staticmethod
    def _origin(request: web.Request) -> str:
        """Links point back where the client came from (127.0.0.1 or localhost alike)."""
        return f"{request.scheme}://{request.host}"

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        raise arm_errors.no_such_route(method=request.method, path=request.path)
