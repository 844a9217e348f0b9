"""The one shell: every subcommand reports the same error the same way (status, exit code, stderr
sentence, `--json` envelope), reads its knobs through the one validated loader, and settings never
depends on the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import replicator
from replicator.cli import list_cmd
from replicator.cli import main as cli_main
from replicator.core.errors import LockedError
from tests import envelope
from tests.logs import records

TARGET = "https://acct.blob.core.windows.net/ccc/b.vhd"


def test_settings_never_imports_the_cli() -> None:
    """The direction is CLI -> settings: a knob table that imported the CLI tied the two in a circle."""
    root = Path(replicator.__file__).parent / "settings"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("replicator.cli") for n in names), f"{path.name} imports {names}"


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["worker", "--no-such"], "Unknown argument --no-such; see `replicate worker --help`."),
        (["enqueue", "--no-such"], "Unknown argument --no-such; see `replicate enqueue --help`."),
        (["list", "--no-such"], "Unknown argument --no-such; see `replicate list --help`."),
        (["status", "--no-such"], "Unknown argument --no-such; see `replicate status --help`."),
        (["--no-such"], "Unknown argument --no-such; see `replicate --help`."),
    ],
)
def test_a_usage_error_is_one_sentence_and_exit_2_for_every_command(
    argv: list[str], sentence: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATOR_JSON", raising=False)
    assert cli_main.main(argv) == 2
    [line] = records(capsys.readouterr().err)
    prog = "replicate" if argv[0].startswith("-") else f"replicate {argv[0]}"
    assert (line["event"], line["status"], line["exit_code"]) == ("exit", "bad input", 2)
    assert line["message"] == f"{prog}: error: {sentence}"


@pytest.mark.parametrize("command", ["worker", "enqueue"])
def test_a_bad_log_level_from_the_environment_is_refused_as_replicate_refuses_it(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker and enqueue read --log-level through the one loader: the variable is named, exit 2."""
    monkeypatch.setenv("REPLICATOR_LOG_LEVEL", "loud")
    assert cli_main.main([command, "--queue", "https://acct.queue.core.windows.net/q"]) == 2
    [line] = records(capsys.readouterr().err)
    assert line["message"].startswith(
        f"replicate {command}: error: REPLICATOR_LOG_LEVEL (environment variable)"
    )


def test_a_subcommands_bad_knob_from_the_environment_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list` reads its knobs as `replicate` does: the sentence says where a bad value came from."""
    monkeypatch.setenv("REPLICATOR_ALLOW_HTTP", "maybe")
    assert cli_main.main(["list", "--target", TARGET]) == 2
    [line] = records(capsys.readouterr().err)
    assert line["message"] == (
        "replicate list: error: REPLICATOR_ALLOW_HTTP (environment variable) must be true or false; "
        "got 'maybe'."
    )


@pytest.mark.parametrize(
    ("error", "status", "code", "sentence"),
    [
        (LockedError("another run holds the lease."), "locked", 3, "another run holds the lease."),
        (RuntimeError("surprise"), "failed", 1, "unexpected RuntimeError: surprise"),
    ],
)
def test_a_subcommand_failure_is_the_line_and_envelope_replicate_prints(
    error: Exception,
    status: str,
    code: int,
    sentence: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(config: object) -> None:
        raise error

    monkeypatch.setattr(list_cmd, "read", failing)
    assert cli_main.main(["list", "--target", f"{TARGET}?sv=1&sig=SECRET", "--json"]) == code
    out, err = capsys.readouterr()
    document = envelope.parse(out)
    assert (document["command"], document["status"], document["exit_code"]) == ("list", status, code)
    assert document["error"] == sentence and document["target"] == TARGET
    [line] = [r for r in records(err) if r["event"] == "exit"]
    assert line["message"] == f"replicate list: error: {sentence}"
    assert "SECRET" not in out + err
