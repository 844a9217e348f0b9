"""The CLI's endings: a `--json` status per error class, JSON on a bad config also from REPLICATOR_JSON,
exact size-limit messages, restore names refused before anything is created, readable help."""

from __future__ import annotations

from dataclasses import replace

import pytest

from replicator.cli import main as cli_main
from replicator.cli.argv import wants_json
from replicator.core.errors import (
    IncompleteError,
    Interrupted,
    LimitError,
    LockedError,
    ReplicationError,
    UserError,
    status_of,
)
from replicator.core.output import (
    human_duration,
    human_rate,
    human_size,
    measured_duration,
    plural,
)
from replicator.core.progress import RunResult
from replicator.engine import base_choice, pipeline
from replicator.engine.pipeline import State
from tests import envelope
from tests.helpers.source_fakes import DISK, IDENTITY, config, snap
from tests.logs import messages, records

BASE = ["--source", DISK, "--target", "https://a.blob.core.windows.net/ccc/b"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (LockedError("another replication holds the lease."), "locked", 3),
        (LimitError("the SAS budget of the family is full."), "limited", 3),
        (IncompleteError("the time budget ran out."), "incomplete", 3),
        (ReplicationError("a chunk failed."), "failed", 1),
        (UserError("no such snapshot."), "bad input", 2),
        (Interrupted(15), "interrupted", 143),
        (Interrupted(2), "interrupted", 130),
        (RuntimeError("surprise"), "failed", 1),
    ],
)
def test_json_status_names_each_ending(
    error: Exception, status: str, code: int, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    async def ends(config, progress, *args):
        raise error

    monkeypatch.setattr(pipeline, "replicate", ends)
    assert cli_main.main([*BASE, "--json"]) == code
    captured = capsys.readouterr()
    doc = envelope.parse(captured.out)
    assert (doc["status"], doc["exit_code"], status_of(error)) == (status, code, status)
    [record] = records(captured.err)
    kind = status if status in ("incomplete", "interrupted") else "error"
    assert record["message"].startswith(f"replicate: {kind}: "), record
    assert (record["event"], record["status"], record["exit_code"]) == ("exit", status, code)


def test_bad_config_honours_replicator_json(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("REPLICATOR_JSON", "true")
    assert cli_main.main([*BASE, "--concurrency", "0"]) == 2
    doc = envelope.parse(capsys.readouterr().out)
    assert (doc["status"], doc["exit_code"]) == ("bad input", 2)
    assert "--concurrency must be between" in doc["error"]


def test_wants_json() -> None:
    assert wants_json(["--json"], {}) and wants_json([], {"REPLICATOR_JSON": "yes"})
    assert not wants_json([], {}) and not wants_json([], {"REPLICATOR_JSON": "false"})
    assert not wants_json([], {"REPLICATOR_JSON": "maybe"})  # the config load reports the bad value


def test_human_size() -> None:
    assert [human_size(n) for n in (512, 1536, 3 * 1024**2, 8 * 1024**4)] == [
        "512 B",
        "1.5 KiB",
        "3.0 MiB",
        "8.0 TiB",
    ]


def test_a_source_over_8_tib_is_accepted_for_stripes() -> None:
    eight = 8 * 1024**4  # exports as 8 TiB + 512: two stripes (core.stripes), no longer refused
    base_choice.check_source(config(), State(), IDENTITY, [snap(1, eight)])
    base_choice.check_source(
        config(), State(), IDENTITY, [replace(snap(1, 4 * eight), logical_sector_size=4096)]
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--disk-name", "_starts-with-underscore"),
        ("--disk-name", "ends-with-dot."),
        ("--disk-name", "has space"),
        ("--disk-name", "x" * 81),
        ("--disk-name", ""),
        ("--resource-group", "ends."),
        ("--resource-group", "r" * 91),
        ("--resource-group", "bad/slash"),
        ("--location", "West Europe"),
        ("--location", "west-europe"),
    ],
)
def test_restore_refuses_invalid_names_before_anything(
    flag: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from replicator.cli import restore_cmd

    async def never(*args, **kwargs):
        raise AssertionError("restore ran with an invalid name")

    monkeypatch.setattr(restore_cmd, "restore", never)
    names = {
        "--disk-name": "disk_1.a",
        "--resource-group": "rg-(dr).1",
        "--location": "westeurope",
        flag: value,
    }
    argv = ["--target", "https://a.blob.core.windows.net/ccc/b", "--point", "latest", "--json"]
    argv += [item for pair in names.items() for item in pair]
    assert cli_main.main(["restore", *argv]) == 2
    captured = capsys.readouterr()
    assert envelope.parse(captured.out)["status"] == "bad input"
    [line] = messages(captured.err)
    assert flag in line and "is not valid" in line, line


def test_restore_accepts_valid_names(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from replicator.cli import restore_cmd

    seen = []

    async def fake(config, request, say):
        seen.append(request)
        raise LockedError("held.")

    monkeypatch.setattr(restore_cmd, "restore", fake)
    argv = ["--target", "https://a.blob.core.windows.net/ccc/b", "--point", "latest", "--json"]
    argv += ["--disk-name", "A" * 80, "--resource-group", "rg_(dr)-1.x", "--location", "westeurope2"]
    assert cli_main.main(["restore", *argv]) == 3
    assert envelope.parse(capsys.readouterr().out)["status"] == "locked"
    assert seen[0].disk_name == "A" * 80


def test_help_shows_defaults_env_and_subcommands(capsys) -> None:
    assert cli_main.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # help lines wrap with the terminal
    for text in (
        "list",
        "restore",
        "prune",
        "emulator",
        "exit codes:",
        "(default 4) [env REPLICATOR_DISK_CONCURRENCY]",
        "[env REPLICATOR_CONCURRENCY]",  # no default shown: the target's kind decides it (core.premium)
    ):
        assert text in out, text
    assert "(required) [env REPLICATOR_SOURCE]" in out and "--merge-gap SIZE" in out
    assert "Subscription for ARM calls" not in out
    assert all(name in cli_main.EPILOG for name in cli_main.SUBCOMMANDS)
    for sub in ("list", "restore", "prune"):
        assert cli_main.main([sub, "--help"]) == 0
        sub_help = " ".join(capsys.readouterr().out.split())
        assert "[env REPLICATOR_TARGET]" in sub_help
        assert ("--subscription-id" in sub_help) == (sub == "restore"), sub  # only restore uses it


def test_units_agree_and_are_binary() -> None:
    assert [plural(n, "request") for n in (0, 1, 2)] == ["0 requests", "1 request", "2 requests"]
    assert [plural(n, "retry", "retries") for n in (1, 3)] == ["1 retry", "3 retries"]
    assert human_rate(4 * 1024**2) == "4.0 MiB/s"  # as --max-bandwidth 4MiB caps it, not "4.2 MB/s"
    assert [human_duration(s) for s in (0.4, 42, 303, 7500)] == ["0 s", "42 s", "5 min 3 s", "2 h 5 min"]
    # a measured time (an RTO) keeps its tenths below a minute: a fast restore is not "0 s"
    assert [measured_duration(s) for s in (0.04, 0.4, 42.34, 59.96, 303)] == [
        "0.0 s",
        "0.4 s",
        "42.3 s",
        "1 min 0 s",
        "5 min 3 s",
    ]


def test_a_run_says_first_how_it_read_a_decimal_size(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    async def quiet(config, progress, *args):
        return RunResult(config.source, config.target)

    monkeypatch.setattr(pipeline, "replicate", quiet)
    assert cli_main.main([*BASE, "--max-bandwidth", "50MB"]) == 0
    first, *_ = records(capsys.readouterr().err)
    assert (first["event"], first["knob"], first["given"], first["bytes"]) == (
        "size_read",
        "--max-bandwidth",
        "50MB",
        50_000_000,
    )
    assert first["message"].startswith("--max-bandwidth 50MB = 47.7 MiB/s (MB is decimal")
