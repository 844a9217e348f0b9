"""Fixtures of the end-to-end tests: a `World` on the session emulator and an in-process CLI runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from replicator import cli
from tests import envelope
from tests.e2e.world import Disk, World, pattern
from tests.logs import records
from tests.reliability.leaks import assert_no_leaks


@pytest.fixture
def world(emulator_env: dict[str, str]) -> Iterator[World]:
    w = World(emulator_env)
    yield w
    w.close()


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def doc(self) -> dict[str, Any]:
        """The run's `--json` envelope, checked against the published schema (tests.envelope)."""
        return envelope.parse(self.out)


def cli_process(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """`python -m replicator.cli ARGS` as a child process with the emulator's environment, output piped.

    SIGINT is reset to its default in the child: a test runner started in the background by a
    non-interactive shell ignores SIGINT, the child would inherit that, and Python then installs no
    KeyboardInterrupt handler, so the signal tests would test nothing.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "replicator.cli", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kwargs,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def replicated_then_changed(world: World, replicate: Callable[..., Run]) -> tuple[Disk, str, str, str]:
    """A disk with one restore point on a new target and a newer snapshot not yet replicated.

    Returns (disk, first snapshot ID, second snapshot ID, target URL).
    """
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 4096)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    world.write(disk, (8192, pattern(2, 4096)))
    return disk, s1, world.snapshot(disk), url


@pytest.fixture
def replicate(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `replicate` through the real CLI entry (replicator.cli.main) in this process.

    Every run's stdout and stderr (logs included) are checked for secrets, and stderr (not a
    terminal here) must be JSON lines only (tests.logs). A held lease fails at once (`--lease-wait`
    0) unless a test passes the flag: tests that hold one on purpose stay fast.
    """
    monkeypatch.setenv("REPLICATOR_LEASE_WAIT", "0")

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = cli.main(list(args))
        captured = capsys.readouterr()
        assert_no_leaks(captured.out + captured.err)
        records(captured.err)
        return Run(code, captured.out, captured.err)

    return run
