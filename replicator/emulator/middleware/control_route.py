"""How every `/_emulator/` control route answers: the emulator's bearer token, `GET` the state,
`PUT` a JSON body that changes it, one-sentence JSON errors (401, 400, 405).

Why one place: tests flip these switches (the ARM clock, the restore points' control, ...) the same
way, and a control that forgot the token check would let any client change the emulator's behaviour.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web


async def answer(
    request: web.Request, token: str, update: Callable[[object], None], state: Callable[[], dict[str, Any]]
) -> web.Response:
    """`update(body)` raises ValueError with one sentence for a body it refuses."""
    expected = f"Bearer {token}".encode()
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
        return web.json_response({"error": "a valid bearer token is required"}, status=401)
    if request.method == "PUT":
        try:
            update(json.loads(await request.read() or b"null"))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    elif request.method != "GET":
        return web.json_response({"error": "GET or PUT"}, status=405)
    return web.json_response(state())
