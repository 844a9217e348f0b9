"""The CLI shell: exit codes, one-line errors, JSON on failure, redacted human lines."""

from __future__ import annotations

import io

import pytest

from replicator import cli
from replicator.progress import SnapshotResult
from tests import envelope


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--source" in out and "REPLICATOR_CONCURRENCY" in out


def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.delenv("REPLICATOR_SOURCE", raising=False)
    assert cli.main(["--target", "https://a.blob.core.windows.net/ccc/b", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0
    assert captured.err.startswith("replicate: error: --source is required")
    assert envelope.parse(captured.out)["exit_code"] == 2


def test_emulator_subcommand_is_dispatched(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulator", "--no-such-option"]) == 2


def test_terminal_lines_are_redacted() -> None:
    stream = io.StringIO()
    progress = cli.TerminalProgress(stream, bar=False)
    progress.on_message("granted https://md-x.blob.core.windows.net/b/abcd?sv=2018-03-28&sr=b&sig=SECRETSIG")
    result = SnapshotResult(
        "id", "s1", "diff", "diff from s0", changed_bytes=3 * 1024 * 1024, restore_point="rp"
    )
    progress.on_snapshot_done(result)
    text = stream.getvalue()
    assert "SECRETSIG" not in text
    assert "s1: restore point rp; diff (diff from s0); 3.0 MiB changed" in text
    assert progress.done == [result]
