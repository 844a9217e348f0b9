"""Steps and checks the end-to-end and reliability tests share: a disk with scattered data and a
change of it, a target replicated once and then changed, the target's metadata and checkpoint, and
one byte-equal restore point per snapshot."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

from tests.e2e.world import Disk, MiB, World, pattern
from tests.helpers.cli_runs import Run


def scattered(world: World, name: str = "data", chunks: int = 16, seed: int = 0) -> Disk:
    """A 1 GiB disk with `chunks` 1 MiB writes spread over it (unaligned to the 4 MiB chunk grid)."""
    disk = world.create_disk(name, 1)
    world.write(disk, *[(i * 60 * MiB + 512 * i, pattern(seed + i, MiB)) for i in range(chunks)])
    return disk


def change(world: World, disk: Disk, seed: int, chunks: int = 12) -> None:
    """Overwrite some pages, write new ones and clear some: a diff with data and clears."""
    world.write(
        disk,
        *[(i * 40 * MiB + 4096 * i, pattern(seed * 100 + i, 512 * 1024)) for i in range(chunks)],
        (60 * MiB + 512, 8192),
    )


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
