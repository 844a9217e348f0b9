"""What every ARM route module shares: the request guard, JSON bodies, long-running-operation
answers and list pages, as azure-mgmt-compute expects them.

routes/arm.py (disks and snapshots), routes/arm_vms.py (VMs, disk encryption sets) and
routes/arm_restore_points.py each subclass `ArmWire` for their handlers. Every request needs
`Authorization: Bearer <token>`, the emulator's subscription and an api-version.

Long-running operations answer as Azure does: 202 (201 where the operation's spec says so, e.g.
Restore Points - Create) with `Azure-AsyncOperation` (status monitor) and `Location`
(`?monitor=true`, the final result) and `Retry-After: 1`. The work is done before the answer is sent,
so the first status poll already says Succeeded (or Failed, when a fault rule of
middleware/arm_faults.py ends it so); Retry-After is 1 rather than 0 because azure-core
treats 0 as "no header" and would fall back to its 30-second default interval.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from replicator.emulator.arm.backend import ArmBackend
from replicator.emulator.entra.tokens import ARM_AUDIENCES, Expired, TokenRejected, WrongAudience
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.errors.blob import BlobError
from replicator.emulator.middleware import arm_faults
from replicator.emulator.routes.context import EmulatorContext

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Located(Protocol):
    """Any resource: its long-running operations are answered under its region."""

    @property
    def location(self) -> str: ...


PROVIDER = "/providers/Microsoft.Compute"
RESOURCE_GROUP = "/subscriptions/{sub}/resourceGroups/{rg}" + PROVIDER


def error_response(e: arm_errors.ArmError) -> web.Response:
    headers = {"x-ms-failure-cause": "gateway"} if e.status == 401 else {}
    if e.status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"'
        )
    return web.json_response(e.body(), status=e.status, headers={**headers, **e.headers})


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as e:
        raise arm_errors.invalid_request_content(detail=f"the body is not JSON ({e.msg}).") from e
    if not isinstance(body, dict):
        raise arm_errors.invalid_request_content(detail="the body must be a JSON object.")
    return body


def optional_int(value: Any, target: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise arm_errors.invalid_parameter(
            target=target, detail=f"'{target}' must be an integer, not {value!r}."
        )
    return value


def optional_str(value: Any, target: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise arm_errors.invalid_parameter(
            target=target, detail=f"'{target}' must be a string, not {value!r}."
        )
    return value


def tags(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("tags")
    if value is not None and not (
        isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    ):
        raise arm_errors.invalid_parameter(target="tags", detail="'tags' must be an object of strings.")
    return value


def json_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise arm_errors.invalid_parameter(target=key, detail=f"'{key}' must be an object.")
    return value


async def grant_request(request: web.Request) -> tuple[str, int]:
    """The access level and duration of a beginGetAccess body (GrantAccessData), both required."""
    body = await json_body(request)
    access = body.get("access")
    seconds = optional_int(body.get("durationInSeconds"), "grantAccessData.durationInSeconds")
    if not isinstance(access, str) or seconds is None:
        raise arm_errors.invalid_parameter(
            target="grantAccessData",
            detail="Required parameters 'access' and 'durationInSeconds' must be given.",
        )
    return access, seconds


def location(body: dict[str, Any]) -> str:
    value = body.get("location")
    if not isinstance(value, str) or not value:
        raise arm_errors.invalid_parameter(
            target="location", detail="Required parameter 'location' is missing (null)."
        )
    return value


class ArmWire:
    """The guard (auth, subscription, api-version, error mapping) and the answers every handler sends."""

    def __init__(self, ctx: EmulatorContext, backend: ArmBackend, faults: arm_faults.ArmFaultPlan) -> None:
        self.ctx = ctx
        self.backend = backend
        self.faults = faults

    def guard(self, handler: Handler, operation: str | None = None) -> Handler:
        """`operation`: what fault rules call the route's requests (checked after authentication,
        subscription and api-version); `{kind}` is filled with `disk` or `snapshot`."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                self._authenticate(request)
                sub = request.match_info.get("sub")
                if sub is not None and sub.lower() != self.ctx.options.subscription_id.lower():
                    raise arm_errors.subscription_not_found(subscription=sub)
                if not request.query.get("api-version"):
                    raise arm_errors.missing_api_version()
                if operation is not None:
                    kind = request.match_info.get("kind", "")
                    rule = self.faults.fire(operation.format(kind=kind.removesuffix("s")))
                    if rule is not None and rule.throttles:
                        return arm_faults.throttled(rule)
                    arm_faults.mark_failed(request, rule)
                return await handler(request)
            except arm_errors.ArmError as e:
                return error_response(e)
            except BlobError as e:  # the blob plane refused what ARM asked: an emulator bug
                return error_response(arm_errors.blob_plane_refused(code=e.code))

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

    def accepted(
        self,
        request: web.Request,
        location: str,
        output: dict[str, Any] | None,
        body: dict[str, Any] | None = None,
        status: int = 202,
        failure: arm_faults.OperationFailure | None = None,
    ) -> web.StreamResponse:
        """A finished long-running operation's first answer: its record answers the status polls
        (Failed, with `failure`)."""
        op_id = self.backend.record_operation(output, None if failure is None else failure.error())
        region = location.replace(" ", "").lower()
        sub = self.ctx.options.subscription_id
        base = f"{self.origin(request)}/subscriptions/{sub}{PROVIDER}/locations/{region}/operations/{op_id}"
        api = quote(request.query["api-version"], safe="")
        headers = {
            "Azure-AsyncOperation": f"{base}?api-version={api}",
            "Location": f"{base}?monitor=true&api-version={api}",
            "Retry-After": "1",
        }
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def deletion(
        self, request: web.Request, lookup: Callable[[], Located], delete: Callable[[], object]
    ) -> web.StreamResponse:
        """DELETE as ARM answers it: 204 when there is nothing to delete (a no-op), else the work done
        and a long-running operation's 202."""
        try:
            resource = lookup()
        except arm_errors.ArmError as e:
            if e.status == 404:
                return web.Response(status=204)
            raise
        if (failed := self.failed(request, resource)) is not None:
            return failed
        delete()
        return self.accepted(request, resource.location, None)

    def failed(self, request: web.Request, resource: Located) -> web.StreamResponse | None:
        """The answer of an operation a fault rule ends Failed, having done nothing; None otherwise."""
        failure = arm_faults.failure_of(request)
        if failure is None:
            return None
        return self.accepted(request, resource.location, None, failure=failure)

    def page(self, request: web.Request, items: list[dict[str, Any]], next_key: str | None) -> web.Response:
        """One page of a list, with a `nextLink` while more remain (`$skiptoken` is the next key)."""
        body: dict[str, Any] = {"value": items}
        if next_key is not None:
            api = quote(request.query["api-version"], safe="")
            skip = quote(next_key, safe="")
            body["nextLink"] = f"{self.origin(request)}{request.path}?api-version={api}&$skiptoken={skip}"
        return web.json_response(body)

    @staticmethod
    def origin(request: web.Request) -> str:
        """Links point back where the client came from (127.0.0.1 or localhost alike)."""
        return f"{request.scheme}://{request.host}"

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        raise arm_errors.no_such_route(method=request.method, path=request.path)
