"""The CLI shell: exit codes, one-line errors, JSON on failure, redacted human lines."""

from __future__ import annotations

import importlib
import io
import logging
import sys
from collections.abc import Iterator

import pytest

from replicator.cli import main as cli_main
from replicator.cli.terminal_progress import TerminalProgress
from replicator.core.progress import SnapshotResult
from replicator.observe import jsonlog
from tests import envelope
from tests.logs import messages


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does under an operator's shell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal() -> Iterator[io.StringIO]:
    stream = Terminal()
    handler = jsonlog.setup("info", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--source" in out and "REPLICATOR_CONCURRENCY" in out


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("REPLICATOR_SOURCE", raising=False)
    assert cli_main.main(["--target", "https://a.blob.core.windows.net/ccc/b", "--json"]) == 2
    captured = capsys.readouterr()
    [line] = messages(captured.err)
    assert line.startswith("replicate: error: --source is required")
    assert envelope.parse(captured.out)["exit_code"] == 2


def test_emulator_subcommand_is_dispatched(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """`replicate emulator ...` runs the emulator's own `main` with the rest of argv and returns its code.

    Why both halves: exit 2 alone cannot tell the emulator's usage error from the main command's
    "Unknown subcommand"; the emulator's own error line and a stand-in `main` can."""
    assert cli_main.main(["emulator", "--no-such-option"]) == 2
    assert capsys.readouterr().err.startswith("replicate emulator: error: ")
    calls: list[list[str]] = []
    module = importlib.import_module(cli_main.SUBCOMMANDS["emulator"])
    monkeypatch.setattr(module, "main", lambda argv: calls.append(argv) or 7)
    assert cli_main.main(["emulator", "--port", "0"]) == 7
    assert calls == [["--port", "0"]]


def test_terminal_lines_are_human_and_redacted(terminal: io.StringIO) -> None:
    """On a terminal the stream is the human lines alone: no JSON, no log decoration, no secret."""
    progress = TerminalProgress(terminal, bar=False)
    progress.on_message("granted https://md-x.blob.core.windows.net/b/abcd?sv=2018-03-28&sr=b&sig=SECRETSIG")
    result = SnapshotResult(
        "id", "s1", "diff", "diff from s0", changed_bytes=3 * 1024 * 1024, restore_point="rp", requests=1
    )
    progress.on_snapshot_done(result)
    logging.getLogger("replicator.target.page_blob").warning("could not save the checkpoint: 503")
    assert terminal.getvalue().splitlines() == [
        "granted https://md-x.blob.core.windows.net/b/abcd?sv=2018-03-28&sr=b&sig=REDACTED",
        "s1: restore point rp; diff from s0; 3.0 MiB changed, 0 B copied, 1 request, 0 retries, 0.0 s",
        "warning: could not save the checkpoint: 503",
    ]
    assert progress.done == [result]


def test_a_failure_on_a_terminal_is_the_house_error_line(terminal: io.StringIO, monkeypatch) -> None:
    monkeypatch.delenv("REPLICATOR_SOURCE", raising=False)
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli_main.main(["--target", "https://a.blob.core.windows.net/ccc/b"]) == 2
    assert terminal.getvalue().splitlines() == [
        "replicate: error: --source is required (or set REPLICATOR_SOURCE)."
    ]


def test_version_comes_from_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"replicate {version('replicator')}"
