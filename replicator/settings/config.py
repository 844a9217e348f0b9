"""The configuration of a run: one frozen `Config` of the knobs (replicator.settings.knobs), read and
validated in one place.

`read` is the one way a `Config` is made, for every command and the fleet alike: each knob from the
flags the command parsed, else its environment variable, else its default (a command reads only the
knobs it takes), then `validate` rejects impossible values with one sentence naming the flag or the
variable (`UserError`, exit 2), before anything touches Azure. Parsing argv is the CLI's part
(replicator.cli.parser); this package never imports it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from replicator.core import arm_ids, premium
from replicator.core.errors import UserError
from replicator.core.messages import clip
from replicator.core.redact import redacted_repr
from replicator.plumbing.credentials import check_arm_endpoint
from replicator.plumbing.urlcheck import parse_target_prefix, parse_target_url
from replicator.settings.knobs import (
    KNOBS,
    GiB,
    KiB,
    MiB,
    SizeReading,
    knob,
    parse_size,
)

PUBLIC_ARM_ENDPOINT = "https://management.azure.com"
UNITS = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": 1024 * GiB}
"""The binary units a size is shown in (`--help`, the docs table, error sentences)."""


@dataclass(frozen=True)
class Config:
    """All knobs of one `replicate` run. Built by `read()`; never mutated.

    A command that takes a subset of the knobs (`list`, `status`, ...) gets the defaults for the rest,
    and `""` for a `source` or `target` it does not take.
    """

    source: str
    target: str
    latest_only: bool = False
    concurrency: int | None = None  # None: by the target (core.premium.ceiling_for): 64, or a premium tier's
    disk_concurrency: int = 4
    mode: Literal["server", "stream"] = "server"
    plan: bool = False
    verify: bool = False
    json: bool = False
    log_level: str = "info"
    allow_http: bool = False
    max_bandwidth: int | None = None
    account_requests: int | None = None  # None: the documented target (core.account_budget.DOCUMENTED)
    account_ingress: int | None = None  # bytes/s; None: the documented target
    arm_endpoint: str = PUBLIC_ARM_ENDPOINT
    subscription_id: str | None = None
    access_token: str | None = field(default=None, repr=False)
    sas_duration_seconds: int = 3600
    sas_wait_seconds: int = 900
    list_window_bytes: int = 256 * GiB  # the resume grid; listing windows adapt: see the knob
    page_size: int | None = None
    checkpoint_seconds: float = 5.0
    max_attempts: int = 8
    request_timeout_seconds: float = 120.0
    lease_wait_seconds: float = 70.0
    lease_seconds: int = 60
    snapshot_now: bool = False
    source_keep: int | None = None
    time_budget_seconds: float | None = None
    max_in_flight_bytes: int = 32 * MiB
    merge_gap_bytes: int = 64 * KiB
    allow_rollback: bool = False
    snapshot_search: Literal["resource-group", "subscription"] = "resource-group"
    progress_seconds: float = 30.0
    size_readings: tuple[SizeReading, ...] = field(default=(), repr=False, compare=False)  # see read()

    def __repr__(self) -> str:
        """The target's SAS masked: a Config reaches tracebacks and debug output whole."""
        return redacted_repr(self, urls=("target",))


