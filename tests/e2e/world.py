"""Test world for end-to-end runs: disks, snapshots and targets made through the real Azure SDKs.

Everything goes through the endpoints in the environment (REPLICATOR_ARM_ENDPOINT,
REPLICATOR_BLOB_ENDPOINT, REPLICATOR_ACCESS_TOKEN, AZURE_SUBSCRIPTION_ID, SSL_CERT_FILE), so
the same helpers would drive a real subscription. Names are unique per test (uuid) because the
session emulator is shared.

`assert_restore_point_equals` is the oracle of every e2e test: it reads the source snapshot through
a Read SAS and the restore point through its blob snapshot, both in full, and compares them.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient

from replicator.devtools.disk_builder import (
    DiskBuilder,
    Extent,
    Kind,
    control,
    merged,
)
from replicator.settings.knobs import GiB, MiB

READ_CHUNK = 32 * MiB


def _read(client: BlobClient, offset: int, length: int) -> bytes:
    return client.download_blob(offset, length, max_concurrency=4).readall()


def _valid(client: BlobClient) -> list[tuple[int, int]]:
    return [(r.start, r.end + 1) for r in client.list_page_ranges() if not r.cleared]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def pattern(seed: int, length: int) -> bytes:
    """Deterministic, non-repeating test bytes."""
    return random.Random(seed).randbytes(length)


def _assert_same(source: BlobClient, replica: BlobClient, what: str, snapshot_id: str, *, full: bool) -> None:
    """`replica` reads back exactly `source` (assert_restore_point_equals says why)."""
    size = source.get_blob_properties().size
    assert replica.get_blob_properties().size == size, f"{what} size differs from the snapshot"
    spans = [(0, size)] if full else merged(_valid(source) + _valid(replica))
    for start, end in spans:
        for offset in range(start, end, READ_CHUNK):
            length = min(READ_CHUNK, end - offset)
            with ThreadPoolExecutor(2) as pool:
                reads = [pool.submit(_read, c, offset, length) for c in (source, replica)]
                want, got = (r.result() for r in reads)
            if want != got:
                first = next(i for i in range(length) if want[i] != got[i])
                raise AssertionError(
                    f"{what} differs from {snapshot_id} at byte {offset + first} "
                    f"(sha256 {_digest(got)} != {_digest(want)})"
                )


@dataclass
class Disk:
    name: str
    id: str


@dataclass
class World:
    """One test's resource group and storage account in the emulator (or a real subscription).

    The source side (disks, snapshots, SAS grants, writes) is devtools.disk_builder's; this adds the
    test's names, the target side and the oracles.
    """

    env: dict[str, str]
    rg: str = field(default_factory=lambda: f"rg-{uuid.uuid4().hex[:10]}")
    account: str = field(default_factory=lambda: f"acct{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        self.disks = DiskBuilder(self.env, self.rg)
        self.subscription = self.disks.subscription
        self.credential = self.disks.credential
        self.compute = self.disks.compute
        self.location = self.disks.location

    # ------------------------------------------------------------------ source side
    def resource_id(self, kind: str, name: str) -> str:
        group = f"/subscriptions/{self.subscription}/resourceGroups/{self.rg}"
        return f"{group}/providers/Microsoft.Compute/{kind}/{name}"

    def create_disk(
        self,
        name: str,
        gib: int = 1,
        *,
        sku: str = "Standard_LRS",
        tags: dict[str, str] | None = None,
        auth_mode: str | None = None,
        properties: dict[str, Any] | None = None,
        zones: list[str] | None = None,
        **extra: Any,
    ) -> Disk:
        """An empty disk (`auth_mode`: its dataAccessAuthMode; `properties` and `zones` as
        DiskBuilder.create_disk takes them); `extra` adds to its `creationData` (e.g.
        `logicalSectorSize=4096`)."""
        made = self.disks.create_disk(
            name, gib * GiB, sku, tags, auth_mode=auth_mode, properties=properties, zones=zones, **extra
        )
        return Disk(name, made)

    def resize_disk(self, disk: Disk, gib: int) -> None:
        self.disks.resize_disk(disk.name, gib * GiB)

    @contextlib.contextmanager
    def _sas(self, kind: Kind, name: str, access: str, group: str | None = None) -> Iterator[BlobClient]:
        """A BlobClient on a SAS of a disk or snapshot, revoked on exit. Reading an Entra-ID-protected
        one also sends a disk token, as every reader of such a disk must (`_disk_token_hook`)."""
        hook = self._disk_token_hook(kind, name, group) if access == "Read" else None
        with (
            self.disks.sas(kind, name, access, group) as url,
            BlobClient.from_blob_url(url, raw_request_hook=hook) as client,
        ):
            yield client

    def _disk_token_hook(self, kind: Kind, name: str, group: str | None) -> Callable[[Any], None] | None:
        """For a resource whose dataAccessAuthMode is AzureActiveDirectory: a request hook that adds
        `Authorization: Bearer <token>` for `https://disk.azure.com/` (scope with the double slash), from
        DefaultAzureCredential (on the emulator its identity endpoint's system identity, which holds
        the data role). None for any other resource: its SAS alone reads it."""
        resource = getattr(self.compute, kind).get(group or self.rg, name)
        if (resource.data_access_auth_mode or "").casefold() != "azureactivedirectory":
            return None
        with DefaultAzureCredential() as credential:
            token = credential.get_token("https://disk.azure.com//.default").token

        def hook(request: Any) -> None:
            request.http_request.headers["Authorization"] = f"Bearer {token}"

        return hook

    def write(self, disk: Disk, *writes: tuple[int, bytes | int]) -> None:
        """(offset, bytes) writes data; (offset, length) clears that many bytes; in order."""
        self.disks.write(
            disk.name,
            [
                Extent(offset, data, clear=True)
                if isinstance(data, int)
                else Extent(offset, len(data), data=data)
                for offset, data in writes
            ],
        )

    def create_vm(
        self, name: str, os_disk: Disk, data_disks: dict[int, Disk], caching: dict[str, str] | None = None
    ) -> str:
        """A VM attaching `os_disk` and `data_disks` ({LUN: disk}); host caching by disk name (else
        Azure's defaults: ReadWrite for the OS disk). Returns its ID."""
        data = {lun: disk.name for lun, disk in data_disks.items()}
        return self.disks.create_vm(name, os_disk.name, data, caching=caching)

    def restore_point(self, vm_id: str, collection: str = "ops", mode: str = "CrashConsistent") -> str:
        """A VM restore point as an operator makes one (`az restore-point create`), in an untagged
        collection of this resource group; returns its ID."""
        self.compute.restore_point_collections.create_or_update(
            self.rg, collection, {"location": self.location, "properties": {"source": {"id": vm_id}}}
        )
        name = f"rp-{uuid.uuid4().hex[:8]}"
        body = {"properties": {"consistencyMode": mode}}
        return self.compute.restore_points.begin_create(self.rg, collection, name, body).result().id

    @contextlib.contextmanager
    def read_disk_restore_point(self, drp_id: str) -> Iterator[BlobClient]:
        """A Read SAS on a disk restore point (`beginGetAccess`), ended on exit (`endGetAccess`)."""
        parts = drp_id.split("/")
        group, collection, point, name = parts[4], parts[8], parts[10], parts[12]
        operations = self.compute.disk_restore_point
        grant = {"access": "Read", "durationInSeconds": 3600}
        url = operations.begin_grant_access(group, collection, point, name, grant).result().access_sas
        try:
            with BlobClient.from_blob_url(url) as client:
                yield client
        finally:
            operations.begin_revoke_access(group, collection, point, name).result()

    def assert_restore_point_holds(self, url: str, restore_point: str, source_id: str) -> None:
        """Like `assert_restore_point_equals`, from a disk restore point (or a snapshot) read through
        its own Read SAS."""
        if "/diskRestorePoints/" not in source_id:
            self.assert_restore_point_equals(url, restore_point, source_id)
            return
        with self.read_disk_restore_point(source_id) as source, self.target(url, restore_point) as replica:
            _assert_same(source, replica, f"restore point {restore_point}", source_id, full=False)

    def snapshot(
        self,
        disk: Disk,
        name: str | None = None,
        *,
        incremental: bool = True,
        group: str | None = None,
        auth_mode: str | None = None,
    ) -> str:
        """A snapshot of `disk` as an operator takes it by hand (no tags), in this test's resource group
        or in `group`, with `auth_mode` as its dataAccessAuthMode (a snapshot has what its own request
        says, whatever its disk's)."""
        name = name or f"snap-{uuid.uuid4().hex[:8]}"
        return self.disks.snapshot(disk.id, name, incremental=incremental, group=group, auth_mode=auth_mode)

    @contextlib.contextmanager
    def dated_back(self, seconds: float) -> Iterator[None]:
        """What ARM creates within the block is dated `seconds` in the past (`timeCreated`).

        The emulator's clock control (emulator/middleware/clock.py): emulator only, set back to wall
        time on the way out. A stale replica without waiting for one.
        """
        self.clock_control({"offset_seconds": -seconds})
        try:
            yield
        finally:
            self.clock_control({"offset_seconds": 0})

    def clock_control(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET (or PUT `body` to) the emulator's /_emulator/clock."""
        return control(self.env, "clock", body)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.compute.snapshots.begin_delete(self.rg, snapshot_id.rsplit("/", 1)[1]).result()

    def snapshot_state(self, snapshot_id: str) -> str:
        return self.compute.snapshots.get(self.rg, snapshot_id.rsplit("/", 1)[1]).disk_state

    def assert_sas_free(self, *snapshot_ids: str) -> None:
        """No SAS is left granted on these snapshots (every way out of a run revokes)."""
        for snapshot_id in snapshot_ids:
            assert self.snapshot_state(snapshot_id) != "ActiveSAS", f"{snapshot_id} still has a SAS"

    def disk_state(self, disk: Disk) -> str:
        return self.compute.disks.get(self.rg, disk.name).disk_state

    @contextlib.contextmanager
    def read_snapshot(self, snapshot_id: str) -> Iterator[BlobClient]:
        """A Read SAS on the snapshot, in whichever resource group its ID names."""
        group = snapshot_id.split("/")[4]
        with self._sas("snapshots", snapshot_id.rsplit("/", 1)[1], "Read", group) as client:
            yield client

    # ------------------------------------------------------------------ target side
    def target_url(self, container: str | None = None, blob: str = "replica.vhd") -> str:
        container = container or f"c{uuid.uuid4().hex[:10]}"
        return f"{self.env['REPLICATOR_BLOB_ENDPOINT'].rstrip('/')}/{self.account}/{container}/{blob}"

    def target(self, url: str, snapshot: str | None = None) -> BlobClient:
        # A target URL carrying a SAS (Azurite, or a SAS-scoped target) authorises itself.
        credential = None if "sig=" in url else self.credential
        return BlobClient.from_blob_url(url, credential=credential, snapshot=snapshot)

    @contextlib.contextmanager
    def held_lease(self, url: str) -> Iterator[None]:
        """Someone else (not a replicator run) holds the target's lease for the duration."""
        with self.target(url) as blob:
            lease = BlobLeaseClient(blob)
            lease.acquire(lease_duration=60)
            try:
                yield
            finally:
                lease.release()

    def container(self, url: str) -> ContainerClient:
        account_url, container, _ = url.rsplit("/", 2)
        return ContainerClient(account_url, container, credential=self.credential)

    def restore_points(self, url: str) -> list[Any]:
        blob = url.rsplit("/", 1)[1]
        with self.container(url) as container:
            items = container.list_blobs(name_starts_with=blob, include=["snapshots", "metadata"])
            return sorted((b for b in items if b.name == blob and b.snapshot), key=lambda b: b.snapshot)

    def assert_restore_point_equals(
        self, url: str, restore_point: str, snapshot_id: str, *, full: bool = False
    ) -> None:
        """The restore point holds exactly the source snapshot's bytes.

        Reads the source snapshot (Read SAS) and the restore point (blob snapshot) through the SDK and
        compares them. `full=True` reads every byte of both; otherwise every byte of the union of both
        blobs' valid page ranges (listed with every NextMarker followed), which is the same comparison:
        a page blob reads zeros outside its valid ranges, in both blobs alike.
        """
        with self.read_snapshot(snapshot_id) as source, self.target(url, restore_point) as replica:
            _assert_same(source, replica, f"restore point {restore_point}", snapshot_id, full=full)

    def assert_disk_equals(self, disk_name: str, snapshot_id: str, *, full: bool = False) -> None:
        """A disk restored from a restore point holds exactly the source snapshot's bytes."""
        with self.read_snapshot(snapshot_id) as source, self.read_disk(disk_name) as disk:
            _assert_same(source, disk, f"disk {disk_name}", snapshot_id, full=full)

    @contextlib.contextmanager
    def read_disk(self, name: str) -> Iterator[BlobClient]:
        with self._sas("disks", name, "Read") as client:
            yield client

    def close(self) -> None:
        self.disks.close()
