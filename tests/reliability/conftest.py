"""Fixtures of the reliability campaign: an emulator whose faults the tests switch on and off, and a
World on it. The runners and checks are tests/helpers (cli_runs, replication)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replicator.devtools.disk_builder import control
from replicator.emulator.process import EmulatorProcess
from tests.e2e.world import World
from tests.helpers.cli_runs import STALL_SECONDS


@pytest.fixture(scope="session")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator for the campaign: its faults are switched per test through its
    `/_emulator/faults` route (replicator.devtools.disk_builder.control)."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("faulty"), "--fault-stall-seconds", str(STALL_SECONDS))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def faulty_world(faulty: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A World on the campaign emulator; faults are off while it is set up and switched off after."""
    for key, value in faulty.env.items():
        monkeypatch.setenv(key, value)
    control(faulty.env, "faults", {"rate": 0})
    w = World(faulty.env)
    yield w
    control(faulty.env, "faults", {"rate": 0})
    w.close()
