"""Disks and incremental snapshots made on the emulator as an operator and a VM would make them.

A developer tool, not part of the replicator (its replication code never imports it): the demo
(replicator.devtools.demo), the benchmark (replicator.devtools.bench.world) and the end-to-end tests
(tests/e2e/world.py) build their source side with it. Disks and snapshots are made through ARM
(`azure-mgmt-compute`, REST-shaped bodies), pages are written and cleared through the disk's Write
SAS, snapshots and disks are read through a Read SAS, and every SAS is revoked on every way out.
Everything goes through the endpoints, token and CA in the environment, so the same code would drive
a real subscription; only `control` (the emulator's `/_emulator/` routes) is the emulator's alone.

Writes are described by `Extent`s: pure data, so a seed makes a demo or a benchmark scenario
identical on every run, and `footprint` counts what a diff must then report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import urllib.request
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from azure.mgmt.compute import ComputeManagementClient
from azure.storage.blob.aio import BlobClient

from replicator.core import stripes
from replicator.core.ranges import MAX_WRITE, Op
from replicator.engine.verify import VERIFY_CONCURRENCY, Comparison, compare_blobs, compare_striped
from replicator.plumbing.credentials import (
    arm_scope,
    async_credential,
    sync_credential,
    transport_kwargs,
)
from replicator.settings.knobs import GiB, KiB

LOCATION = "westeurope"
SAS_SECONDS = 3600  # a grant outlives any setup step; every grant is revoked when its step ends
VM_WRITES = 16  # the demo's and the benchmark's VM write with 16 requests in flight
CONTROL_TIMEOUT = 30.0  # the emulator answers its control routes at once; this bounds a hung one

Kind = Literal["disks", "snapshots"]
T = TypeVar("T")


@dataclass(frozen=True)
class Extent:
    """One write to a disk, or a clear (a TRIM) when `clear`.

    A write puts `data` when given (a test's known pattern), else random bytes drawn from the
    writer's `rng` (the demo's and the benchmark's VM: seeded, never held in memory at once).
    """

    offset: int
    length: int
    clear: bool = False
    data: bytes | None = field(default=None, repr=False)


def aligned(offset: int, align: int = 4 * KiB) -> int:
    """`offset` rounded down to a multiple of `align` (4 KiB: a file system's block)."""
    return offset - offset % align


def scattered_writes(rng: random.Random, size: int, count: int, low: int, high: int) -> list[Extent]:
    """`count` writes of `low` to `high` bytes (4 KiB multiples) at random 4 KiB-aligned offsets:
    small files spread over a disk of `size` bytes."""
    out = []
    for _ in range(count):
        length = rng.randrange(low, high + 1, 4 * KiB)
        out.append(Extent(aligned(rng.randrange(0, size - length)), length))
    return out


def merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open `(start, end)` spans merged where they overlap or touch, in offset order."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def footprint(extents: Iterable[Extent]) -> int:
    """Bytes of the disk these extents touch (overlaps counted once): what a diff must report as
    changed or cleared."""
    return sum(end - start for start, end in merged((e.offset, e.offset + e.length) for e in extents))


def pieces(extents: Iterable[Extent]) -> Iterator[Extent]:
    """The extents cut into requests of at most 4 MiB (the Put Page limit), in the given order."""
    for e in extents:
        for pos in range(e.offset, e.offset + e.length, MAX_WRITE):
            length = min(MAX_WRITE, e.offset + e.length - pos)
            data = None if e.data is None else e.data[pos - e.offset : pos - e.offset + length]
            yield Extent(pos, length, e.clear, data)


async def write_extents(
    sas_url: str, extents: Iterable[Extent], rng: random.Random | None = None, concurrency: int = 1
) -> None:
    """Apply `extents` through a disk's Write SAS, as a VM's writes and TRIMs would.

    `concurrency` writers take the pieces in order from one iterator, so random bytes are drawn in
    the same order on every run; with one writer the requests go strictly in order (a later extent
    wins where two overlap, as on a disk).
    """
    todo = pieces(extents)
    async with BlobClient.from_blob_url(sas_url, **transport_kwargs()) as disk:

        async def writer() -> None:
            for piece in todo:
                if piece.clear:
                    await disk.clear_page(offset=piece.offset, length=piece.length)
                else:
                    await disk.upload_page(_payload(piece, rng), offset=piece.offset, length=piece.length)

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(writer())


def _payload(piece: Extent, rng: random.Random | None) -> bytes:
    if piece.data is not None:
        return piece.data
    if rng is None:
        raise ValueError(f"the write at {piece.offset} has no data and no rng was given to draw it from")
    return rng.randbytes(piece.length)


async def compare_copy(
    source_sas: str, copy_url: str, restore_point: str | None = None, *, concurrency: int = VERIFY_CONCURRENCY
) -> Comparison:
    """Read a source snapshot back through its Read SAS and compare it byte-for-byte with its copy
    (replicator.engine.verify.compare_blobs): a target blob or one of its restore points, read with the
    environment's credential, or a disk read through its own Read SAS (a URL carrying `sig=`).
    A restore point of a source over 8 TiB is compared over its stripes' snapshots (its metadata's
    `stripe_snapshots`, each at `<copy_url>.stripe<k>`)."""
    credential = None if "sig=" in copy_url else async_credential()
    try:
        async with (
            BlobClient.from_blob_url(source_sas, **transport_kwargs()) as source,
            BlobClient.from_blob_url(
                copy_url, credential=credential, snapshot=restore_point, **transport_kwargs()
            ) as copy,
        ):
            times = ""
            if restore_point is not None:
                times = ((await copy.get_blob_properties()).metadata or {}).get("stripe_snapshots", "")
            if not times:
                return await compare_blobs(source, copy, concurrency=concurrency)
            parts = [copy] + [
                BlobClient.from_blob_url(
                    f"{copy_url}.stripe{k}", credential=credential, snapshot=t, **transport_kwargs()
                )
                for k, t in enumerate(times.split(","), 1)
            ]
            try:
                size = (await source.get_blob_properties()).size
                held = [(s.start, s.length, parts[s.index]) for s in stripes.layout(size)]
                return await compare_striped(
                    source,
                    held,
                    lambda r: [(parts[k], op.range) for k, op in stripes.split(Op("copy", r))],
                    concurrency=concurrency,
                )
            finally:
                for part in parts[1:]:
                    await part.close()
    finally:
        if credential is not None:
            await credential.close()


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end from synchronous code: on this thread, or on a private thread with its
    own event loop when this one already runs a loop (an async test building its disks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


class DiskBuilder:
    """Managed disks and their incremental snapshots in one resource group (sync ARM SDK).

    The credential (`replicator.plumbing.credentials.sync_credential`) and the CA come from the process's
    environment, the endpoints and the subscription from `env`.
    """

    def __init__(self, env: Mapping[str, str], group: str, location: str = LOCATION) -> None:
        self.env = env
        self.group = group
        self.location = location
        self.subscription = env["AZURE_SUBSCRIPTION_ID"]
        self.credential = sync_credential()
        self.compute = ComputeManagementClient(
            self.credential,
            self.subscription,
            base_url=env["REPLICATOR_ARM_ENDPOINT"],
            credential_scopes=[arm_scope(env["REPLICATOR_ARM_ENDPOINT"])],
        )

    def create_disk(
        self,
        name: str,
        size: int,
        sku: str,
        tags: dict[str, str] | None = None,
        *,
        auth_mode: str | None = None,
        properties: Mapping[str, Any] | None = None,
        zones: list[str] | None = None,
        **creation_data: Any,
    ) -> str:
        """An empty disk of `size` bytes (whole GiB), with `tags` and `auth_mode` (its
        `dataAccessAuthMode`, e.g. AzureActiveDirectory) when given; `properties` adds to its
        properties (e.g. `osType`, `hyperVGeneration`), `zones` pins it to a zone, and `creation_data`
        adds to its `creationData` (e.g. `logicalSectorSize=4096`). Returns its resource ID."""
        body: dict[str, Any] = {
            "location": self.location,
            "sku": {"name": sku},
            "properties": {
                "diskSizeGB": size // GiB,
                "creationData": {"createOption": "Empty", **creation_data},
                **({"dataAccessAuthMode": auth_mode} if auth_mode else {}),
                **(properties or {}),
            },
        }
        if zones is not None:
            body["zones"] = zones
        if tags is not None:
            body["tags"] = tags
        return self.compute.disks.begin_create_or_update(self.group, name, body).result().id

    def create_vm(
        self,
        name: str,
        os_disk: str,
        data_disks: Mapping[int, str] | None = None,
        *,
        vm_size: str = "Standard_D4s_v5",
        os_type: str = "Linux",
        caching: Mapping[str, str] | None = None,
    ) -> str:
        """A VM that attaches the disk `os_disk` (a name in this group) as its OS disk and
        `data_disks` ({LUN: disk name}) as data disks, as `az vm create --attach-os-disk
        --attach-data-disks` would (host caching per disk name in `caching`, else Azure's defaults).
        No compute runs on the emulator: the disks are written with `write`. Returns the VM's ID."""

        def managed(disk: str) -> dict[str, Any]:
            entry: dict[str, Any] = {"createOption": "Attach", "managedDisk": {"id": self.disk_id(disk)}}
            if caching and disk in caching:
                entry["caching"] = caching[disk]
            return entry

        data = data_disks or {}
        body = {
            "location": self.location,
            "properties": {
                "hardwareProfile": {"vmSize": vm_size},
                "storageProfile": {
                    "osDisk": {**managed(os_disk), "osType": os_type},
                    "dataDisks": [{"lun": lun, **managed(disk)} for lun, disk in sorted(data.items())],
                },
            },
        }
        return self.compute.virtual_machines.begin_create_or_update(self.group, name, body).result().id

    def disk_id(self, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.group}"
            f"/providers/Microsoft.Compute/disks/{name}"
        )

    def resize_disk(self, name: str, size: int) -> None:
        self.compute.disks.begin_update(
            self.group, name, {"properties": {"diskSizeGB": size // GiB}}
        ).result()

    def snapshot(
        self,
        disk_id: str,
        name: str,
        *,
        incremental: bool = True,
        group: str | None = None,
        auth_mode: str | None = None,
    ) -> str:
        """A snapshot of the disk as an operator takes it by hand (no tags), in this group or `group`,
        with `auth_mode` as its `dataAccessAuthMode` when given (ARM documents no inheritance from the
        disk: a snapshot has what its own request says). Returns its resource ID."""
        body = {
            "location": self.location,
            "properties": {
                "incremental": incremental,
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                **({"dataAccessAuthMode": auth_mode} if auth_mode else {}),
            },
        }
        return self.compute.snapshots.begin_create_or_update(group or self.group, name, body).result().id

    @contextlib.contextmanager
    def sas(self, kind: Kind, name: str, access: str, group: str | None = None) -> Iterator[str]:
        """A SAS URL (`access` Read or Write) on a disk or snapshot, revoked on every way out."""
        operations = getattr(self.compute, kind)
        group = group or self.group
        grant = {"access": access, "durationInSeconds": SAS_SECONDS}
        url = operations.begin_grant_access(group, name, grant).result().access_sas
        try:
            yield url
        finally:
            operations.begin_revoke_access(group, name).result()

    def write(
        self, name: str, extents: Iterable[Extent], *, rng: random.Random | None = None, concurrency: int = 1
    ) -> None:
        """Apply `extents` to the disk through a Write SAS (`write_extents`); nothing to write, no grant."""
        extents = list(extents)
        if not extents:
            return
        with self.sas("disks", name, "Write") as url:
            _run(write_extents(url, extents, rng, concurrency))

    def compare_snapshot(self, name: str, copy_url: str, restore_point: str | None = None) -> Comparison:
        """The snapshot compared with its copy (`compare_copy`) through a Read SAS on it."""
        with self.sas("snapshots", name, "Read") as url:
            return _run(compare_copy(url, copy_url, restore_point))

    def close(self) -> None:
        self.compute.close()


def control(env: Mapping[str, str], route: str, body: Any = None, *, method: str | None = None) -> Any:
    """Call the emulator's control route `/_emulator/ROUTE` (clock, faults, link, stats) with its
    bearer token: GET, or PUT `body`, or `method`; returns the JSON answer."""
    request = urllib.request.Request(
        f"{env['REPLICATOR_BLOB_ENDPOINT'].rstrip('/')}/_emulator/{route}",
        method=method or ("GET" if body is None else "PUT"),
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {env['REPLICATOR_ACCESS_TOKEN']}",
            "Content-Type": "application/json",
        },
    )
    context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    with urllib.request.urlopen(request, context=context, timeout=CONTROL_TIMEOUT) as answer:
        return json.loads(answer.read())
