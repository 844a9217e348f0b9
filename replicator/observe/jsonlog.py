"""One log stream for every command: human lines on a terminal, JSON lines anywhere else.

Every line a command writes on stderr is a log record that passes through the one handler `setup`
installs, and that handler alone decides its form: on a terminal a human line (the `message` of an
event, nothing else), elsewhere (cron, systemd, containers, a pipe) one JSON object per line with at
least `time` (UTC, `Z`), `level`, `event` and `logger`, then the event's fields. The two forms are
never mixed, because nothing writes to stderr around the handler: `say` is how a command prints a
line for the operator, `failure` its error line, and plain `logging` records become `event: "log"`.

`event(name, **fields)` logs one record whose message is itself a JSON object (`{"event": name,
...fields}`). The Azure Functions host, which never calls `setup`, forwards a record's message to
Application Insights as `traces.message`, so the fields are queryable there as they are
(`traces | extend e = parse_json(message) | where e.event == "job_done"`), without any exporter.

Levels (`--log-level`, replicator.settings.knobs.LOG_LEVELS): `info` shows what a run does, `debug` adds the
tool's own decisions (the base chosen and why, listing windows, SAS grants and re-grants, retries
and their cause, the lease) as structured events, and `wire` adds the Azure SDKs' request and
response logs, which are too bulky for `debug` to be useful.

Every line passes replicator.core.redact (the message and the fields) and the handler carries
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

from replicator.core.output import iso_z
from replicator.core.redact import RedactingFilter, redact

events = logging.getLogger("replicator.events")

PROTECTED_LOGGERS = ("replicator", "azure")
"""Logger trees whose records `protect_records` redacts at creation (the SDKs log request URLs)."""

LINE_KEYS = ("time", "level", "event", "logger")
"""The fields every JSON line starts with; an event's own fields may not use these names."""


def _protected(name: str) -> bool:
    return name.split(".", 1)[0] in PROTECTED_LOGGERS


def protect_records() -> None:
    """Redact every record of PROTECTED_LOGGERS when it is created, whatever handlers run (idempotent).

    Why a record factory and not a logger filter: a filter on the "replicator" logger does not see
    records of "replicator.fleet.jobs" (logging checks only the emitting logger's filters), and handler
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


def event(name: str, level: int = logging.INFO, *, message: str | None = None, **fields: Any) -> None:
    """Log the event `name`: `message` is its human line, `fields` its data (None values left out).

    Nothing is formatted when the level is off, so a debug event in a loop costs a level check.
    """
    if not events.isEnabledFor(level):
        return
    record = {"event": name, "message": message, **fields}
    clash = set(record) & set(LINE_KEYS) - {"event"}
    if clash:
        raise ValueError(f"event fields {sorted(clash)} are the log line's own")
    record = json.loads(redact(json.dumps({k: v for k, v in record.items() if v is not None}, default=str)))
    events.log(level, "%s", json.dumps(record, sort_keys=True), extra={"fields": record})


def say(name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """A line for the operator, as the event `name`: the one way a command writes to stderr.

    Installs the stream (at `info`) when the command has not yet: a usage error can come first.
    """
    if not any(_ours(h) for h in logging.getLogger().handlers):
        setup()
    event(name, level, message=message, **fields)


def failure(command: str, status: str, message: str, exit_code: int) -> None:
    """The error line of every command: `replicate list: error: <message>` (event `exit`).

    A spent time budget or a signal is not an error, and its line says so (`incomplete`,
    `interrupted`, at level warning).
    """
    kind = status if status in ("incomplete", "interrupted") else "error"
    level = logging.WARNING if kind != "error" else logging.ERROR
    say("exit", f"{command}: {kind}: {message}", level, command=command, status=status, exit_code=exit_code)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event (`log` for a plain record), logger, message, then
    the event's fields in name order, so a reader of raw lines finds the same columns first."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {"message": record.getMessage()})
        line: dict[str, Any] = {
            "time": iso_z(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "event": fields.pop("event", "log"),
            "logger": record.name,
        }
        if "message" in fields:
            line["message"] = fields.pop("message")
        line |= dict(sorted(fields.items()))
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, default=str)


class HumanFormatter(logging.Formatter):
    """One readable line per record: an event's message as its caller worded it, else the event's
    name and fields or the log message, after its level when that is not info (`warning: ...`).
    Records of other libraries (the SDKs' wire log) name their logger."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is not None and "message" in fields:
            text = str(fields["message"])
        else:
            if fields is not None:
                text = " ".join([fields["event"], *(f"{k}={v}" for k, v in fields.items() if k != "event")])
            elif record.name.startswith("replicator"):
                text = record.getMessage()
            else:
                text = f"{record.name}: {record.getMessage()}"
            if record.levelno != logging.INFO:
                text = f"{record.levelname.lower()}: {text}"
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        return text


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on `sys.stderr` as it is at each line, unless given a stream.

    Why: while the progress bar shows, rich swaps `sys.stderr` for a proxy that prints above the bar;
    a handler holding the original stream would write through the bar and garble it.
    """

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._fixed is None:
            self.stream = sys.stderr
        super().emit(record)


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_replicator", False)


LEVELS: dict[str, tuple[int, int, int]] = {
    # --log-level: (replicator, azure SDKs, azure.identity)
    "wire": (logging.DEBUG, logging.DEBUG, logging.DEBUG),
    "debug": (logging.DEBUG, logging.WARNING, logging.WARNING),
    "info": (logging.INFO, logging.WARNING, logging.CRITICAL),
    "warning": (logging.WARNING, logging.WARNING, logging.CRITICAL),
    "error": (logging.ERROR, logging.ERROR, logging.CRITICAL),
}
"""What each level shows. The SDKs log every request at INFO: only `wire` lets those through. A
failed DefaultAzureCredential logs 2.5 KB per attempt, and the one error line names the fix: its
records appear from `debug` on, for when that fix is not enough."""


def on_terminal() -> bool:
    """Whether the stream `setup` installed writes human lines (stderr is a terminal): where a
    command may also draw a progress bar."""
    return any(_ours(h) and isinstance(h.formatter, HumanFormatter) for h in logging.getLogger().handlers)


def setup(level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Route every log record to `stream` (default: stderr): human lines on a terminal, else JSON.

    Replaces the handler an earlier call installed (a command sets up before parsing, for its usage
    errors, and again with the parsed `--log-level`). Python warnings join the stream too.
    """
    protect_records()
    handler = _StderrHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(HumanFormatter() if (stream or sys.stderr).isatty() else JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if _ours(h)]:
        root.removeHandler(old)
    handler._replicator = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours, sdk, identity = LEVELS[level]
    logging.getLogger("replicator").setLevel(ours)
    logging.getLogger("azure").setLevel(sdk)
    logging.getLogger("azure.identity").setLevel(identity)
    logging.captureWarnings(True)
    return handler
