"""Restore drills: prove that a replica gives back its disk, and measure how long that takes (the RTO).

`replicate drill --target T --resource-group SCRATCH --location L [--restore-point latest|ID|NAME]`:

1. restores the restore point into the scratch resource group exactly as `restore` would (the
   source's recorded properties and the same overrides: target.restore_disk; a striped restore point,
   of a source over 8 TiB, by upload: engine.striped_restore), as a disk named
   `drill-<blob>-<8 hex digits>` tagged `replicator-owner: replicator` and `replicator-drill: <the
   8 hex digits>`, so it is obviously the drill's and no one else's;
2. grants Read on the new disk and reads it back, comparing it with the restore point (the target's
   blob snapshot) byte for byte: engine.verify.compare_blobs, the one comparison `--verify` uses
   (sizes, then the union of both sides' valid page ranges, window by window; memory is one window's
   range lists and VERIFY_CONCURRENCY chunk pairs, whatever the disk's size, so no digest is needed
   however large it is). A striped restore point's bytes are its stripe snapshots
   (target.striped_point): engine.verify.compare_striped compares the disk with each stripe's part,
   a read spanning a stripe boundary read from both. The last 512 bytes of a 512-byte-sector disk
   are its VHD footer, which Azure writes for an imported disk (its own uniqueId and time): not
   compared (an uploaded disk's footer is checked by the restore itself: engine.striped_restore);
3. revokes the grant and deletes the disk, on every path out (a failure, a mismatch, Ctrl-C or
   SIGTERM: shielded from cancellation and bounded in time), and only a disk carrying this drill's
   tag: a disk of that name without it is left alone and reported;
4. records the outcome on the target (the base blob's metadata, under its lease: target.state's
   `last_drill_*`), so `status` shows the last drill with nothing else to read.

`drill --group ID|latest` (`drill_group`) drills every disk of a VM's group at once (the group
chosen as `restore --group` chooses it: target.restore_group), each disk as above from one shared
start, so the group's RTO is its slowest disk's; each disk's result is recorded on its own target.

The RTO is measured from the start (before the restore point is even listed) to the disk being
ready (created and hydrated) and to the disk verified. Outcomes: `passed` (exit 0), `mismatch` (the
disk differs from the restore point: EXIT_MISMATCH), or the error of a drill that could not run
(its exit code: 1 failed, 2 bad input, 3 locked or limited). A scratch disk that could not be
deleted fails a drill that passed (exit 1), naming the disk.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.mgmt.compute.models import GrantAccessData
from azure.storage.blob.aio import BlobClient

from replicator.core.disk_profile import Overrides
from replicator.core.drill_record import DrillOutcome, DrillRecord
from replicator.core.errors import LockedError, ReplicationError, ReplicatorError
from replicator.core.messages import describe
from replicator.core.output import iso_z
from replicator.engine.striped_restore import restore
from replicator.engine.verify import Comparison, compare_blobs, compare_striped
from replicator.plumbing.credentials import client_kwargs
from replicator.plumbing.urlcheck import parse_target_prefix
from replicator.settings.config import Config
from replicator.source.arm import OWNER_TAG, OWNER_VALUE, ArmSource
from replicator.source.grants import shielded
from replicator.target.groups import GroupStore
from replicator.target.manifest import DiskEntry, GroupManifest
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_disk import RestoreRequest, RestoreResult, subscription_of
from replicator.target.restore_group import choose, vm_order
from replicator.target.restore_points import PointInfo, list_points, select
from replicator.target.striped_point import StripedPoint
from replicator.target.upload_disk import DiskRef

log = logging.getLogger(__name__)

DRILL_TAG = "replicator-drill"
"""Beside OWNER_TAG on a drill's scratch disk: the drill's own ID, the only disk it ever deletes."""
CLEANUP_TIMEOUT_SECONDS = 600.0
"""Bound on revoking the grant and deleting the scratch disk (each ARM operation)."""


@dataclass(frozen=True)
class DrillRequest:
    """Which restore point to drill, and where; the overrides are `restore`'s."""

    point: str
    subscription_id: str | None
    resource_group: str
    location: str
    overrides: Overrides = field(default_factory=Overrides)
    storage_account_id: str | None = None


