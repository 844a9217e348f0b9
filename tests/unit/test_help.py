"""Help and output a new user reads: every option explained, no cut sentences, no option that does not
exist in that subcommand, counts in agreement, one time format, the house error style everywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from replicator.cli import main as cli_main
from replicator.cli.parser import first_paragraph, sentence
from replicator.core.output import plural, utc_time
from tests import envelope
from tests.logs import messages


def _help(capsys, *argv: str) -> str:
    assert cli_main.main([*argv, "--help"]) == 0
    return capsys.readouterr().out


def test_enqueue_help_names_where_the_jobs_come_from(capsys) -> None:
    text = " ".join(_help(capsys, "enqueue").split())
    assert "REPLICATOR_JOBS" in text and "REPLICATOR_DISCOVER" in text


@pytest.mark.parametrize(("command", "options"), [("bench", 9), ("emulator", 6), ("worker", 6)])
def test_every_option_has_help(capsys, command: str, options: int) -> None:
    """argparse prints an option without help as a bare line; each option line must carry text."""
    lines = _help(capsys, command).split("options:", 1)[1].splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("  -")]
    assert len(starts) >= options
    for i in starts:
        following = lines[i + 1] if i + 1 < len(lines) else ""
        has_text = len(lines[i].strip().split("  ")) > 1 or following.startswith(" " * 10)
        assert has_text, lines[i]


def test_descriptions_are_whole_sentences(capsys) -> None:
    text = " ".join(_help(capsys, "bench").split())
    assert "verify every result byte-for-byte (untimed), and write docs/benchmarks.md + chart." in text
    assert first_paragraph("a\nb.\n\nc") == "a b."


@pytest.mark.parametrize("command", ["list", "restore", "prune"])
def test_subcommand_help_never_mentions_source(capsys, command: str) -> None:
    assert "--source" not in _help(capsys, command)


def test_main_help_names_the_credential_and_ca_variables(capsys) -> None:
    text = _help(capsys)
    assert "REPLICATOR_ACCESS_TOKEN" in text and "SSL_CERT_FILE" in text


def test_plural_and_one_time_format() -> None:
    assert (plural(1, "restore point"), plural(0, "job"), plural(3, "job")) == (
        "1 restore point",
        "0 jobs",
        "3 jobs",
    )
    assert utc_time("2026-11-25T21:23:38.451057+00:00") == "2026-11-25T21:23:38.451057Z"
    assert utc_time("2026-11-25T22:23:38+01:00") == "2026-11-25T21:23:38.000000Z"
    assert utc_time("not a time") == "not a time"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("argument --keep: invalid int value: 'x'", "--keep: expected a whole number; got 'x'."),
        ("unrecognized arguments: --bogus", "Unknown argument --bogus."),
        ("the following arguments are required: --data-dir", "--data-dir is required."),
        (
            "the following arguments are required: --resource-group, --disk-name, --location",
            "--resource-group, --disk-name and --location are required.",
        ),
        ("the following arguments are required: --a, --b", "--a and --b are required."),
        (
            "argument --older-than: not allowed with argument --keep",
            "--keep and --older-than exclude each other: give one.",
        ),
        ("one of the arguments --point --group is required", "--point or --group is required."),
        (
            "argument --name-suffix: expected one argument",
            "--name-suffix needs a value (one that starts with '-' takes the = form: --name-suffix=-VALUE).",
        ),
    ],
)
def test_argparse_messages_in_the_house_style(message: str, expected: str) -> None:
    assert sentence(message).startswith(expected)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["demo", "--disk-gib", "2"],
            "replicate demo: error: --disk-gib must be between 16 and 4096; got 2.",
        ),
        (["bench", "--seed", "x"], "replicate bench: error: --seed: expected a whole number; got 'x'."),
        (["emulator", "--port", "x"], "replicate emulator: error: --port: invalid int value: 'x'."),
        (
            ["worker", "--nope"],
            "replicate worker: error: Unknown argument --nope; see `replicate worker --help`.",
        ),
        (["prune", "--keep", "x"], "replicate prune: error: --keep: expected a whole number; got 'x'."),
    ],
)
def test_usage_errors_are_one_line(capsys, argv: list[str], says: str) -> None:
    """One line each; through the log stream (a JSON line off a terminal), except the emulator's own."""
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert (err.strip().splitlines() if argv[0] == "emulator" else messages(err)) == [says]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["list", "--target", "https://a/c/x.vhd", "--target", "https://a/c/y.vhd"],
            "replicate list: error: --target",
        ),
        (["--source", "d1", "--source", "d2", "--target", "t"], "replicate: error: --source"),
        (["drill", "--target", "t", "--target", "u"], "replicate drill: error: --target"),
    ],
)
def test_a_flag_naming_what_a_command_acts_on_is_taken_once(capsys, argv: list[str], says: str) -> None:
    """argparse would keep the last `--target` silently; someone who gave two expects both. Only
    `status` takes several (tests/e2e/test_status.py)."""
    assert cli_main.main([*argv, "--json"]) == 2
    captured = capsys.readouterr()
    [line] = messages(captured.err)
    assert line.startswith(says) and "given more than once" in line and "takes one" in line, line
    assert envelope.parse(captured.out)["status"] == "bad input"


def test_list_and_status_help_say_a_target_may_be_a_vm_prefix(capsys) -> None:
    listed = " ".join(_help(capsys, "list").split())
    assert "or a VM's prefix: a container, or a folder in it (its groups)" in listed
    status = " ".join(_help(capsys, "status").split())
    assert "or a VM's prefix (a container, or a folder in it" in status
    assert "Give it several times for several targets" in status


def test_restore_help_is_the_same_whatever_the_hash_seed() -> None:
    """The disk types in one order (a set's order changes with PYTHONHASHSEED), and the suffix example
    in the form argparse accepts (`--name-suffix -dr` reads -dr as a flag)."""
    shown = {
        subprocess.run(
            [sys.executable, "-m", "replicator.cli.main", "restore", "--help"],
            env={**os.environ, "PYTHONHASHSEED": str(seed), "COLUMNS": "100"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(4)
    }
    [text] = shown
    text = " ".join(text.split())
    assert "Premium_ZRS, PremiumV2_LRS, UltraSSD_LRS (default" in text
    assert "(e.g. --name-suffix=-dr: a value that starts with '-' takes the = form)" in text


def test_a_blob_url_given_for_a_group_says_a_vm_target_holds_a_blob_per_disk(capsys) -> None:
    argv = ["restore", "--target", "https://a.blob.core.windows.net/ccc/vm1.vhd", "--group", "latest"]
    assert cli_main.main([*argv, "--resource-group", "dr", "--location", "westeurope"]) == 2
    [line] = messages(capsys.readouterr().err)
    assert "names one blob (vm1.vhd), but a virtual machine's target holds a blob per disk" in line, line


def test_an_unknown_bench_scenario_is_a_usage_error(capsys) -> None:
    """Not a KeyError traceback from deep in the scenario builders."""
    assert cli_main.main(["bench", "--scenarios", "scattered", "nope"]) == 2
    [line] = messages(capsys.readouterr().err)
    assert line.startswith(
        "replicate bench: error: --scenarios: invalid choice: 'nope' (choose from 'scattered'"
    )
