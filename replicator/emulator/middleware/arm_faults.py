"""ARM faults: counted rules that throttle ARM requests (429) or end their operations Failed.

Why rules and not a rate (the blob plane's faults.py draws its faults at a seeded rate): a test of
how a client handles ARM must hold a run in one known state ("the next three grants are throttled",
"the next snapshot create fails") and assert on the requests the emulator counted, never on time.

`PUT /_emulator/arm-faults` with the emulator's bearer token and `{"rules": [RULE, ...]}` replaces
the rules and zeroes every count; `GET` answers the rules, how many times each fired, and how many
requests of each operation arrived since (`requests`, throttled ones included). A RULE is

    {"on": OPERATION, "times": N,              # the next N requests of OPERATION (default 1)
     "status": 429, "retry_after": SECONDS}    # answered as Compute throttles (default 1 s), or
    {"on": OPERATION, "times": N,
     "fail_operation": {"code": C, "message": M}}  # accepted, then the operation ends Failed

OPERATION is `grant` (beginGetAccess on a disk or a snapshot), `revoke` (endGetAccess),
`snapshot-create` (PUT of a snapshot), `snapshot-delete` or `poll` (GET of an operation's
Azure-AsyncOperation or Location URL; a poll cannot be failed, only throttled). A request fires the
first rule of its operation that has fired fewer than `times` times. Rules are checked after the
request is authenticated, as ARM throttles only what it has authenticated.

What each answer is, and where Azure documents it (docs/emulator.md, "ARM faults"):

- 429: "Troubleshooting API throttling errors" (Compute): `Retry-After`, one
  `x-ms-ratelimit-remaining-resource` entry per throttling policy with 0 left in the one that
  refused, and the body `OperationNotAllowed` with a `TooManyRequests` detail whose message is the
  policy's JSON window. Nothing else happens.
- Failed: the request is accepted (202) as always, and its Azure-AsyncOperation status document says
  `{"status": "Failed", "error": {"code", "message"}}` ("Track asynchronous Azure operations", ARM's
  resource provider contract). The operation has no effect (a grant hands out no SAS, a revoke
  revokes nothing, a delete deletes nothing) except a snapshot create, which leaves the snapshot in
  provisioningState Failed, as ARM's contract has a failed PUT leave its resource.
- Corrupted import (`{"on": "disk-create", "corrupt_import": OFFSET}`): a disk create with
  `createOption: Import` succeeds, and the new disk's byte at OFFSET is not the source's (inverted).
  On a revoke rule (`{"on": "revoke", "corrupt_import": OFFSET}`) the same for a disk made by upload:
  the revoke that ends its upload succeeds, and its byte at OFFSET is not what was uploaded.
  Azure documents no such failure; restore drills exist to catch what nobody documents, and this is
  the honest way to make a drill's read-back differ (tests/e2e/test_drill.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.middleware import control

CONTROL_PATH = "/_emulator/arm-faults"
OPERATIONS = ("grant", "revoke", "snapshot-create", "snapshot-delete", "poll", "disk-create")
THROTTLE_STATUS = 429

POLICIES = {
    "grant": "DiskAccess",
    "revoke": "DiskAccess",
    "snapshot-create": "CreateUpdateDisks",
    "snapshot-delete": "DeleteDisks",
    "poll": "GetOperation",
    "disk-create": "CreateUpdateDisks",
}
"""The throttling policy (operation group) named in a 429. CreateUpdateDisks, DeleteDisks and
GetOperation are what Azure's answers name for these requests; DiskAccess is the emulator's own."""
ALLOWED_PER_WINDOW = 1000
"""The request count a throttled policy says it allows in its 3-minute window (the emulator's number)."""

_FAILURE_KEY = "arm_faults.failure"
_CORRUPT_KEY = "arm_faults.corrupt_import"


@dataclass(frozen=True)
class OperationFailure:
    """What an operation ended Failed says: ARM's error code and message."""

    code: str
    message: str

    def error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class Rule:
    """One rule of the control route, and how many times it fired."""

    on: str
    times: int = 1
    retry_after: int = 1
    failure: OperationFailure | None = None  # None: a 429 (unless corrupt_import)
    fired: int = 0
    corrupt_import: int | None = None  # the byte offset an imported (uploaded) disk gets wrong

    @property
    def throttles(self) -> bool:
        return self.failure is None and self.corrupt_import is None

    @classmethod
    def parse(cls, body: object) -> Rule:
        """A rule from its JSON; ValueError with one sentence for anything else."""
        if not isinstance(body, dict):
            raise ValueError(f"a rule is a JSON object, not {body!r}")
        unknown = set(body) - {"on", "times", "status", "retry_after", "fail_operation", "corrupt_import"}
        if unknown:
            raise ValueError(f"unknown rule keys {sorted(unknown)}")
        on, times = body.get("on"), body.get("times", 1)
        if on not in OPERATIONS:
            raise ValueError(f"'on' is one of {', '.join(OPERATIONS)}, not {on!r}")
        if not _count(times) or times < 1:
            raise ValueError(f"'times' is a whole number of at least 1, not {times!r}")
        if on == "disk-create" or "corrupt_import" in body:
            offset = body.get("corrupt_import")
            extra = set(body) - {"on", "times", "corrupt_import"}
            if on not in ("disk-create", "revoke") or extra or not _count(offset):
                raise ValueError(
                    "'corrupt_import' (a byte offset) goes on a disk-create rule (an imported disk) or a "
                    "revoke rule (the upload it ends), which has nothing else"
                )
            return cls(on, times, corrupt_import=offset)
        if ("status" in body) == ("fail_operation" in body):
            raise ValueError("a rule has exactly one of 'status' (429) and 'fail_operation'")
        if "status" in body:
            retry_after = body.get("retry_after", 1)
            if body["status"] != THROTTLE_STATUS:
                raise ValueError(f"'status' can only be {THROTTLE_STATUS}, not {body['status']!r}")
            if not _count(retry_after):
                raise ValueError(f"'retry_after' is a whole number of seconds, not {retry_after!r}")
            return cls(on, times, retry_after=retry_after)
        if on == "poll":
            raise ValueError("a poll can be throttled, not failed: fail the operation it polls instead")
        failure = body["fail_operation"]
        if not (isinstance(failure, dict) and set(failure) == {"code", "message"}) or not all(
            isinstance(v, str) and v for v in failure.values()
        ):
            raise ValueError('\'fail_operation\' is {"code": "...", "message": "..."}')
        return cls(on, times, failure=OperationFailure(failure["code"], failure["message"]))

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"on": self.on, "times": self.times, "fired": self.fired}
        if self.corrupt_import is not None:
            rule["corrupt_import"] = self.corrupt_import
        elif self.failure is None:
            rule |= {"status": THROTTLE_STATUS, "retry_after": self.retry_after}
        else:
            rule["fail_operation"] = self.failure.error()
        return rule


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class ArmFaultPlan:
    """The rules in force and the requests of each operation since they were set."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.requests: Counter[str] = Counter()

    def set(self, body: object) -> None:
        """Replace the rules (and zero the counts) from the control route's JSON body."""
        if not isinstance(body, dict) or set(body) != {"rules"} or not isinstance(body["rules"], list):
            raise ValueError('expected {"rules": [...]}')
        self.rules = [Rule.parse(rule) for rule in body["rules"]]
        self.requests.clear()

    def fire(self, operation: str) -> Rule | None:
        """Count a request of `operation`; the rule it fires, if any."""
        self.requests[operation] += 1
        rule = next((r for r in self.rules if r.on == operation and r.fired < r.times), None)
        if rule is not None:
            rule.fired += 1
        return rule

    def to_json(self) -> dict[str, Any]:
        return {"rules": [rule.to_json() for rule in self.rules], "requests": dict(self.requests)}


