"""Structured log records for unattended runs (Functions timer, queue workers) that Application
Insights can query.

`event(name, **fields)` logs one record whose message is itself a JSON object (`{"event": name,
...fields}`). The Azure Functions host forwards a record's message to Application Insights as
`traces.message`, so the fields are queryable there as they are
(`traces | extend e = parse_json(message) | where e.event == "job_done"`), without any exporter.
Outside Functions, `setup()` installs a handler that writes one JSON object per line on stderr when
stderr is not a terminal (containers, VMs, systemd), and plain lines on a terminal.

Every line passes replicator.redact (the message and the fields) and the handler carries
RedactingFilter: a SAS signature, key or token never reaches a log. Where the handlers are not
ours (the Functions host sends records to Application Insights through its own), `protect_records`
redacts every record of the replicator's and the Azure SDKs' loggers as it is made, before any
handler, so a debug line with a traceback cannot carry a SAS out either.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from replicator.redact import RedactingFilter, redact

events = logging.getLogger("replicator.events")

PROTECTED_LOGGERS = ("replicator", "azure")
"""Logger trees whose records `protect_records` redacts at creation (the SDKs log request URLs)."""


def _protected(name: str) -> bool:
    return name.split(".", 1)[0] in PROTECTED_LOGGERS


def protect_records() -> None:
    """Redact every record of PROTECTED_LOGGERS when it is created, whatever handlers run (idempotent).

    Why a record factory and not a logger filter: a filter on the "replicator" logger does not see
    records of "replicator.jobs" (logging checks only the emitting logger's filters), and handler
    filters need handlers we own, which the Functions host's are not.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_replicator_redacts", False):
        return
    redacting = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _protected(record.name):
            redacting.filter(record)
        return record

    factory._replicator_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def event(name: str, level: int = logging.INFO, **fields: Any) -> dict[str, Any]:
    """Log the event `name` with `fields` as one JSON object; returns the (redacted) record."""
    record = {"event": name, **{k: v for k, v in fields.items() if v is not None}}
    record = json.loads(redact(json.dumps(record, default=str)))
    events.log(level, "%s", json.dumps(record, sort_keys=True), extra={"fields": record})
    return record


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger and the event's fields (or the message)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            line |= fields
        else:
            line["message"] = record.getMessage()
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, sort_keys=True, default=str)


def setup(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Route the replicator's logs to `stream` (stderr): JSON lines unless it is a terminal."""
    protect_records()
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if stream.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_replicator", False)]:
        root.removeHandler(old)
    handler._replicator = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # The Azure SDKs log every request at INFO; only our own modules follow `level` below WARNING,
    # and the SDKs' request logs appear with "debug" (redacted by the filter like everything else).
    root.setLevel(logging.WARNING)
    logging.getLogger("replicator").setLevel(level.upper())
    logging.getLogger("azure").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # A failed DefaultAzureCredential logs 2.5 KB per attempt; our one error line names the fix.
    logging.getLogger("azure.identity").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)
    return handler
