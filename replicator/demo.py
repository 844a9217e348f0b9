"""`replicate demo`: the whole product on the embedded emulator, in about a minute.

It starts the emulator (a subprocess, stopped on every way out), makes a 64 GiB disk holding a few
hundred MiB in scattered extents, snapshots it, replicates (full copy), changes and clears scattered
pages, snapshots again, replicates (diff), verifies both restore points byte-for-byte against their
source snapshots, and prints what moved. The replication runs through the real CLI in a child
process, exactly as an operator would run it; the demo only plays the part of the VM and the
operator around it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, Disk, DiskSku, GrantAccessData, Snapshot
from azure.storage.blob.aio import BlobClient

from replicator.credentials import arm_scope, async_credential, sync_credential, transport_kwargs
from replicator.emulator.process import EmulatorProcess
from replicator.usage import UsageParser, first_paragraph
from replicator.verify import compare_blobs

GiB = 1024**3
MiB = 1024**2
KiB = 1024
WRITE_CONCURRENCY = 16  # the demo's "VM" writes with 16 requests in flight
LOCATION = "westeurope"


@dataclass(frozen=True)
class Extent:
    """One write (or clear, when `clear`) the demo's VM makes to the disk."""

    offset: int
    length: int
    clear: bool = False


def initial_layout(size: int, rng: random.Random) -> list[Extent]:
    """A freshly installed disk: boot area, two large file extents, and thousands of small files."""
    extents = [Extent(0, 1 * MiB), Extent(1 * GiB, 96 * MiB), Extent(10 * GiB, 64 * MiB)]
    extents += _scattered(size, rng, count=2000, low=4 * KiB, high=128 * KiB)
    return extents


def churn(size: int, rng: random.Random) -> list[Extent]:
    """A day of activity: scattered rewrites (some over existing data) and trimmed (cleared) ranges."""
    extents = _scattered(size, rng, count=3000, low=4 * KiB, high=64 * KiB)
    extents += [Extent(1 * GiB + 8 * MiB, 4 * MiB, clear=True), Extent(10 * GiB, 1 * MiB, clear=True)]
    extents += [
        Extent(
            _aligned(rng.randrange(0, size - 4 * MiB)), rng.choice((64 * KiB, 512 * KiB, 2 * MiB)), clear=True
        )
        for _ in range(40)
    ]
    return extents


def _aligned(offset: int) -> int:
    return offset - offset % (4 * KiB)


def _scattered(size: int, rng: random.Random, *, count: int, low: int, high: int) -> list[Extent]:
    out = []
    for _ in range(count):
        length = rng.randrange(low, high + 1, 4 * KiB)
        out.append(Extent(_aligned(rng.randrange(0, size - length)), length))
    return out


def footprint(extents: list[Extent]) -> int:
    """Bytes of the disk these extents touch (overlaps counted once): what a diff must report as
    changed or cleared."""
    total, end = 0, 0
    for e in sorted(extents, key=lambda e: e.offset):
        stop = e.offset + e.length
        if stop > end:
            total += stop - max(e.offset, end)
            end = stop
    return total


def _chunks(extents: list[Extent]) -> Iterator[Extent]:
    """Writes of at most 4 MiB, the Put Page limit."""
    for e in extents:
        for pos in range(e.offset, e.offset + e.length, 4 * MiB):
            yield Extent(pos, min(4 * MiB, e.offset + e.length - pos), e.clear)


async def write_extents(sas_url: str, extents: list[Extent], rng: random.Random) -> None:
    """Apply `extents` through the disk's Write SAS, as a VM's writes and TRIMs would."""
    semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)
    async with BlobClient.from_blob_url(sas_url, **transport_kwargs()) as disk:

        async def one(e: Extent) -> None:
            async with semaphore:
                if e.clear:
                    await disk.clear_page(offset=e.offset, length=e.length)
                else:
                    await disk.upload_page(rng.randbytes(e.length), offset=e.offset, length=e.length)

        async with asyncio.TaskGroup() as group:
            for e in _chunks(extents):
                group.create_task(one(e))