def throttled(rule: Rule) -> web.Response:
    """Compute's 429: the refusing policy (3-minute window) has 0 requests left, its 30-minute one some."""
    policy = POLICIES[rule.on]
    start = datetime.now(UTC)
    window = {
        "operationGroup": f"{policy}3Min",
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(minutes=3)).isoformat(),
        "allowedRequestCount": ALLOWED_PER_WINDOW,
        "measuredRequestCount": ALLOWED_PER_WINDOW + rule.fired,
    }
    body = arm_errors.too_many_requests().body()
    body["error"]["details"] = [
        {"code": "TooManyRequests", "target": f"{policy}3Min", "message": json.dumps(window)}
    ]
    thirty = ALLOWED_PER_WINDOW * 8  # a 30-minute window allows 8 times the 3-minute one in recorded answers
    remaining = f"Microsoft.Compute/{policy}3Min;0,Microsoft.Compute/{policy}30Min;{thirty}"
    headers = {"Retry-After": str(rule.retry_after), "x-ms-ratelimit-remaining-resource": remaining}
    return web.json_response(body, status=THROTTLE_STATUS, headers=headers)


def mark_failed(request: web.Request, rule: Rule | None) -> None:
    """Tell the handler of `request` that its operation ends Failed (`failure_of`), or imports a
    disk with one byte wrong (`corruption_of`)."""
    request[_FAILURE_KEY] = rule.failure if rule is not None else None
    request[_CORRUPT_KEY] = rule.corrupt_import if rule is not None else None


def corruption_of(request: web.Request) -> int | None:
    """The byte offset a disk imported by `request` (or whose upload it ends) gets wrong, or None."""
    return request.get(_CORRUPT_KEY)


def failure_of(request: web.Request) -> OperationFailure | None:
    """How the operation of `request` ends Failed, or None when it succeeds."""
    return request.get(_FAILURE_KEY)


def install(app: web.Application, plan: ArmFaultPlan, token: str) -> None:
    """Answer `CONTROL_PATH` in a middleware of `app` (control.py); install it before the link model's."""
    app.middlewares.append(control.route(CONTROL_PATH, token, plan.to_json, plan.set))
