"""The emulated tenant's HTTP face: a managed-identity token endpoint and the controls tests use.

Why the App Service protocol: it is what azure-identity's `ManagedIdentityCredential` (and so
`DefaultAzureCredential`, sync and aio, through MSAL) speaks when `IDENTITY_ENDPOINT` and
`IDENTITY_HEADER` are set, so a client gets the emulator's tokens with no code of its own ("Use
managed identities for App Service and Azure Functions", REST endpoint reference):

- `GET /_emulator/identity/token?api-version=2019-08-01&resource=R[&client_id=C]` with header
  `X-IDENTITY-HEADER: <IDENTITY_HEADER>` answers `{"access_token", "expires_on" (epoch seconds, a
  string), "resource", "token_type": "Bearer", "client_id"}`; the token's audience is R verbatim
  (entra/tokens.py). Without `client_id`, the system-assigned identity's token; with it, that
  user-assigned identity's. Refusals are App Service's `{"statusCode", "message"}` (MSAL reads them).

Controls (header `Authorization: Bearer <REPLICATOR_ACCESS_TOKEN>`, else 401):

- `GET /_emulator/identities`: the tenant ID and every identity with its roles and actions.
- `PUT /_emulator/identities/<client_id>` with `{"roles": [...], "actions": [...]}`: replace what the
  identity holds (entra/identities.py); `GET` reads one.
- `GET`/`PUT /_emulator/entra` with `{"refuse_protected_previous": true|false}`: make a diff whose
  previous snapshot is Entra-ID-protected answer 403 (the other plausible Azure answer; blob/auth.py).

A middleware, like the clock's, and the outermost one: the link model 404s other `/_emulator/` paths,
and fault injection answers with a storage account's errors, which the tenant's endpoint is not.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from replicator.emulator.entra.directory import Directory

TOKEN_PATH = "/_emulator/identity/token"
IDENTITIES_PATH = "/_emulator/identities"
SWITCHES_PATH = "/_emulator/entra"
API_VERSION = "2019-08-01"  # the App Service version azure-identity and MSAL send

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refusal(status: int, message: str) -> web.Response:
    """App Service's error shape, which MSAL turns into a credential error naming the message."""
    return web.json_response({"statusCode": status, "message": message}, status=status)


def _token(request: web.Request, directory: Directory, identity_header: str) -> web.Response:
    if request.method != "GET":
        return _refusal(405, "The token endpoint answers GET only.")
    sent = request.headers.get("X-IDENTITY-HEADER", "")
    if not hmac.compare_digest(sent.encode(), identity_header.encode()):
        return _refusal(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
    query = request.query
    if query.get("api-version") != API_VERSION:
        return _refusal(400, f"api-version must be {API_VERSION}.")
    unsupported = {"mi_res_id", "object_id", "principal_id"} & set(query)
    if unsupported:
        return _refusal(
            400, f"{', '.join(sorted(unsupported))}: the emulator names identities by client_id only."
        )
    resource = query.get("resource", "")
    if not resource:
        return _refusal(400, "The resource query parameter is required.")
    identity, token, expires = directory.issue(resource, query.get("client_id") or None)
    return web.json_response(
        {
            "access_token": token,
            "expires_on": str(expires),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }
    )


async def _control(request: web.Request, directory: Directory) -> web.Response:
    path = request.rel_url.raw_path
    allowed = ("GET",) if path == IDENTITIES_PATH else ("GET", "PUT")
    if request.method not in allowed:
        return web.json_response({"error": f"{path} answers {' or '.join(allowed)}"}, status=405)
    body: Any = json.loads(await request.read() or b"null") if request.method == "PUT" else None
    if path == SWITCHES_PATH:
        if body is not None:
            if (
                not isinstance(body, dict)
                or set(body) != {"refuse_protected_previous"}
                or not isinstance(body["refuse_protected_previous"], bool)
            ):
                raise ValueError('expected {"refuse_protected_previous": true or false}')
            directory.refuse_protected_previous = body["refuse_protected_previous"]
        return web.json_response({"refuse_protected_previous": directory.refuse_protected_previous})
    if path == IDENTITIES_PATH:
        identities = [identity.as_json() for identity in directory.identities.all()]
        return web.json_response({"tenant_id": directory.tenant_id, "identities": identities})
    client_id = unquote(path.removeprefix(IDENTITIES_PATH + "/"))
    if body is None:
        return web.json_response(directory.identities.get(client_id).as_json())
    return web.json_response(directory.identities.assign(client_id, body).as_json())


def install(app: web.Application, directory: Directory, identity_header: str, token: str) -> None:
    """Answer the token endpoint and the controls in the outermost middleware of `app` (install it last)."""

    @web.middleware
    async def entra(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path == TOKEN_PATH:
            return _token(request, directory, identity_header)
        controls = path in (IDENTITIES_PATH, SWITCHES_PATH) or (
            path.startswith(IDENTITIES_PATH + "/") and path.count("/") == 3 and not path.endswith("/")
        )
        if not controls:
            return await handler(request)
        if not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
        ):
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        try:
            return await _control(request, directory)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    app.middlewares.insert(0, entra)
