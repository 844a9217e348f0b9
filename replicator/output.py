"""What every command prints the same way: human sizes and the one `--json` document.

`replicate` (replicator.cli) and its restore-point subcommands (replicator.restore_cli) share these,
so a size reads the same in a progress line and in `replicate list`, and every JSON document goes
through replicator.redact on its way out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from replicator.errors import UserError
from replicator.redact import redact


def human_size(n: float) -> str:
    """1536 → '1.5 KiB': binary units, bytes whole, the rest to one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str) -> str:
    """'1 restore point', '3 restore points': the count and its noun, in agreement."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def utc_time(text: str) -> str:
    """An ISO 8601 time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), the form of restore point IDs; else as is.

    ARM gives `...38.451057+00:00` and blob snapshots `...42.0021931Z`: one table, one form.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def emit_json(document: Mapping[str, Any]) -> None:
    """Print `document` on stdout as the command's one JSON document, redacted."""
    print(redact(json.dumps(document, indent=2, sort_keys=True)), flush=True)


def wants_json(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether `--json` (or REPLICATOR_JSON) is asked for, known even when the rest of the config is bad."""
    from replicator.config import KNOBS  # here: `replicate emulator` need not import the Azure SDK

    knob = next(k for k in KNOBS if k.name == "json")
    if knob.flag in argv:
        return True
    try:
        return bool(knob.value(env.get(knob.env, "")))
    except UserError:  # a bad value is reported by the config load itself
        return False
