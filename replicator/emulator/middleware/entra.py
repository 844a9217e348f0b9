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
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from replicator.emulator.entra.directory import Directory
from replicator.emulator.middleware import control

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


Control = tuple[Callable[[], Any], Callable[[Any], None] | None]


def _control(path: str, directory: Directory) -> Control | None:
    """What the control at `path` reads and changes (None: not a control path); control.answer answers."""
    if path == SWITCHES_PATH:

        def switch(body: Any) -> None:
            value = body.get("refuse_protected_previous") if isinstance(body, dict) else None
            if set(body or {}) != {"refuse_protected_previous"} or value not in (True, False, 401, 403):
                raise ValueError('expected {"refuse_protected_previous": true (403), 401, 403 or false}')
            directory.refuse_protected_previous = value

        return lambda: {"refuse_protected_previous": directory.refuse_protected_previous}, switch
    if path == IDENTITIES_PATH:
        return lambda: {
            "tenant_id": directory.tenant_id,
            "identities": [identity.as_json() for identity in directory.identities.all()],
        }, None
    if path.startswith(IDENTITIES_PATH + "/") and path.count("/") == 3 and not path.endswith("/"):
        client_id = unquote(path.removeprefix(IDENTITIES_PATH + "/"))
        return (
            lambda: directory.identities.get(client_id).as_json(),
            lambda body: directory.identities.assign(client_id, body),
        )
    return None


def install(app: web.Application, directory: Directory, identity_header: str, token: str) -> None:
    """Answer the token endpoint and the controls in the outermost middleware of `app` (install it last)."""

    @web.middleware
    async def entra(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path == TOKEN_PATH:
            return _token(request, directory, identity_header)
        control_at = _control(path, directory)
        if control_at is None:
            return await handler(request)
        return await control.answer(request, token, *control_at)

    app.middlewares.insert(0, entra)
