"""replicator.jsonlog: one JSON object per line (Application Insights and container logs parse each
line alone), the job fields as they are, and no secret on any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from replicator.jsonlog import JsonFormatter, event, setup

SIG = "sig=SeCrEtSiGnAtUrE%3D"
SAS_URL = f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&{SIG}"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = setup("info", out)  # a StringIO is not a terminal: JSON lines
    yield out
    logging.getLogger().removeHandler(handler)


def lines(out: io.StringIO) -> list[dict]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one whole object


def test_a_job_event_is_one_json_object_with_its_fields(stream: io.StringIO) -> None:
    returned = event(
        "job_done",
        run_id="r1",
        disk="/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d",
        snapshot="s1",
        bytes=3 * 1024 * 1024,
        seconds=1.25,
        outcome="replicated",
        error=None,  # unset fields are left out
    )
    event("job_start", run_id="r2", disk="d2")
    first, second = lines(stream)
    assert (first["event"], first["level"], first["logger"]) == ("job_done", "info", "replicator.events")
    assert {k: first[k] for k in ("run_id", "snapshot", "bytes", "seconds", "outcome")} == {
        "run_id": "r1",
        "snapshot": "s1",
        "bytes": 3145728,
        "seconds": 1.25,
        "outcome": "replicated",
    }
    assert first["disk"].endswith("/disks/d") and "error" not in first and "time" in first
    assert returned == {k: v for k, v in first.items() if k not in ("time", "level", "logger")}
    assert (second["event"], second["run_id"]) == ("job_start", "r2")


def test_secrets_are_redacted_in_fields_messages_and_exceptions(stream: io.StringIO) -> None:
    event("job_done", outcome="failed", error=f"could not read {SAS_URL}", target=SAS_URL)
    logging.getLogger("replicator.pipeline").warning("multi\nline %s", SAS_URL)
    try:
        raise RuntimeError(f"boom {SAS_URL}")
    except RuntimeError:
        logging.getLogger("replicator.x").exception("failed with Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc")
    records = lines(stream)
    assert len(records) == 3  # a multi-line message or a traceback stays inside its one line
    text = stream.getvalue()
    assert "SeCrEtSiGnAtUrE" not in text and "eyJhbGciOiJIUzI1NiJ9" not in text
    assert "acct.blob.core.windows.net/c/b" in records[0]["target"]  # the URL itself stays readable
    assert records[1]["message"].startswith("multi\nline ") and "RuntimeError" in records[2]["exception"]


def test_the_formatter_keeps_plain_records_as_a_message() -> None:
    record = logging.LogRecord("replicator.t", logging.ERROR, __file__, 1, "x=%d", (5,), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "x=5"
