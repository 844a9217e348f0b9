"""The one shape of the `/_emulator/` control routes that tests set the emulator's state through.

The emulator's bearer token is required; GET answers the state, PUT changes it from a JSON body
first (400 with the one sentence the change raised as ValueError), and anything else is 405. The
ARM clock (clock.py), the ARM fault rules (arm_faults.py) and the restore points' switches
(restore_points.py) are set this way, and the Entra ID tenant's controls (entra.py) answer through
`answer`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def answer(
    request: web.Request, token: str, read: Callable[[], Any], change: Callable[[Any], None] | None
) -> web.Response:
    """One control request: `read()` the state; on PUT `change(body)` first (None: the path is read-only,
    GET alone). Also for controls under a path prefix (entra.py's identities), which `route` does not
    match."""
    expected = f"Bearer {token}".encode()
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        return web.json_response({"error": "the emulator's bearer token is required"}, status=401)
    methods = ("GET",) if change is None else ("GET", "PUT")
    if request.method not in methods:
        return web.json_response(
            {"error": f"{request.rel_url.path} answers {' or '.join(methods)}"}, status=405
        )
    if request.method == "PUT" and change is not None:
        try:
            change(json.loads(await request.read() or b"null"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(read())


def route(path: str, token: str, read: Callable[[], Any], change: Callable[[Any], None]) -> Any:
    """A middleware answering `path` (`read()` the state, `change(body)` on PUT) and passing every
    other request on. Install it before the link model's, which answers other `/_emulator/` paths
    with 404."""

    @web.middleware
    async def control(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.rel_url.raw_path != path:
            return await handler(request)
        return await answer(request, token, read, change)

    return control
