"""Fault injection on the blob data plane: a seeded fraction of requests fails the ways Azure's do.

An aiohttp middleware (installed by app.py) draws, for every blob-plane request, whether it fails
and how, from one `random.Random(seed)`; ARM requests are never faulted here (arm_faults.py beside
it has ARM's counted rules: throttling and failed operations). The kinds:

| kind | what the client sees | did the request take effect? |
| --- | --- | --- |
| `busy` | 503 `ServerBusy` with `Retry-After: 1` | no: answered before the handler runs |
| `timeout` | 500 `OperationTimedOut` | writes: yes (the handler ran; the answer is replaced) |
| `drop` | the connection closes without a response | writes: yes (the response is lost) |
| `stall` | the response arrives `stall_seconds` late | writes: yes, at once; only the answer waits |

Why writes take effect before `timeout`, `drop` and `stall`: that is the nasty realistic case
(the write happened, the client saw an error and must retry or re-check), and it keeps every
faulted request atomic: it happened fully, before the fault, or not at all (`busy`). A stalled
write is never applied late, after the client gave up and moved on. Reads (GET, HEAD) are faulted
before the handler, since their handlers stream the answer and have no effect to lose.

Tests change the knobs at run time (set up a world without faults, fault the replication, verify
without faults) through `PUT /_emulator/faults` with the emulator's bearer token and a JSON body
`{"rate": 0.05, "seed": 1, "kinds": ["busy", "drop"], "stall_seconds": 3}` (every key optional);
`GET /_emulator/faults` answers the knobs and how many faults of each kind were injected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from replicator.emulator.blob import wire as blob_wire
from replicator.emulator.errors import blob as blob_errors
from replicator.emulator.errors.blob import BlobError

KINDS = ("busy", "timeout", "drop", "stall")
CONTROL_PATH = "/_emulator/faults"
"""Not a blob path: an account name cannot start with an underscore."""
ARM_PREFIX = "/subscriptions/"
RETRY_AFTER_SECONDS = 1
"""What `busy` asks the client to wait: short, so a campaign spends its time copying, not sleeping."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class FaultOptions:
    """`--fault-rate`, `--fault-seed`, `--fault-stall-seconds`, `--fault-kinds`; off by default."""

    rate: float = 0.0
    seed: int = 0
    stall_seconds: float = 30.0
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        """ValueError with one sentence for an impossible knob (the server turns it into exit 2)."""
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"the fault rate must be between 0 and 1, not {self.rate}")
        if not self.stall_seconds >= 0:
            raise ValueError(f"the fault stall must be zero seconds or more, not {self.stall_seconds}")
        if not self.kinds or set(self.kinds) - set(KINDS):
            raise ValueError(f"fault kinds are a non-empty subset of {', '.join(KINDS)}, not {self.kinds}")

    def updated(self, knobs: dict[str, Any]) -> FaultOptions:
        """These options with the control route's JSON body applied (unknown keys refused)."""
        unknown = set(knobs) - {"rate", "seed", "stall_seconds", "kinds"}
        if unknown:
            raise ValueError(f"unknown fault knobs {sorted(unknown)}")
        return FaultOptions(
            rate=float(knobs.get("rate", self.rate)),
            seed=int(knobs.get("seed", self.seed)),
            stall_seconds=float(knobs.get("stall_seconds", self.stall_seconds)),
            kinds=tuple(knobs.get("kinds", self.kinds)),
        )


class FaultPlan:
    """The options in force, their seeded random stream, and how many faults of each kind were injected."""

    def __init__(self, options: FaultOptions) -> None:
        self.injected: Counter[str] = Counter()
        self._rng = random.Random()
        self.set(options)

    def set(self, options: FaultOptions) -> None:
        """New options; the seed restarts the random stream, so a run is reproducible from its seed."""
        self.options = options
        self._rng.seed(options.seed)

    def draw(self) -> str | None:
        """The fault for the next request, or None."""
        if self.options.rate <= 0 or self._rng.random() >= self.options.rate:
            return None
        kind = self._rng.choice(self.options.kinds)
        self.injected[kind] += 1
        return kind

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.options), "injected": dict(self.injected)}


def _error(error: BlobError, request: web.Request) -> web.Response:
    headers = {**blob_wire.base_headers(request.headers), "x-ms-error-code": error.code}
    headers["Content-Type"] = "application/xml"
    if error.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return web.Response(status=error.status, headers=headers, body=blob_wire.error_body(error))


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; aiohttp finds the transport gone and writes nothing."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def _control(plan: FaultPlan, token: str, request: web.Request) -> web.Response:
    if not secrets.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return web.json_response({"error": "the emulator's bearer token is required"}, status=401)
    if request.method == "PUT":
        try:
            plan.set(plan.options.updated(json.loads(await request.text() or "{}")))
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(plan.to_json())


def middleware(plan: FaultPlan, token: str) -> Any:
    """The aiohttp middleware applying `plan` to blob-plane requests (and serving the control route)."""

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == CONTROL_PATH:
            return await _control(plan, token, request)
        kind = None if request.path.startswith(ARM_PREFIX) else plan.draw()
        if kind is None:
            return await handler(request)
        if kind == "busy":
            return _error(blob_errors.server_busy(), request)
        read = request.method in ("GET", "HEAD")
        response = None if read else await handler(request)
        if kind == "timeout":
            return _error(blob_errors.operation_timed_out(), request)
        if kind == "stall":
            await asyncio.sleep(plan.options.stall_seconds)
            return response if response is not None else await handler(request)
        return _drop(request)

    return faults


def install(app: web.Application, options: FaultOptions, token: str) -> FaultPlan:
    """Add the fault middleware to `app`, outermost, so its control route is seen before other
    `/_emulator/` routes and a `busy` answer costs no modelled link time."""
    plan = FaultPlan(options)
    app.middlewares.insert(0, middleware(plan, token))
    return plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fault and SAS-lifetime options of `replicate emulator`."""
    parser.add_argument(
        "--fault-rate", default=0.0, type=float, help="fraction of blob requests failed (0-1)"
    )
    parser.add_argument("--fault-seed", default=0, type=int, help="seed of the fault stream")
    parser.add_argument(
        "--fault-stall-seconds", default=30.0, type=float, help="how late a stalled response arrives"
    )
    parser.add_argument(
        "--fault-kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}"
    )
    parser.add_argument(
        "--sas-max-seconds", default=24 * 3600, type=int, help="longest SAS a grant hands out"
    )


def options_from(ns: argparse.Namespace) -> FaultOptions:
    """FaultOptions from parsed arguments; ValueError with one sentence for a bad value."""
    if ns.sas_max_seconds < 1:
        raise ValueError(f"--sas-max-seconds must be at least 1, not {ns.sas_max_seconds}")
    kinds = tuple(k.strip() for k in ns.fault_kinds.split(",") if k.strip())
    return FaultOptions(ns.fault_rate, ns.fault_seed, ns.fault_stall_seconds, kinds)
