"""The benchmark's world on the emulator: disks, their base and current snapshots, SAS grants, and
the emulator's link model and stats (the `/_emulator/` endpoints of replicator.emulator.linkmodel).

Setup runs with the link model off (no latency, no limits): only the timed part pays for the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, Disk, DiskSku, GrantAccessData, Snapshot

from replicator.bench.scenarios import DiskSpec, GiB
from replicator.credentials import arm_scope, sync_credential
from replicator.demo import write_extents

LOCATION = "westeurope"
GROUP = "bench-rg"
LINK_OFF = {"latency_ms": 0.0, "blob_limits": False, "link_mibps": None}


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
        self.base = env["REPLICATOR_BLOB_ENDPOINT"]
        self._token = env["REPLICATOR_ACCESS_TOKEN"]
        self._ssl = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl, timeout=30) as answer:
            return json.loads(answer.read())

    def set_link(self, **options: Any) -> dict[str, Any]:
        return self._call("PUT", "link", options)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def reset_stats(self) -> None:
        self._call("POST", "stats/reset")

    @contextlib.contextmanager
    def link(self, **options: Any) -> Iterator[None]:
        """The link model on for the `with` body, off again on every way out."""
        self.set_link(**options)
        try:
            yield
        finally:
            self.set_link(**LINK_OFF)


class World:
    """Creates the disks of the scenarios and grants SAS on their snapshots (sync ARM SDK)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.compute = ComputeManagementClient(
            sync_credential(),
            env["AZURE_SUBSCRIPTION_ID"],
            base_url=env["REPLICATOR_ARM_ENDPOINT"],
            credential_scopes=[arm_scope(env["REPLICATOR_ARM_ENDPOINT"])],
        )

    def make_disk(self, name: str, spec: DiskSpec, rng: random.Random) -> BenchDisk:
        body = Disk(
            location=LOCATION,
            sku=DiskSku(name=spec.sku),
            creation_data=CreationData(
                create_option="Empty", logical_sector_size=spec.sector if spec.sector != 512 else None
            ),
            disk_size_gb=spec.size // GiB,
        )
        disk_id = self.compute.disks.begin_create_or_update(GROUP, name, body).result().id
        self._write(name, spec.base, rng)
        base = self._snapshot(disk_id, f"{name}-base")
        self._write(name, spec.change, rng)
        current = self._snapshot(disk_id, f"{name}-current")
        return BenchDisk(name, disk_id, base, f"{name}-base", current, f"{name}-current", spec)

    def _write(self, name: str, extents: list[Any], rng: random.Random) -> None:
        if not extents:
            return
        access = GrantAccessData(access="Write", duration_in_seconds=3600)
        sas = self.compute.disks.begin_grant_access(GROUP, name, access).result().access_sas
        try:
            asyncio.run(write_extents(sas, extents, rng))
        finally:
            self.compute.disks.begin_revoke_access(GROUP, name).result()

    def _snapshot(self, disk_id: str, name: str) -> str:
        body = Snapshot(
            location=LOCATION,
            incremental=True,
            creation_data=CreationData(create_option="Copy", source_resource_id=disk_id),
        )
        return self.compute.snapshots.begin_create_or_update(GROUP, name, body).result().id

    @contextlib.contextmanager
    def read_sas(self, *snapshot_names: str) -> Iterator[list[str]]:
        """Read SAS URLs of the snapshots, revoked on every way out."""
        granted: list[str] = []
        try:
            urls = []
            for name in snapshot_names:
                access = GrantAccessData(access="Read", duration_in_seconds=3600)
                urls.append(
                    self.compute.snapshots.begin_grant_access(GROUP, name, access).result().access_sas
                )
                granted.append(name)
            yield urls
        finally:
            for name in granted:
                self.compute.snapshots.begin_revoke_access(GROUP, name).result()
