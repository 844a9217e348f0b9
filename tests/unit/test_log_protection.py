"""Records of the replicator's and the Azure SDKs' loggers are redacted even through handlers we do
not own (the Functions host forwards records to Application Insights with its own handlers)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from replicator.observe import jsonlog

SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
URL = f"https://acct.blob.core.windows.net/c/b.vhd?sv=2025-01-05&sig={SIG}"


@pytest.fixture
def host_handler() -> Iterator[io.StringIO]:
    """A plain handler on the root logger, like the Functions host's: no filter of ours on it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root, factory = logging.getLogger(), logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in ("replicator", "azure")}
    others = root.handlers[:]  # earlier tests' handlers may carry RedactingFilter: the host's do not
    root.handlers[:] = [handler]
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.handlers[:] = others
    logging.setLogRecordFactory(factory)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _log_everything() -> None:
    try:
        raise RuntimeError(f"request to {URL} failed")
    except RuntimeError:
        logging.getLogger("replicator.fleet.jobs").debug("unexpected failure", exc_info=True)
    logging.getLogger("azure.core.pipeline").info("Request URL: %r", URL)
    logging.getLogger("replicator").warning("target %s", URL, stack_info=True)


def test_functions_entry_redacts_records_of_replicator_and_azure_loggers(host_handler: io.StringIO) -> None:
    from replicator.fleet import functions_entry  # importing it is what the Functions host does

    jsonlog.protect_records()  # idempotent: a second call (a re-import, setup()) changes nothing
    assert functions_entry.FANOUT_ENV
    _log_everything()
    out = host_handler.getvalue()
    assert SIG not in out
    assert "unexpected failure" in out and "RuntimeError: request to" in out and "sig=REDACTED" in out
    assert "replicator.fleet.jobs" in out and "azure.core.pipeline" in out


def test_without_protection_the_host_handler_would_leak(host_handler: io.StringIO) -> None:
    """The oracle can fail: the same records through an unprotected factory carry the signature."""
    logging.setLogRecordFactory(logging.LogRecord)
    _log_everything()
    assert SIG in host_handler.getvalue()


def test_the_wire_level_logs_the_sdk_requests_redacted() -> None:
    """`--log-level wire`: the SDK's own HTTP logging policy, through our stream, leaks nothing."""
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.policies import HttpLoggingPolicy
    from azure.core.rest import HttpRequest

    stream = io.StringIO()
    jsonlog.setup("wire", stream)
    try:
        policy = HttpLoggingPolicy()
        policy.allowed_query_params.add("sig")  # even if a policy were told to show it
        policy.allowed_header_names.add("x-ms-copy-source")
        request = HttpRequest(
            "PUT", URL, headers={"x-ms-copy-source": URL, "Authorization": "Bearer abc.def.ghi"}
        )
        policy.on_request(PipelineRequest(request, PipelineContext(None)))
        quiet = io.StringIO()
        jsonlog.setup("debug", quiet)
        policy.on_request(PipelineRequest(request, PipelineContext(None)))
    finally:
        root = logging.getLogger()
        for ours in [h for h in root.handlers if getattr(h, "_replicator", False)]:
            root.removeHandler(ours)
        logging.getLogger("azure").setLevel(logging.WARNING)
    out = stream.getvalue()
    assert "Request URL" in out and "acct.blob.core.windows.net/c/b.vhd" in out  # the wire log is there
    assert SIG not in out and "abc.def.ghi" not in out
    assert quiet.getvalue() == ""  # debug is the tool's decisions, not the wire