@dataclass
class DrillResult:
    """What a drill did and found; `error` is the sentence of a drill that could not run to the end."""

    target: str
    started: datetime
    point: PointInfo | None = None
    disk_id: str | None = None
    ready_seconds: float | None = None
    verified_seconds: float | None = None
    comparison: Comparison | None = None
    disk_left: str | None = None  # a scratch disk that could not be deleted (its ID)
    recorded: bool = False
    error: str | None = None

    @property
    def outcome(self) -> DrillOutcome:
        if self.comparison is None:
            return "failed"
        return "passed" if self.comparison.equal else "mismatch"

    def record(self) -> DrillRecord | None:
        if self.point is None:
            return None
        return DrillRecord(
            iso_z(self.started),
            self.point.id,
            self.point.snapshot_name,
            self.outcome,
            self.ready_seconds,
            self.verified_seconds,
        )

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "target": self.target,
            "result": self.outcome,
            "restore_point": None if self.point is None else self.point.to_json(),
            "disk_id": self.disk_id,
            "rto_ready_seconds": self.ready_seconds,
            "rto_verified_seconds": self.verified_seconds,
            "comparison": None
            if c is None
            else {
                "expected_size": c.expected_size,
                "actual_size": c.actual_size,
                "bytes_compared": c.bytes_compared,
                "first_mismatch": c.first_mismatch,
            },
            "scratch_disk_deleted": self.disk_id is not None and self.disk_left is None,
            "recorded": self.recorded,
        }


def scratch_name(blob: str, drill_id: str) -> str:
    """`drill-<blob>-<id>`: a valid disk name (1-80 of letters, digits, `_.-`) that says whose it is."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", blob.rsplit("/", 1)[-1].removesuffix(".vhd")).strip("-.")
    return f"drill-{stem[:60]}-{drill_id}".replace("--", "-")


class _Scratch:
    """The scratch disk's ARM side: grant, revoke, delete (only with this drill's tag)."""

    def __init__(self, source: ArmSource, subscription: str, resource_group: str, name: str, drill_id: str):
        self.disks = source.compute(subscription).disks
        self.source, self.resource_group, self.name, self.drill_id = source, resource_group, name, drill_id
        self.granted = False

    async def grant(self) -> str:
        self.granted = True  # from the request on: a grant may exist, so the cleanup revokes
        request = GrantAccessData(access="Read", duration_in_seconds=self.source.config.sas_duration_seconds)
        with self.source.arm_errors(f"grant read access to disk {self.name}"):
            access = await (
                await self.disks.begin_grant_access(self.resource_group, self.name, request)
            ).result()
        if not access.access_sas:
            raise ReplicationError(f"ARM granted access to disk {self.name} but returned no SAS URL.")
        return access.access_sas

    async def remove(self) -> str | None:
        """Revoke and delete the disk if it is this drill's; returns the ID of a disk left behind."""
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_SECONDS):
                disk = await self.disks.get(self.resource_group, self.name)
        except ResourceNotFoundError:
            return None  # never created
        except (AzureError, TimeoutError) as err:
            log.warning("could not read the drill's disk %s to delete it (%s)", self.name, describe(err))
            return self.name
        if (disk.tags or {}).get(DRILL_TAG) != self.drill_id:
            log.warning(
                "the disk %s is not this drill's (no %s=%s tag): left alone",
                disk.id,
                DRILL_TAG,
                self.drill_id,
            )
            return None
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_SECONDS):
                if self.granted or disk.disk_state == "ActiveSAS":
                    await (await self.disks.begin_revoke_access(self.resource_group, self.name)).result()
                await (await self.disks.begin_delete(self.resource_group, self.name)).result()
        except (AzureError, TimeoutError) as err:
            log.warning(
                "could not delete the drill's disk %s (%s); delete it by hand", disk.id, describe(err)
            )
            return disk.id
        log.info("deleted the drill's disk %s", disk.id)
        return None


async def drill(
    config: Config,
    request: DrillRequest,
    on_message: Callable[[str], None] = lambda _: None,
    start: tuple[datetime, float] | None = None,
) -> DrillResult:
    """Run one drill (see the module docstring); a drill that could not run raises its error after
    the scratch disk is gone and the failure is recorded. `start`: the wall and monotonic time the
    RTO counts from (a group's drills share one)."""
    started, clock = start or (datetime.now(UTC), time.monotonic())
    drill_id = uuid.uuid4().hex[:8]
    async with PageBlobTarget(config, command="drill") as target:
        result = DrillResult(target.url.display, started)
        listing = await list_points(target)
        result.point = point = select(listing.points, request.point)
        subscription = subscription_of(request.subscription_id, listing)
        name = scratch_name(target.url.blob, drill_id)
        tags = {OWNER_TAG: OWNER_VALUE, DRILL_TAG: drill_id}
        restore_request = RestoreRequest(
            point.id,
            subscription,
            request.resource_group,
            name,
            request.location,
            replace(request.overrides, tags=request.overrides.tags | tags),
            request.storage_account_id,
        )
        source = await ArmSource.open(config)
        async with source:
            scratch = _Scratch(source, subscription, request.resource_group, name, drill_id)
            try:
                restored = await restore(config, restore_request, on_message)
                result.disk_id = restored.disk_id
                result.ready_seconds = round(time.monotonic() - clock, 3)
                on_message(f"the drill's disk {restored.disk_id} is ready; reading it back")
                result.comparison = await _compare(target, scratch, restored, source)
                result.verified_seconds = round(time.monotonic() - clock, 3)
            except ReplicatorError as err:
                result.error = str(err)
                raise
            finally:

                async def cleanup() -> None:
                    result.disk_left = await scratch.remove()

                await shielded(cleanup())
                if result.error is not None or result.comparison is not None:
                    await _record(target, result)
    if result.disk_left is not None and result.outcome == "passed":
        raise ReplicationError(
            f"the drill passed, but its disk {result.disk_left} could not be deleted; delete it by hand."
        )
    return result


