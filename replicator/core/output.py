"""What every command prints the same way: human sizes, times and the one `--json` envelope.

Every command shares these (through the one shell, replicator.cli.shell), so a size reads the same
in a progress line and in `replicate list`, a time is UTC with `Z` everywhere, and
every JSON document is one envelope (`envelope`, schema in replicator/schema/envelope.schema.json) that
goes through replicator.core.redact on its way out.

Why one envelope: a scheduler or a monitoring probe parses the document of every command the same
way, success or failure: `status` and `exit_code` say what happened, `error` is null on success,
`started_at`/`ended_at` say when, and the command's own fields follow. A consumer checks
`schema_version` (bumped only when a field changes meaning or goes away; new fields do not bump it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from replicator.core.redact import redact


def human_size(n: float) -> str:
    """1536 → '1.5 KiB': binary units, bytes whole, the rest to one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 restore point', '3 restore points', '1 retry', '2 retries' (`many`: an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def human_rate(bytes_per_second: float) -> str:
    """'4.0 MiB/s': a rate in the binary units of human_size, as `--max-bandwidth 4MiB` caps it."""
    return f"{human_size(bytes_per_second)}/s"


def human_duration(seconds: float) -> str:
    """'42 s', '5 min 3 s', '2 h 5 min': an ETA or a wait, to the precision a reader uses."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def measured_duration(seconds: float) -> str:
    """'0.4 s', '42.3 s', then as human_duration ('5 min 3 s'): a time that was measured (an RTO), to
    the tenth of a second below a minute, where whole seconds would print a fast restore as '0 s'."""
    if seconds < 59.95:
        return f"{max(0.0, seconds):.1f} s"
    return human_duration(seconds)


SCHEMA_VERSION = 1
"""Version of the JSON envelope; see the module docstring for when it changes."""

ENVELOPE_KEYS = (
    "schema_version",
    "command",
    "status",
    "exit_code",
    "error",
    "retry_after_seconds",
    "started_at",
    "ended_at",
)
"""The envelope's own fields; a command's payload may not use these names."""


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """`rows` (the first is the header) as left-aligned columns two spaces apart, trailing spaces cut."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def iso_z(moment: datetime) -> str:
    """`2026-12-03T07:30:00.123456Z`: the one form of a time in JSON and in tables (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(
    command: str,
    *,
    status: str,
    exit_code: int,
    started_at: datetime,
    payload: Mapping[str, Any],
    error: str | None = None,
    retry_after_seconds: float | None = None,
    ended_at: datetime | None = None,
) -> dict[str, Any]:
    """The one JSON document of `command`: the envelope's fields, then the command's `payload`."""
    clash = set(ENVELOPE_KEYS) & set(payload)
    if clash:
        raise ValueError(f"payload fields {sorted(clash)} are the envelope's own")
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "error": error,
        "retry_after_seconds": retry_after_seconds,
        "started_at": iso_z(started_at),
        "ended_at": iso_z(ended_at or datetime.now(UTC)),
        **payload,
    }


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
    return iso_z(moment)


def emit_json(document: Mapping[str, Any]) -> None:
    """Print `document` on stdout as the command's one JSON document, redacted."""
    print(redact(json.dumps(document, indent=2, sort_keys=True)), flush=True)
