"""Restore of any restore point: one blob by Import (target.restore_disk), a striped one by upload.

`restore(config, request)` is the one entry `replicate restore` and `drill` call: it checks everything
first (target.restore_disk.prepare: nothing is created before every refusal), then creates the disk
(`make`, which `restore --group` calls for each disk it checked).
A striped restore point (core.stripes: a source larger than one page blob) is made by direct upload,
server-side (no byte passes through this process):

1. the disk is created with `createOption: Upload`, `uploadSizeBytes` = the export's size (VHD footer
   included) and the recorded profile (target.restore_disk.upload_creation says what Upload refuses);
2. a Write grant (target.upload_disk) makes it `ActiveUpload`; its blob is checked blank (a fresh
   Upload disk reads as zeros, so only written ranges need copying);
3. every stripe snapshot's valid ranges (listed as `--verify` lists, in the export's offsets) are planned
   into Put Page From URL writes of at most 4 MiB (core.ranges.plan) and run by the engine's pool
   (engine.copier.run_pool: `--concurrency` workers, a bounded queue), each request through the disk
   blob's pacer (engine.pacer) and retried by plumbing.retry on transient failures (the policy and
   backoff every chunk write has, engine.copier); the Write grant is renewed before it expires and
   after the disk refused its SAS (target.upload_disk.DiskSas), so an upload may outlast `--sas-duration`;
4. the grant is revoked (the upload ends, the disk is `Unattached`), and a Read grant reads the VHD
   footer back: it must be the restore point's own footer, byte for byte;
5. on any failure or Ctrl-C the grant is revoked (shielded) and the disk this restore created is
   deleted; nothing else is touched.

How the copy source is authorized: the target URL's SAS (the restore command needs `r` on it), else
the target identity's Storage token as `x-ms-copy-source-authorization` (PageBlobTarget.copy_source).
Neither is ever logged: events name stripes and ranges only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient

from replicator.core import premium, vhd
from replicator.core.errors import ReplicationError
from replicator.core.messages import describe
from replicator.core.ranges import Change, Op, Range, plan
from replicator.core.stripes import to_export
from replicator.core.weighted import WeightedSemaphore
from replicator.engine.copier import CHUNK_BACKOFF_MAX_SECONDS, CHUNK_BACKOFF_SECONDS, run_pool
from replicator.engine.pacer import Pacer
from replicator.engine.verify import VERIFY_WINDOW, valid_ranges
from replicator.observe.jsonlog import event
from replicator.plumbing import retry
from replicator.plumbing.blobio import read_range
from replicator.settings.config import Config
from replicator.source.arm import ArmSource, plain
from replicator.source.grants import shielded
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_disk import PreparedRestore, RestoreRequest, RestoreResult, create, prepare
from replicator.target.striped_point import StripedPoint
from replicator.target.upload_disk import DiskRef, DiskSasRefused, Grant, UploadDisk, has_data

log = logging.getLogger(__name__)


async def restore(
    config: Config, request: RestoreRequest, on_message: Callable[[str], None] = lambda _: None
) -> RestoreResult:
    """Create the managed disk `request` asks for from a restore point, of one blob or striped; returns
    it once it exists. Refuses (UserError, nothing created) what target.restore_disk.prepare refuses."""
    return await make(config, await prepare(config, request), on_message)


async def make(
    config: Config, prepared: PreparedRestore, on_message: Callable[[str], None] = lambda _: None
) -> RestoreResult:
    """Create the disk `prepared` checked: by Import (target.restore_disk.create), or by upload for a
    striped restore point; `restore`'s, and each disk's of `restore --group` (target.restore_group)."""
    if not prepared.point.stripe_snapshots:
        return await create(config, prepared, on_message)
    return await restore_striped(config, prepared, on_message)


async def restore_striped(
    config: Config, prepared: PreparedRestore, on_message: Callable[[str], None] = lambda _: None
) -> RestoreResult:
    """Steps 1-5 of the module docstring for a prepared striped restore point."""
    request, point = prepared.request, prepared.point
    source = await ArmSource.open(config)
    async with source, PageBlobTarget(config, command="restore") as target:
        disk = UploadDisk(source, prepared.subscription, request.resource_group, request.disk_name)
        stripes = StripedPoint(target, point)
        on_message(
            f"creating {prepared.disk_id} ({prepared.profile.sku}) by upload from restore point {point.id} "
            f"({point.snapshot_name}, {len(stripes.stripes)} stripes)"
        )
        try:  # from the create's request on, the disk is this restore's: a failure deletes it
            created = await disk.create(prepared.body)
            ref = DiskRef(created.id or prepared.disk_id, request.disk_name, created.data_access_auth_mode)
            async with disk.granted("Write", ref) as writer:
                if await has_data(writer.client):
                    raise ReplicationError(
                        f"the new disk {prepared.disk_id} is not blank; nothing was copied."
                    )
                copied = await _copy(config, stripes, writer)
            on_message(f"{request.disk_name}: {copied} bytes copied; upload ended, checking the disk")
            done = await disk.get()
            if plain(done.disk_state) != "Unattached":
                raise ReplicationError(
                    f"the disk {prepared.disk_id} is {plain(done.disk_state)} after its upload ended."
                )
            async with disk.granted("Read", ref) as reader:
                await _check_footer(point.size_bytes, reader.client)
        except BaseException:
            await shielded(disk.delete())  # the one disk this restore created; a failure is logged
            raise
    return RestoreResult(
        ref.id,
        point,
        prepared.profile,
        done.disk_size_bytes or point.size_bytes - vhd.FOOTER_SIZE,
        done.data_access_auth_mode,
        request.overrides.disk_encryption_set_id,
    )


async def _copy(config: Config, stripes: StripedPoint, writer: Grant) -> int:
    """Copy every valid range of every stripe into the disk, server-side; returns the bytes copied."""
    # the disk is one blob of no premium tier: --concurrency, else the standard blob's ceiling
    ceiling = premium.ceiling_for(premium.UNKNOWN, stripes.point.size_bytes, config.concurrency)
    pacer = Pacer(ceiling, stripes.point.id)
    in_flight = WeightedSemaphore(config.max_in_flight_bytes)
    copied = 0

    async def work(op: Op) -> None:
        nonlocal copied
        async with in_flight.hold(op.range.length):
            await _retried(config, pacer, op, stripes, writer)
        copied += op.range.length

    await run_pool(_planned(stripes), ceiling, 2 * ceiling, work)
    return copied


async def _planned(stripes: StripedPoint) -> AsyncIterator[Op]:
    """Every stripe's valid ranges (engine.verify.valid_ranges: one listing window of VERIFY_WINDOW at a
    time, every NextMarker followed), in the export's offsets, as writes of at most 4 MiB cut at absolute
    multiples (core.ranges.plan), so never across a stripe boundary (a multiple of 4 MiB)."""
    for stripe, _ in stripes.stripes:
        client = stripes.client(stripe.index)
        for start in range(0, stripe.length, VERIFY_WINDOW):
            try:
                window = await valid_ranges(client, start, min(start + VERIFY_WINDOW, stripe.length))
            except HttpResponseError as exc:
                raise ReplicationError(
                    f"listing stripe {stripe.index} of restore point {stripes.point.id} failed: "
                    f"{describe(exc)}"
                ) from None
            shifted = (Change(to_export(stripe, r), False) for r in window)
            for op in plan(shifted):
                yield op


async def _retried(config: Config, pacer: Pacer, op: Op, stripes: StripedPoint, writer: Grant) -> None:
    """Copy `op` into the disk under the chunk retry policy (engine.copier's: plumbing.retry, transient
    failures, Retry-After honoured, `--max-attempts`), every attempt holding one of the pacer's slots;
    a refused disk SAS is granted again before the next attempt (outside the slot and the request's
    timeout: a grant is an ARM call, not a request at the disk)."""

    def report(attempt: int, delay: float, exc: BaseException) -> None:
        event(
            "retry",
            logging.DEBUG,
            message=f"retrying copy {op.range} (attempt {attempt}) in {delay:.1f} s after {describe(exc)}",
            what=f"copy {op.range}",
            attempt=attempt,
            delay_seconds=round(delay, 3),
            error=describe(exc),
        )

    first, cap = CHUNK_BACKOFF_SECONDS, CHUNK_BACKOFF_MAX_SECONDS
    policy = retry.retrying(
        first=first, cap=cap, attempts=config.max_attempts, retry_on=_retried_on, on_retry=report
    )
    try:
        async for attempt in policy:
            with attempt:
                url = await writer.sas.url()
                source_url, source_range, authorization = await stripes.copy_source(op)
                async with pacer.slot(), asyncio.timeout(config.request_timeout_seconds):
                    await writer.copy_pages(url, op.range, source_url, source_range, authorization)
    except DiskSasRefused as exc:
        raise ReplicationError(
            f"{exc}, at each of {config.max_attempts} attempts to copy {op.range}, with a new grant "
            'each time (docs/runbook.md, "Restoring a striped restore point")'
        ) from None


def _retried_on(exc: BaseException) -> bool:
    """What a write is tried again after: a transient failure, or the disk's SAS refused (re-granted)."""
    return isinstance(exc, DiskSasRefused) or retry.is_transient(exc)


async def _check_footer(size: int, reader: BlobClient) -> None:
    """The disk's last 512 bytes are an intact VHD footer of its size, read back through a Read grant
    (whether Azure rewrites an uploaded footer is not documented, so its fields are checked, not its
    bytes against the restore point's)."""
    written = await read_range(reader, Range(size - vhd.FOOTER_SIZE, size))
    try:
        vhd.check_footer(written, size)
    except vhd.FooterError as exc:
        raise ReplicationError(f"the restored disk's VHD footer is damaged: {exc}") from None
