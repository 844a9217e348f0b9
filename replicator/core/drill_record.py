"""The last restore drill of a target, as `status` shows it and the target records it.

Why in core: the drill (engine.drill) writes it into the target's metadata (target.state, the one
codec) and `status` (core.freshness) shows it from there, so a probe learns when the replica was
last proven to give back its disk, and how long that took, without anything but the target.
Pure (no I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from replicator.core.output import measured_duration

DrillOutcome = Literal["passed", "mismatch", "failed"]


@dataclass(frozen=True)
class DrillRecord:
    """One drill: when it started (ISO 8601 UTC), the restore point it restored, its outcome and its
    measured RTO (seconds from the start to the disk ready, and to the disk verified; None when the
    drill did not get that far)."""

    time: str
    restore_point: str
    snapshot_name: str
    result: DrillOutcome
    ready_seconds: float | None = None
    verified_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "restore_point": self.restore_point,
            "snapshot_name": self.snapshot_name,
            "result": self.result,
            "rto_ready_seconds": self.ready_seconds,
            "rto_verified_seconds": self.verified_seconds,
        }

    def describe(self) -> str:
        """One line: `passed at <time> (restore point <id>, <name>): disk ready in 1 min 2 s,
        verified in 3 min 0 s` (`0.4 s` below a minute)."""
        timings = [
            f"{what} in {measured_duration(seconds)}"
            for what, seconds in (("disk ready", self.ready_seconds), ("verified", self.verified_seconds))
            if seconds is not None
        ]
        return f"{self.result} at {self.time} (restore point {self.restore_point}, {self.snapshot_name})" + (
            f": {', '.join(timings)}" if timings else ""
        )
