"""Shared fixtures: a running emulator (session-wide, and private ones with custom knobs), a World on
it and an in-process CLI runner (the end-to-end, reliability and fleet tests), SDK clients and a
metric reader. Helpers that are not fixtures live in tests/helpers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replicator.cli import main as cli_main
from replicator.emulator.process import EmulatorProcess
from tests.e2e.world import World
from tests.helpers.arm_faults import rules
from tests.helpers.blob_clients import BlobClients
from tests.helpers.cli_runs import Run
from tests.logs import records
from tests.reliability.leaks import assert_no_leaks


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for the whole session; tests use unique (uuid) names so they never collide."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("emulator"), "--completion-seconds", "2")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def emulator_env(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The session emulator's env keys, also set in os.environ for code that reads them from there."""
    for key, value in emulator.env.items():
        monkeypatch.setenv(key, value)
    return dict(emulator.env)


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """Factory of private emulators, e.g. fresh_emulator("--max-page-ranges", "3").

    All are stopped (and checked to exit 0) at teardown.
    """
    started: list[EmulatorProcess] = []

    def make(*extra_args: str) -> EmulatorProcess:
        proc = EmulatorProcess(tmp_path / f"emulator-{len(started)}", *extra_args)
        started.append(proc)
        proc.start()
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def arm_faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator for the ARM fault tests: its rules are global to it, so they never reach
    tests on the session emulator."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("arm-faulty"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def arm_faulty_env(arm_faulty: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """`arm_faulty`'s env keys (also set in os.environ), with no ARM fault rule before nor after the test."""
    for key, value in arm_faulty.env.items():
        monkeypatch.setenv(key, value)
    rules(arm_faulty.env)
    yield dict(arm_faulty.env)
    rules(arm_faulty.env)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique lowercase names (accounts, containers, disks) for tests sharing the session emulator."""
    return lambda prefix: f"{prefix}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def blob_clients(emulator_env: dict[str, str]) -> BlobClients:
    return BlobClients(emulator_env)


@pytest.fixture
def metric_reader() -> Iterator[Callable[[], Any]]:
    """`start()` records the run metrics (observe.metrics) into a new InMemoryMetricReader and returns
    it; call it again to start afresh. The metrics are left to the environment after the test."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from replicator.observe import metrics

    def start() -> InMemoryMetricReader:
        reader = InMemoryMetricReader()
        metrics.install(MeterProvider(metric_readers=[reader]))
        return reader

    yield start
    metrics.install(None)


@pytest.fixture
def world(emulator_env: dict[str, str]) -> Iterator[World]:
    """A World (tests/e2e/world.py) on the session emulator: this test's resource group and account."""
    w = World(emulator_env)
    yield w
    w.close()


@pytest.fixture
def replicate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `replicate` through the real CLI entry (replicator.cli.main.main) in this process.

    Every run's stdout and stderr (logs included) are checked for secrets, and stderr (not a
    terminal here) must be JSON lines only (tests.logs). A held lease fails at once (`--lease-wait`
    0) unless a test passes the flag: tests that hold one on purpose stay fast.
    """
    monkeypatch.setenv("REPLICATOR_LEASE_WAIT", "0")

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = cli_main.main(list(args))
        captured = capsys.readouterr()
        assert_no_leaks(captured.out + captured.err)
        records(captured.err)
        return Run(code, captured.out, captured.err)

    return run
