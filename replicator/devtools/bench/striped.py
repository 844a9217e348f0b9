"""The striped-restore benchmark: a 16 TiB restore point laid out in stripes in the target account
(as striping writes one: core.stripes), restored by `replicate restore` (a disk by createOption Upload,
every stripe's valid ranges copied server-side), timed under the link model, and the disk then compared
byte for byte with the stripes' snapshots (untimed).

The restore point is built here by hand, with the link off: the blobs `<base>`, `<base>.stripe1`,
`<base>.stripe2`, the scenario's extents written where core.stripes.split puts them, the VHD footer in
the last 512 bytes, a blob snapshot of each, and the base's snapshot carrying the RestorePointMeta.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime

from azure.storage.blob.aio import BlobClient, ContainerClient

from replicator.core.ranges import Op, Range
from replicator.core.stripes import STRIPE_BYTES, layout, split, stripe_blob_name
from replicator.devtools.bench.measure import run_children
from replicator.devtools.bench.report import Row
from replicator.devtools.bench.scenarios import DiskSpec, Scenario
from replicator.devtools.bench.world import GROUP, Emulator, World
from replicator.devtools.disk_builder import LOCATION, VM_WRITES, merged, pieces
from replicator.emulator.arm import vhd
from replicator.engine.verify import valid_ranges
from replicator.plumbing.blobio import read_range
from replicator.plumbing.credentials import async_credential, transport_kwargs
from replicator.target.state import RestorePointMeta

BLOB = "striped-restore.vhd"
COMPARE_PIECE = 4 * 1024**2


async def make_point(container_url: str, spec: DiskSpec, rng: random.Random) -> None:
    """The striped restore point of `spec` (its `change` is the data) under `container_url`."""
    export = spec.size + vhd.FOOTER_SIZE
    footer = vhd.build_footer(
        spec.size, original_size=spec.size, created=datetime.now(UTC), unique_id=bytes(16)
    )
    credential = async_credential()
    async with (
        credential,
        ContainerClient.from_container_url(container_url, credential, **transport_kwargs()) as c,
    ):
        await c.create_container()
        blobs = [c.get_blob_client(stripe_blob_name(BLOB, s.index)) for s in layout(export)]
        for blob, stripe in zip(blobs, layout(export), strict=True):
            await blob.create_page_blob(stripe.length)
        todo = iter([*pieces(spec.change), None])

        async def writer() -> None:
            for piece in todo:
                if piece is None:
                    return
                data = rng.randbytes(piece.length)
                for index, local in split(Op("copy", Range(piece.offset, piece.offset + piece.length))):
                    at = index * STRIPE_BYTES + local.range.start - piece.offset
                    part = data[at : at + local.range.length]
                    await blobs[index].upload_page(part, offset=local.range.start, length=local.range.length)

        async with asyncio.TaskGroup() as group:
            for _ in range(VM_WRITES):
                group.create_task(writer())
        [(last, tail)] = split(Op("copy", Range(spec.size, export)))
        await blobs[last].upload_page(footer, offset=tail.range.start, length=len(footer))
        later = [(await b.create_snapshot())["snapshot"] for b in blobs[1:]]
        meta = RestorePointMeta(
            snapshot_name="striped-restore",
            snapshot_time=datetime.now(UTC).isoformat(),
            size_bytes=export,
            mode="full",
            stripe_snapshots=tuple(later),
        )
        await blobs[0].create_snapshot(metadata=meta.to_metadata())


def measure(
    child_env: dict[str, str],
    emulator: Emulator,
    world: World,
    scenario: Scenario,
    url: str,
    latency: float,
    bound: float,
) -> Row:
    """One timed restore of the point at `url` (a fresh disk per latency), verified, then deleted;
    `bound` is the disk blob's (harness.bound_seconds)."""
    spec = scenario.disks[0]
    name = f"striped-{latency:g}".replace(".", "-")
    command = [
        sys.executable, "-m", "replicator.cli.main", "restore", "--target", url, "--point", "latest",
        "--resource-group", GROUP, "--disk-name", name, "--location", LOCATION, "--json",
    ]  # fmt: skip
    emulator.reset_stats()
    with emulator.link(latency_ms=latency, blob_limits=True):
        measured = run_children([(command, child_env)])
    stats = emulator.stats()
    with world.sas("disks", name, "Read") as disk_url:
        equal = asyncio.run(compare(url, measured.outputs[0]["restore_point"]["id"], disk_url))
    world.compute.disks.begin_delete(GROUP, name).result()
    written = sum(b["bytes_written"] for blob, b in stats["blobs"].items() if blob.startswith("md-"))
    what = (scenario.name, latency, "server")
    verified = "equal" if equal else "DIFFERENT"
    return Row.of(
        what, measured.wall_seconds, spec.changed_bytes, written, measured, stats, bound, verified=verified
    )


async def compare(url: str, point: str, disk_url: str) -> bool:
    """The disk equals the restore point's stripes: per stripe, the union of both sides' valid ranges
    read and compared (the rest reads as zeros on both sides)."""
    credential = async_credential()
    async with credential, BlobClient.from_blob_url(disk_url, **transport_kwargs()) as disk:
        base = BlobClient.from_blob_url(url, credential, snapshot=point, **transport_kwargs())
        async with base:
            meta = RestorePointMeta.from_metadata((await base.get_blob_properties()).metadata)
        snapshots = (point, *meta.stripe_snapshots)
        container = url.rsplit("/", 1)[0]
        if (await disk.get_blob_properties()).size != meta.size_bytes:
            return False
        for stripe in layout(meta.size_bytes):
            stripe_url = f"{container}/{stripe_blob_name(BLOB, stripe.index)}"
            async with BlobClient.from_blob_url(
                stripe_url, credential, snapshot=snapshots[stripe.index], **transport_kwargs()
            ) as source:
                if not await _same(source, disk, stripe.start, stripe.length):
                    return False
    return True


async def _same(source: BlobClient, disk: BlobClient, start: int, length: int) -> bool:
    spans = [(r.start, r.end) for r in await valid_ranges(source, 0, length)]
    spans += [(r.start - start, r.end - start) for r in await valid_ranges(disk, start, start + length)]
    for low, high in merged(spans):
        for pos in range(low, high, COMPARE_PIECE):
            r = Range(pos, min(high, pos + COMPARE_PIECE))
            theirs = await read_range(disk, Range(start + r.start, start + r.end))
            if await read_range(source, r) != theirs:
                return False
    return True


def target_url(env: dict[str, str], account: str) -> tuple[str, str]:
    """The container URL the point is built in, and its base blob's URL (the restore's --target)."""
    container = f"{env['REPLICATOR_BLOB_ENDPOINT']}/{account}/striped"
    return container, f"{container}/{BLOB}"
