"""The log stream as the tests read it: off a terminal, every stderr line is one JSON object with
`time`, `level` and `event` (observe.jsonlog); these helpers parse it and fail on any other line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any


def records(err: str) -> list[dict[str, Any]]:
    """Every line of `err` as its JSON object; an assertion error names the first line that is not one."""
    parsed = []
    for line in err.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"a stderr line is not JSON: {line!r}") from None
        assert isinstance(record, dict) and {"time", "level", "event"} <= set(record), line
        assert record["time"].endswith("Z"), line
        parsed.append(record)
    return parsed


def messages(err: str) -> list[str]:
    """The human text of every record (an event's message, a log record's message)."""
    return [str(r.get("message", "")) for r in records(err)]


def logged_events(log_records: Iterable[logging.LogRecord], name: str) -> list[dict[str, Any]]:
    """The fields of the `name` events among captured log records (pytest's caplog.records)."""
    return [r.fields for r in log_records if getattr(r, "fields", {}).get("event") == name]  # type: ignore[attr-defined]


def events(err: str, name: str) -> list[dict[str, Any]]:
    """The records of the event `name`."""
    return [r for r in records(err) if r["event"] == name]
