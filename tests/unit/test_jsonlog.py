"""replicator.observe.jsonlog: one JSON object per line (Application Insights and container logs parse each
line alone), the job fields as they are, and no secret on any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from replicator.observe.jsonlog import (
    JsonFormatter,
    event,
    failure,
    say,
    setup,
)

SIG = "sig=SeCrEtSiGnAtUrE%3D"
SAS_URL = f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&{SIG}"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    setup("info", out)  # a StringIO is not a terminal: JSON lines
    yield out
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_replicator", False)]:
        root.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict]:
    text = out.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line is one whole object


def test_a_job_event_is_one_json_object_with_its_fields(stream: io.StringIO) -> None:
    event(
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
    assert first["disk"].endswith("/disks/d") and "error" not in first and first["time"].endswith("Z")
    assert list(first)[:4] == ["time", "level", "event", "logger"]  # the same columns first on every line
    assert (second["event"], second["run_id"]) == ("job_start", "r2")


def test_secrets_are_redacted_in_fields_messages_and_exceptions(stream: io.StringIO) -> None:
    event("job_done", outcome="failed", error=f"could not read {SAS_URL}", target=SAS_URL)
    logging.getLogger("replicator.engine.pipeline").warning("multi\nline %s", SAS_URL)
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


WIRE_LOGGER = "azure.core.pipeline.policies.http_logging_policy"


def _levels_run(level: str) -> list[dict]:
    out = io.StringIO()
    handler = setup(level, out)
    try:
        event("base_chosen", logging.DEBUG, message="s2: base s1, because ...", snapshot="s2")
        logging.getLogger(WIRE_LOGGER).info("Request URL: %r", SAS_URL)
        logging.getLogger(WIRE_LOGGER).info(
            "Request headers: 'Authorization': 'Bearer eyJhbGciOi.eyJzdWIi.sig'"
        )
        event("step", message="resolving d")
    finally:
        logging.getLogger().removeHandler(handler)
    return lines(out)


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("info", ["step"]),
        ("debug", ["base_chosen", "step"]),  # the tool's decisions, without the SDKs' request dumps
        ("wire", ["base_chosen", "log", "log", "step"]),
    ],
)
def test_debug_shows_decisions_and_wire_adds_the_sdk_log(level: str, shown: list[str]) -> None:
    records = _levels_run(level)
    assert [r["event"] for r in records] == shown
    wire = [r for r in records if r["logger"] == WIRE_LOGGER]
    assert all(r["level"] == "info" and r["message"].startswith("Request") for r in wire)


def test_the_wire_level_is_redacted_like_everything_else() -> None:
    text = json.dumps(_levels_run("wire"))
    assert "SeCrEtSiGnAtUrE" not in text and "eyJzdWIi" not in text
    assert "sig=REDACTED" in text and "Bearer REDACTED" in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_record_is_one_human_line() -> None:
    out = Terminal()
    handler = setup("wire", out)
    try:
        event("step", message="inspecting https://a/c/b")
        event("retry", logging.DEBUG, message="retrying copy [0, 4) in 0.5 s after 503 ServerBusy", attempt=1)
        event("queue_retry", logging.WARNING, queue="q", failures=2)  # an event without a human line
        logging.getLogger("replicator.target.page_blob").warning("could not save the checkpoint: 503")
        logging.getLogger(WIRE_LOGGER).info("Request URL: %r", SAS_URL)
        failure("replicate list", "locked", "another run holds the lease.", 3)
        failure("replicate", "incomplete", "the time budget ran out.", 3)
    finally:
        logging.getLogger().removeHandler(handler)
    assert out.getvalue().splitlines() == [
        "inspecting https://a/c/b",
        "retrying copy [0, 4) in 0.5 s after 503 ServerBusy",
        "warning: queue_retry queue=q failures=2",
        "warning: could not save the checkpoint: 503",
        f"{WIRE_LOGGER}: Request URL: '{SAS_URL.replace(SIG, 'sig=REDACTED')}'",
        "replicate list: error: another run holds the lease.",
        "replicate: incomplete: the time budget ran out.",
    ]


def test_off_a_terminal_every_line_is_json_even_python_warnings(stream: io.StringIO) -> None:
    import warnings

    failure("replicate", "bad input", "--source is required.", 2)
    logging.getLogger("replicator.x").info("a plain record")
    # What warnings.warn calls. pytest restores the hook around each test, so undo and redo setup's.
    logging.captureWarnings(False)
    setup("info", stream)
    warnings.showwarning("a library's deprecation", DeprecationWarning, "lib.py", 1)
    exit_, plain, warned = lines(stream)
    assert (exit_["event"], exit_["level"], exit_["status"]) == ("exit", "error", "bad input")
    assert exit_["exit_code"] == 2
    assert exit_["message"] == "replicate: error: --source is required."
    assert (plain["event"], plain["message"]) == ("log", "a plain record")
    assert warned["event"] == "log" and "a library's deprecation" in warned["message"]


def test_say_installs_the_stream_when_a_command_has_not(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_replicator", False)]
    for handler in ours:
        root.removeHandler(handler)
    say("exit", "replicate worker: error: Unknown argument --nope.", logging.ERROR)
    [record] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert record["message"] == "replicate worker: error: Unknown argument --nope."


def test_event_fields_may_not_shadow_the_line() -> None:
    with pytest.raises(ValueError, match="time"):
        event("x", time=1)
