"""The emulator's ARM fault rules as the tests set and read them (emulator/middleware/arm_faults.py,
through its `/_emulator/arm-faults` control route): rules in, request counts out."""

from __future__ import annotations

from typing import Any

from replicator.devtools.disk_builder import control

FAILURE = {"code": "InternalDiskManagementError", "message": "An internal error occurred."}
"""What a failed operation says in the tests (an ARM code Azure's Compute errors use)."""


def rules(env: dict[str, str], *given: dict[str, Any]) -> dict[str, Any]:
    """Replace the rules (none: clear them) and zero the counts; the control route's answer."""
    return control(env, "arm-faults", {"rules": list(given)})


def throttle(on: str, times: int, retry_after: int = 1) -> dict[str, Any]:
    """A rule answering the next `times` requests of `on` with Compute's 429."""
    return {"on": on, "status": 429, "retry_after": retry_after, "times": times}


def fail(on: str, failure: dict[str, str] = FAILURE) -> dict[str, Any]:
    """A rule ending the next operation of `on` Failed with `failure` (ARM's code and message)."""
    return {"on": on, "fail_operation": failure}


def requests(env: dict[str, str]) -> dict[str, int]:
    """The ARM requests of each operation since the rules were set (throttled ones included)."""
    return control(env, "arm-faults")["requests"]


def fired(env: dict[str, str]) -> list[int]:
    """How many times each rule fired, in the rules' order."""
    return [rule["fired"] for rule in control(env, "arm-faults")["rules"]]