async def _compare(
    target: PageBlobTarget, scratch: _Scratch, restored: RestoreResult, source: ArmSource
) -> Comparison:
    """The new disk read back through a Read grant, against the restore point (module docstring): its
    blob snapshot, or a striped point's stripe snapshots."""
    url = await scratch.grant()
    disk = DiskRef(restored.disk_id, scratch.name, restored.data_access_auth_mode)
    footer = 512 if restored.point.logical_sector_size == 512 else 0
    client: BlobClient = source.disk_auth.client(url, disk, **client_kwargs())
    async with client:
        if not restored.point.stripe_snapshots:
            return await compare_blobs(target.point_client(restored.point.id), client, tail=footer)
        point = StripedPoint(target, restored.point)
        return await compare_striped(client, point.parts(), point.route, tail=footer, stripes_expected=True)


async def _record(target: PageBlobTarget, result: DrillResult) -> None:
    """The outcome into the target's metadata, under its lease; a held lease only costs the record."""
    record = result.record()
    if record is None:
        return
    try:
        async with target.leased():
            state = (await target.inspect()).state
            await target.write_state(replace(state, last_drill=record))
        result.recorded = True
    except (LockedError, ReplicationError) as err:
        log.warning("the drill's result was not recorded on the target: %s", err)


@dataclass
class GroupDrill:
    """A VM group's drill: each disk's result in VM order (or the error of a disk's drill that could
    not run); the group's RTO is its slowest disk's."""

    group: GroupManifest
    disks: list[tuple[DiskEntry, DrillResult | ReplicatorError]]

    @property
    def results(self) -> list[DrillResult]:
        return [r for _, r in self.disks if isinstance(r, DrillResult)]

    @property
    def outcome(self) -> DrillOutcome:
        outcomes = [r.outcome if isinstance(r, DrillResult) else "failed" for _, r in self.disks]
        return "mismatch" if "mismatch" in outcomes else "failed" if "failed" in outcomes else "passed"

    def slowest(self, attribute: str) -> float | None:
        values = [getattr(r, attribute) for r in self.results]
        return None if None in values or len(values) < len(self.disks) else max(values)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": {
                "group_id": self.group.group_id,
                "vm": {"id": self.group.vm_id, "name": self.group.vm_name},
            },
            "result": self.outcome,
            "rto_ready_seconds": self.slowest("ready_seconds"),
            "rto_verified_seconds": self.slowest("verified_seconds"),
            "disks": [
                {"name": entry.name, "role": entry.role, "lun": entry.lun}
                | (
                    result.to_json()
                    if isinstance(result, DrillResult)
                    else {"result": "failed", "error": str(result)}
                )
                for entry, result in self.disks
            ],
        }


async def drill_group(
    config: Config, wanted: str, request: DrillRequest, on_message: Callable[[str], None] = lambda _: None
) -> GroupDrill:
    """Drill every disk of the group `wanted` at once (module docstring); a disk whose drill could
    not run is reported with its error, the others still run and clean up."""
    start = datetime.now(UTC), time.monotonic()
    prefix = parse_target_prefix(config.target, allow_http=config.allow_http)
    async with GroupStore(config, prefix, command="drill") as store:
        group = await choose(store, wanted)
    entries = vm_order(group.disks)
    on_message(f"drilling group {group.group_id} of {group.vm_name}: {len(entries)} disks at once")

    async def one(entry: DiskEntry) -> DrillResult:
        disk_config = replace(config, target=entry.blob_url + (f"?{prefix.sas}" if prefix.sas else ""))
        return await drill(disk_config, replace(request, point=entry.restore_point or ""), on_message, start)

    done = await asyncio.gather(*(one(e) for e in entries), return_exceptions=True)
    disks: list[tuple[DiskEntry, DrillResult | ReplicatorError]] = []
    for entry, result in zip(entries, done, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, ReplicatorError):
            raise result  # a cancellation, or a bug: every disk's drill has cleaned up by now
        disks.append((entry, result))
    return GroupDrill(group, disks)


def _disk_json(result: DrillResult | ReplicatorError) -> dict[str, Any]:
    if isinstance(result, DrillResult):
        return result.to_json()
    return {"result": "failed", "error": str(result)}
