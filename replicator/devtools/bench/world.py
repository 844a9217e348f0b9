"""The benchmark's world on the emulator: disks, their base and current snapshots, SAS grants (all
made with replicator.devtools.disk_builder), and the emulator's link model and stats (the `/_emulator/`
endpoints of replicator.emulator.middleware.linkmodel).

Setup runs with the link model off (no latency, no limits): only the timed part pays for the link.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from replicator.devtools.bench.scenarios import DiskSpec
from replicator.devtools.disk_builder import VM_WRITES, DiskBuilder, control

GROUP = "bench-rg"
LINK_OFF = {
    "latency_ms": 0.0,
    "blob_limits": False,
    "link_mibps": None,
    "limit_copy_sources": True,
    "account_limits": False,
}


@dataclass(frozen=True)
class BenchDisk:
    """A disk of a scenario with its two incremental snapshots (resource IDs and names)."""

    name: str
    disk_id: str
    base_id: str
    base_name: str
    current_id: str
    current_name: str
    spec: DiskSpec


class Emulator:
    """The emulator's admin endpoints: link options and stats (bearer-authenticated)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def set_link(self, **options: Any) -> dict[str, Any]:
        return control(self.env, "link", options)

    def stats(self) -> dict[str, Any]:
        return control(self.env, "stats")

    def reset_stats(self) -> None:
        control(self.env, "stats/reset", method="POST")

    @contextlib.contextmanager
    def link(self, **options: Any) -> Iterator[None]:
        """The link model on for the `with` body, off again on every way out."""
        self.set_link(**options)
        try:
            yield
        finally:
            self.set_link(**LINK_OFF)


class World(DiskBuilder):
    """Creates the disks of the scenarios and grants SAS on their snapshots."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, GROUP)

    def make_disk(self, name: str, spec: DiskSpec, rng: random.Random) -> BenchDisk:
        sector = {"logicalSectorSize": spec.sector} if spec.sector != 512 else {}
        disk_id = self.create_disk(name, spec.size, spec.sku, **sector)
        self.write(name, spec.base, rng=rng, concurrency=VM_WRITES)
        base = self.snapshot(disk_id, f"{name}-base")
        self.write(name, spec.change, rng=rng, concurrency=VM_WRITES)
        current = self.snapshot(disk_id, f"{name}-current")
        return BenchDisk(name, disk_id, base, f"{name}-base", current, f"{name}-current", spec)

    @contextlib.contextmanager
    def read_sas(self, *snapshot_names: str) -> Iterator[list[str]]:
        """Read SAS URLs of the snapshots, revoked on every way out."""
        with contextlib.ExitStack() as grants:
            yield [grants.enter_context(self.sas("snapshots", name, "Read")) for name in snapshot_names]
