"""The ARM half's clock, which tests may set back: resources that look created in the past.

Why: `replicate status` judges a replica by the age of the source snapshot it holds (Azure's
`timeCreated`, which the service sets at creation and nobody can change). A test of a stale
replica needs a snapshot a day old without waiting a day, and a test of a mixed fleet needs one old
and one new snapshot in the same run. `PUT /_emulator/clock` with `{"offset_seconds": -93600}`
(the emulator's bearer token) moves the ARM clock 26 hours back; everything the ARM half dates
moves with it while the offset is set: `timeCreated` of disks and snapshots, grant expiry, the
snapshot rate window, `completionPercent`, Entra ID tokens (entra/directory.py). Tests set an offset
around a creation and set 0 again (`GET /_emulator/clock` reads it). The blob plane keeps wall time
(blob snapshot IDs, Last-Modified).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web

from replicator.emulator.middleware import control

CONTROL_PATH = "/_emulator/clock"


@dataclass
class ShiftedClock:
    """Wall time plus `offset_seconds`: the `clock` of ArmBackend."""

    offset_seconds: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_seconds

    def updated(self, body: object) -> None:
        """Apply the control route's JSON body; ValueError with one sentence for anything else."""
        if not isinstance(body, dict) or set(body) != {"offset_seconds"}:
            raise ValueError('expected {"offset_seconds": <seconds, negative for the past>}')
        offset = body["offset_seconds"]
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
            raise ValueError(f"offset_seconds must be a number of seconds, not {offset!r}")
        self.offset_seconds = float(offset)


def install(app: web.Application, clock: ShiftedClock, token: str) -> None:
    """Answer `CONTROL_PATH` in a middleware of `app` (control.py); install it before the link model's."""
    app.middlewares.append(
        control.route(CONTROL_PATH, token, lambda: {"offset_seconds": clock.offset_seconds}, clock.updated)
    )
