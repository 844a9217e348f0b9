"""Fixtures of the reliability campaign: an emulator whose faults the tests switch on and off, a
subprocess CLI runner that checks every output for secrets, and observers of grants and leases."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from replicator import disk_builder
from replicator.emulator.process import EmulatorProcess
from tests.e2e import conftest as e2e
from tests.e2e.world import MiB, World, pattern
from tests.reliability.leaks import assert_no_leaks

STALL_SECONDS = 3.0
"""How late a stalled answer comes; the runs use --request-timeout 2, so it is a timeout for them."""
FAST_RETRY = ("--request-timeout", "2", "--checkpoint-seconds", "0.2")


@pytest.fixture(scope="session")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator for the campaign: its faults are switched per test through `control()`."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("faulty"), "--fault-stall-seconds", str(STALL_SECONDS))
    proc.start()
    yield proc
    proc.stop()


def control(env: dict[str, str], knobs: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or PUT `knobs` to) the emulator's fault control route."""
    return disk_builder.control(env, "faults", knobs)


Result = e2e.Run
start = e2e.cli_process


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> Result:
    """Wait for `proc`; its output must carry no secret and no traceback."""
    out, err = proc.communicate(timeout=timeout)
    assert_no_leaks(out + err)
    assert "Traceback" not in err, err
    return Result(proc.returncode, out, err)


def run(env: dict[str, str], *args: str, timeout: float = 240) -> Result:
    return finish(start(env, *args), timeout)


@pytest.fixture
def faulty_world(faulty: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A World on the campaign emulator; faults are off while it is set up and switched off after."""
    for key, value in faulty.env.items():
        monkeypatch.setenv(key, value)
    control(faulty.env, {"rate": 0})
    w = World(faulty.env)
    yield w
    control(faulty.env, {"rate": 0})
    w.close()


def scattered(world: World, name: str = "data", chunks: int = 16, seed: int = 0) -> Any:
    """A 1 GiB disk with `chunks` 1 MiB writes spread over it (unaligned to the 4 MiB chunk grid)."""
    disk = world.create_disk(name, 1)
    world.write(disk, *[(i * 60 * MiB + 512 * i, pattern(seed + i, MiB)) for i in range(chunks)])
    return disk


def change(world: World, disk: Any, seed: int, chunks: int = 12) -> None:
    """Overwrite some pages, write new ones and clear some: a diff with data and clears."""
    world.write(
        disk,
        *[(i * 40 * MiB + 4096 * i, pattern(seed * 100 + i, 512 * 1024)) for i in range(chunks)],
        (60 * MiB + 512, 8192),
    )


def metadata(world: World, url: str) -> dict[str, str]:
    with world.target(url) as blob:
        return blob.get_blob_properties().metadata


def wait_for_checkpoint(world: World, url: str, proc: subprocess.Popen[str], limit: float = 60) -> int:
    """Poll the target until the running `proc` saved a checkpoint; returns it (0: it never did)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            checkpoint = int(metadata(world, url).get("inprogress_checkpoint", "0"))
        except Exception:  # the blob may not exist yet
            checkpoint = 0
        if checkpoint > 0:
            return checkpoint
        time.sleep(0.1)
    return 0


def check_points(world: World, url: str, *snapshot_ids: str) -> list[Any]:
    """Exactly one restore point per snapshot, in order, each byte-equal to its source."""
    points = world.restore_points(url)
    assert [p.metadata["snapshot_id"] for p in points] == list(snapshot_ids)
    for point, snapshot_id in zip(points, snapshot_ids, strict=True):
        world.assert_restore_point_equals(url, point.snapshot, snapshot_id)
    return points


world = e2e.world  # the e2e fixtures (session emulator), reused by the in-process tests here
replicate = e2e.replicate