class DemoWorld:
    """The source side of the demo: one resource group, one disk, its snapshots."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.subscription = env["AZURE_SUBSCRIPTION_ID"]
        self.compute = ComputeManagementClient(
            sync_credential(),
            self.subscription,
            base_url=env["REPLICATOR_ARM_ENDPOINT"],
            credential_scopes=[arm_scope(env["REPLICATOR_ARM_ENDPOINT"])],
        )
        self.group = "demo-rg"
        self.disk = f"demo-disk-{uuid.uuid4().hex[:6]}"

    def create_disk(self, size: int) -> str:
        body = Disk(
            location=LOCATION,
            sku=DiskSku(name="Premium_LRS"),
            creation_data=CreationData(create_option="Empty"),
            disk_size_gb=size // GiB,
        )
        return self.compute.disks.begin_create_or_update(self.group, self.disk, body).result().id

    def write(self, extents: list[Extent], rng: random.Random) -> None:
        access = GrantAccessData(access="Write", duration_in_seconds=3600)
        sas = self.compute.disks.begin_grant_access(self.group, self.disk, access).result().access_sas
        try:
            asyncio.run(write_extents(sas, extents, rng))
        finally:
            self.compute.disks.begin_revoke_access(self.group, self.disk).result()

    def snapshot(self, disk_id: str, name: str) -> str:
        body = Snapshot(
            location=LOCATION,
            incremental=True,
            creation_data=CreationData(create_option="Copy", source_resource_id=disk_id),
        )
        return self.compute.snapshots.begin_create_or_update(self.group, name, body).result().id

    def verify(self, snapshot_name: str, target_url: str, restore_point: str) -> tuple[bool, int]:
        """Compare the restore point with its source snapshot byte-for-byte; (equal, bytes compared)."""
        access = GrantAccessData(access="Read", duration_in_seconds=3600)
        sas = self.compute.snapshots.begin_grant_access(self.group, snapshot_name, access).result().access_sas
        try:
            return asyncio.run(_compare(sas, target_url, restore_point))
        finally:
            self.compute.snapshots.begin_revoke_access(self.group, snapshot_name).result()

    def verify_disk(self, snapshot_name: str, disk_name: str) -> tuple[bool, int]:
        """Compare a restored disk with the source snapshot byte-for-byte (Read SAS on both)."""
        access = GrantAccessData(access="Read", duration_in_seconds=3600)
        sas = self.compute.snapshots.begin_grant_access(self.group, snapshot_name, access).result().access_sas
        try:
            disk_sas = (
                self.compute.disks.begin_grant_access(self.group, disk_name, access).result().access_sas
            )
            try:
                return asyncio.run(_compare_sas(sas, disk_sas))
            finally:
                self.compute.disks.begin_revoke_access(self.group, disk_name).result()
        finally:
            self.compute.snapshots.begin_revoke_access(self.group, snapshot_name).result()


async def _compare_sas(source_sas: str, copy_sas: str) -> tuple[bool, int]:
    async with (
        BlobClient.from_blob_url(source_sas, **transport_kwargs()) as source,
        BlobClient.from_blob_url(copy_sas, **transport_kwargs()) as copy,
    ):
        result = await compare_blobs(source, copy)
        return result.equal, result.bytes_compared


async def _compare(source_sas: str, target_url: str, restore_point: str) -> tuple[bool, int]:
    credential = async_credential()
    try:
        async with (
            BlobClient.from_blob_url(source_sas, **transport_kwargs()) as source,
            BlobClient.from_blob_url(
                target_url, credential=credential, snapshot=restore_point, **transport_kwargs()
            ) as copy,
        ):
            result = await compare_blobs(source, copy)
            return result.equal, result.bytes_compared
    finally:
        await credential.close()


class _Signals:
    """SIGINT/SIGTERM while the demo runs: a running `replicate` child gets the signal and cleans up
    (grants revoked, lease released) while the emulator, in its own session, still answers it."""

    child: subprocess.Popen[str] | None = None
    received: int | None = None

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.received = signum
        if cls.child is not None and cls.child.poll() is None:
            cls.child.send_signal(signum)  # its exit (128 + signum) then ends the demo
        else:
            raise KeyboardInterrupt


def replicate(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `replicate ARGS --json` as an operator would; returns its JSON document."""
    cmd = [sys.executable, "-m", "replicator.cli", *args, "--json"]
    # Its own session: a terminal's Ctrl-C reaches the demo only, which forwards it (_Signals).
    with subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as child:  # fmt: skip
        _Signals.child = child
        try:
            out, err = child.communicate()
        finally:
            _Signals.child = None
    if _Signals.received is not None:
        raise KeyboardInterrupt
    if child.returncode != 0:
        raise SystemExit(f"demo: replicate exited {child.returncode}: {err.strip()[-2000:]}")
    return json.loads(out)


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:,.0f} MiB/s" if seconds > 0 else "-"


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["run", "mode", "pages touched", "changed", "merged gaps", "copied", "cleared", "requests",
               "seconds", "throughput", "verified"]  # fmt: skip
    table = [headers] + [
        [
            r["run"],
            r["mode"],
            f"{r['written'] / MiB:,.1f} MiB",
            f"{r['changed'] / MiB:,.1f} MiB",
            f"{r['gaps'] / MiB:,.1f} MiB",
            f"{r['copied'] / MiB:,.1f} MiB",
            f"{r['cleared'] / MiB:,.1f} MiB",
            str(r["requests"]),
            f"{r['seconds']:.1f}",
            _rate(r["copied"], r["seconds"]),
            r["verified"],
        ]
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        cells = zip(row, widths, strict=True)
        print("  ".join(_align(i, str(c), w) for i, (c, w) in enumerate(cells)).rstrip())


_TEXT_COLUMNS = (0, 1, 10)
"""Columns of the demo table holding words (run, mode, verified): left-aligned; numbers right."""


def _align(column: int, cell: str, width: int) -> str:
    return cell.ljust(width) if column in _TEXT_COLUMNS else cell.rjust(width)


def run(data_dir: Path, disk_gib: int, seed: int) -> int:
    rng = random.Random(seed)
    size = disk_gib * GiB
    emulator = EmulatorProcess(data_dir, own_session=True)
    env = emulator.start()
    # The demo plays the operator: its own SDK clients and the replicate child use the emulator's
    # endpoints, token and CA exactly as an operator's shell would.
    os.environ.update(env)
    try:
        world = DemoWorld(env)
        print(f"demo: emulator at {env['REPLICATOR_ARM_ENDPOINT']} (data in {data_dir})", file=sys.stderr)
        disk_id = world.create_disk(size)
        target = f"{env['REPLICATOR_BLOB_ENDPOINT']}/drsite/replicas/{world.disk}.vhd"
        rows = []
        for run_name, extents in (("1 first", initial_layout(size, rng)), ("2 next", churn(size, rng))):
            t0 = time.monotonic()
            world.write(extents, rng)
            snap = f"{world.disk}-snap{run_name[0]}"
            world.snapshot(disk_id, snap)
            print(f"demo: wrote {len(extents)} extents in {time.monotonic() - t0:.1f} s; "
                  f"snapshot {snap}; replicating", file=sys.stderr)  # fmt: skip
            doc = replicate(env, "--source", disk_id, "--target", target)
            (result,) = doc["snapshots"]
            equal, compared = world.verify(snap, target, result["restore_point"])
            rows.append({
                "run": run_name, "mode": result["mode"], "written": footprint(extents),
                "changed": result["changed_bytes"], "gaps": result["merged_gap_bytes"],
                "copied": result["copied_bytes"],
                "cleared": result["cleared_bytes"], "requests": result["requests"],
                "seconds": result["seconds"],
                "verified": f"{'equal' if equal else 'DIFFERENT'} ({compared / MiB:,.0f} MiB)",
            })  # fmt: skip
            if not equal:
                _print_table(rows)
                print(f"demo: restore point {result['restore_point']} differs from {snap}", file=sys.stderr)
                return 1
        print(f"\n{disk_gib} GiB disk {world.disk} replicated to {target.split('/', 3)[3]}:\n")
        _print_table(rows)
        # Disaster recovery: the last restore point becomes a new disk, proven equal to its source.
        restored = f"{world.disk}-restored"
        doc = replicate(env, "restore", "--target", target, "--point", "latest", "--resource-group",
                        world.group, "--disk-name", restored, "--location", LOCATION)  # fmt: skip
        equal, compared = world.verify_disk(snap, restored)
        verdict = "equal to" if equal else "DIFFERENT from"
        print(f"\nrestored restore point {doc['restore_point']['id']} to disk {restored}: "
              f"{verdict} {snap} ({compared / MiB:,.0f} MiB compared byte-for-byte)")  # fmt: skip
        return 0 if equal else 1
    finally:
        emulator.stop()


def main(argv: list[str]) -> int:
    parser = UsageParser(prog="replicate demo", description=first_paragraph(__doc__))
    parser.add_argument(
        "--data-dir", type=Path, help="emulator state (default: a temporary folder, removed after)"
    )
    parser.add_argument("--disk-gib", type=int, default=64, help="size of the demo disk (default 64)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data pattern (default 7)")
    args = parser.parse_args(argv)
    if args.disk_gib < 16 or args.disk_gib > 4096:
        parser.error(f"--disk-gib must be between 16 and 4096; got {args.disk_gib}")
    previous = {sig: signal.signal(sig, _Signals.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.data_dir is not None:
            return run(args.data_dir, args.disk_gib, args.seed)
        with tempfile.TemporaryDirectory(prefix="replicator-demo-") as tmp:
            return run(Path(tmp), args.disk_gib, args.seed)
    except KeyboardInterrupt:  # the emulator was stopped on the way out (run's finally)
        received = _Signals.received or signal.SIGINT
        print(f"demo: interrupted ({signal.Signals(received).name}); emulator stopped", file=sys.stderr)
        return 128 + received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
