"""The restore points' control: what Azure does not document about disk restore points, made a
switch tests can flip.

`PUT /_emulator/restore-points` (the emulator's bearer token) with any of:
- `{"refuse_diff": true}`: a Get Page Ranges diff between two disk restore points (the request's blob
  and the one `x-ms-previous-snapshot-url` names both hold one) is answered 409
  `PreviousSnapshotOperationNotSupported` instead of the ranges. Azure does not document whether
  such a diff works; by default the emulator answers it, as a diff between incremental snapshots of
  one disk (which a disk restore point is underneath), and this switch gives the other answer. The
  refusal replaces a successful answer only, so a request the blob plane refuses (a revoked SAS)
  keeps its own answer.
- `{"guest_agent": true}`: emulated VMs report a running VM agent, so an application-consistent
  restore point is created (by default none does: no VM runs, and Azure answers
  VMAgentStatusCommunicationError).
`GET` answers the switches and how many diffs were refused. Not persisted: a restart clears them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from urllib.parse import unquote, urlsplit

from aiohttp import web

from replicator.emulator.blob import wire as blob_wire
from replicator.emulator.errors import blob as blob_errors
from replicator.emulator.middleware import control_route

CONTROL_PATH = "/_emulator/restore-points"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RestorePointControls:
    refuse_diff: bool = False
    guest_agent: bool = False
    refused_diffs: int = 0

    def updated(self, body: object) -> None:
        """Apply the control route's JSON body; ValueError with one sentence for anything else."""
        switches = ("refuse_diff", "guest_agent")
        if not isinstance(body, dict) or not body or set(body) - set(switches):
            raise ValueError(
                'expected {"refuse_diff": true|false, "guest_agent": true|false} (either or both)'
            )
        for name, value in body.items():
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {value!r}")
            setattr(self, name, value)


def _container(path: str) -> str | None:
    """The container of a path-style blob path /<account>/<container>/<blob>."""
    parts = [unquote(part) for part in path.split("/") if part]
    return parts[1] if len(parts) >= 3 else None


def install(
    app: web.Application,
    controls: RestorePointControls,
    token: str,
    is_disk_restore_point: Callable[[str], bool],
) -> None:
    """Answer CONTROL_PATH and refuse diffs between disk restore points while `refuse_diff` is on.
    `is_disk_restore_point(container)`: whether a blob-plane container holds one. Install it before
    the link model's middleware, which answers every other `/_emulator/` path with 404."""

    def is_refused_diff(request: web.Request) -> bool:
        previous = request.headers.get("x-ms-previous-snapshot-url")
        if not (controls.refuse_diff and previous and request.query.get("comp") == "pagelist"):
            return False
        containers = (_container(request.rel_url.raw_path), _container(urlsplit(previous).path))
        return all(c is not None and is_disk_restore_point(c) for c in containers)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.rel_url.raw_path == CONTROL_PATH:
            return await control_route.answer(request, token, controls.updated, lambda: asdict(controls))
        response = await handler(request)
        if response.status != 200 or request.method != "GET" or not is_refused_diff(request):
            return response
        controls.refused_diffs += 1
        error = blob_errors.previous_snapshot_operation_not_supported(
            "A page range diff between two disk restore points is refused (the refuse_diff control)."
        )
        headers = {**blob_wire.base_headers(request.headers), "x-ms-error-code": error.code}
        return web.Response(status=error.status, headers=headers, text=blob_wire.error_body(error),
                            content_type="application/xml")  # fmt: skip

    app.middlewares.append(middleware)