def read(
    given: Mapping[str, str | None],
    env: Mapping[str, str] | None = None,
    *,
    names: Collection[str] | None = None,
    required: Collection[str] = ("source", "target"),
) -> Config:
    """The validated Config of the knobs `names` (default: all): each from `given` (the parsed flags,
    by knob name), else `env` (default os.environ), else its default; UserError on bad input.

    `required`: the knobs that must be set (`source`, `target`), each named with its variable when not.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    from_env: dict[str, str] = {}  # flag → where its value came from, for error messages
    readings: list[SizeReading] = []
    for each in KNOBS:
        if names is not None and each.name not in names:
            continue
        raw, where = given.get(each.name), each.flag or each.env
        if raw is not None:
            values[each.name] = each.value(raw)
        elif (value := each.from_env(env)) is not None:
            raw, where, values[each.name] = env[each.env], each.env, value
            from_env[each.flag or each.env] = f"{each.env} (environment variable)"
        else:
            continue
        reading = SizeReading.of(where, raw)
        if each.parse is parse_size and reading is not None:
            readings.append(reading)
    for name in ("source", "target"):
        if name in required and not values.get(name):
            raise UserError(f"{knob(name).flag} is required (or set {knob(name).env}).")
    if values.get("source"):
        values.setdefault("subscription_id", _subscription_from(values["source"]))
    config = Config(**{"source": "", "target": "", **values}, size_readings=tuple(readings))
    validate(config, from_env)
    return config


def _subscription_from(resource_id: str) -> str | None:
    match = re.match(r"/subscriptions/([^/]+)/", resource_id, re.IGNORECASE)
    return match.group(1) if match else None


def _number_text(value: float, *, size: bool) -> str:
    """A size in binary units (4 KiB, 100 GiB), a whole number plainly, anything else as written."""
    if size:
        unit = next((u for u in ("TiB", "GiB", "MiB", "KiB") if value and value % UNITS[u] == 0), None)
        return f"{value // UNITS[unit]:.0f} {unit}" if unit else f"{value:.0f} bytes"
    return f"{value:.0f}" if float(value).is_integer() else f"{value}"


def _range_checker(origins: Mapping[str, str]) -> Callable[..., None]:
    """`check(flag, value, low, high, size=False)`, naming the environment variable a value came from."""

    def check(flag: str, value: float | None, low: float, high: float, *, size: bool = False) -> None:
        if value is not None and not low <= value <= high:
            low_text, high_text = _number_text(low, size=size), _number_text(high, size=size)
            raise UserError(
                f"{origins.get(flag, flag)} must be between {low_text} and {high_text}; "
                f"got {_number_text(value, size=size)}."
            )

    return check


def validate(config: Config, origins: Mapping[str, str] | None = None) -> None:
    """Reject impossible values with one sentence naming the flag (or the environment variable that set
    it: `origins`), the allowed range and the value; then the target URL's form, before any request."""
    _check_range = _range_checker(origins or {})
    _check_range("--concurrency", config.concurrency, 1, premium.MAX_CEILING)
    _check_range("--disk-concurrency", config.disk_concurrency, 1, 64)
    _check_range("--max-in-flight", config.max_in_flight_bytes, 4 * MiB, 1024 * MiB, size=True)
    _check_range("--merge-gap", config.merge_gap_bytes, 0, 1 * MiB, size=True)
    if config.merge_gap_bytes % 512:
        raise UserError(f"--merge-gap must be a multiple of 512 bytes; got {config.merge_gap_bytes}.")
    _check_range("--max-bandwidth", config.max_bandwidth, 4 * KiB, 100 * GiB, size=True)
    _check_range("--account-requests", config.account_requests, 1, 1_000_000)
    _check_range("--account-ingress", config.account_ingress, 1 * MiB, 1024 * GiB, size=True)
    _check_range("--sas-duration", config.sas_duration_seconds, 60, 86400)
    _check_range("--sas-wait", config.sas_wait_seconds, 0, 86400)
    _check_range("--page-size", config.page_size, 1, 10000)
    _check_range("--checkpoint-seconds", config.checkpoint_seconds, 0.1, 3600)
    _check_range("--progress-seconds", config.progress_seconds, 0.1, 3600)
    _check_range("--max-attempts", config.max_attempts, 1, 100)
    _check_range("--request-timeout", config.request_timeout_seconds, 1, 3600)
    _check_range("--lease-wait", config.lease_wait_seconds, 0, 3600)
    _check_range("--lease-duration", config.lease_seconds, 15, 60)
    _check_range("--source-keep", config.source_keep, 1, 500)
    kind = arm_ids.parse_source(config.source).kind if config.source else None
    if (config.snapshot_now or config.source_keep) and kind == "snapshot":
        raise UserError(
            "--snapshot-now and --source-keep need a managed disk or virtual machine --source, "
            "not a snapshot."
        )
    _check_range("--time-budget", config.time_budget_seconds, 1, 7 * 86400)
    _check_range("--list-window", config.list_window_bytes, 4 * MiB, 8 * 1024 * GiB, size=True)
    if config.list_window_bytes % (4 * MiB):
        raise UserError(f"--list-window must be a multiple of 4MiB; got {config.list_window_bytes}.")
    check_arm_endpoint(config.arm_endpoint, allow_http=config.allow_http)
    check_subscription(config.subscription_id)
    if config.target:  # `status` without --target reads the jobs' targets
        _check_target(config.target, kind, allow_http=config.allow_http)


def _check_target(target: str, kind: str | None, *, allow_http: bool) -> None:
    """A disk's or snapshot's target is a page blob URL, a VM's a prefix (a container, or a folder in
    it); a command without a source (`list`) takes either, and an error names the blob URL's form."""
    forms = [parse_target_prefix] if kind == "vm" else [parse_target_url]
    if kind is None:
        forms.append(parse_target_prefix)
    errors = []
    for form in forms:
        try:
            form(target, allow_http=allow_http)
            return
        except UserError as err:
            errors.append(err)
    raise errors[0]


GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def check_subscription(subscription_id: str | None) -> None:
    """UserError unless `subscription_id` (when given) is a GUID, as every Azure subscription ID is."""
    if subscription_id is not None and not GUID.fullmatch(subscription_id):
        raise UserError(
            f"--subscription-id must be a GUID like 00000000-0000-0000-0000-000000000000; "
            f"got {clip(subscription_id)!r}."
        )
