"""Shared fixtures: a running emulator (session-wide, and private ones with custom knobs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.emulator_process import EmulatorProcess


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
