"""`--snapshot-now` and `--source-keep`: take the source disk's incremental snapshot, trim old ones.

Why a module of its own: the source modules only read (resolve, grant, list); this one is the only
code that creates or deletes source resources, and it needs write permissions (snapshots/write and
/delete) that a read-only replication identity does not have. It reuses ArmSource's clients. Why in
the engine: which snapshots may go depends on the target's state (the base of its next diff).

Limits (Azure, docs/runbook.md): at most 7 incremental snapshots per disk every 5 minutes and
500 per disk. They are checked against the disk's snapshots before asking, and the service's own
refusal is the authority (a 409, or an operation ARM reports Failed with SnapshotsLimitReached);
either way the run stops with LimitError (exit 3) before anything is written, since a later run
clears the rate limit (and pruning with --source-keep the total one). ARM throttling (429) that
outlasts the pipeline's retries is exit 1, as for every ARM call (source.arm); when it hit the status
polls of a create ARM had accepted, the sentence says so: that snapshot, tagged, is the next run's.

A create ARM reports Failed leaves its snapshot behind in provisioningState Failed (ARM's resource
provider contract; azure-sdk-for-python issue 14282 shows it for a disk's snapshot limit): the run
deletes that one snapshot, which it named and tagged itself a moment before, and says so; runs never
list Failed snapshots as sources (source.arm), so one left behind (the delete failed, or someone
else's) is never replicated nor trimmed.

Ownership: every snapshot this module takes carries the ARM tag `replicator-owner: replicator`
(source.arm.OWNER_TAG) and `replicator-target: <the target's URL without SAS>` (source.arm.TARGET_TAG).
Source-keep deletes only snapshots carrying both, with its own target: on a shared disk, snapshots
an operator or another team took are their restore points, and a snapshot taken for another target
of the same disk may be that target's next diff base; a tool must never delete what it did not
create for this target, whatever N. Snapshots taken by a version before the tag existed carry none either; an
operator who wants them trimmed tags them (`az snapshot update --set tags.replicator-owner=replicator`).

Source-keep keeps the disk's newest N incremental snapshots, whoever took them, and of the older ones
deletes the tool's own (the run says how many older ones it left because they are not its own), but
never the one the target's last restore point holds (the base of the next diff), never one a run is
in progress on (or diffing from), and never one with an active SAS (another replication reading it).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import CreationData, Snapshot

from replicator.core import arm_ids
from replicator.core.errors import LimitError, ReplicationError, ReplicatorError
from replicator.core.output import plural
from replicator.source.arm import (
    OWNER_TAG,
    OWNER_VALUE,
    TARGET_TAG,
    ArmOperationFailed,
    ArmSource,
    SnapshotInfo,
    snapshot_info,
    target_tag,
)
from replicator.source.disk_auth import ENTRA_MODE
from replicator.target.state import State

log = logging.getLogger(__name__)

SNAPSHOTS_PER_WINDOW = 7
"""Azure: up to seven incremental snapshots per disk every five minutes."""
SNAPSHOT_WINDOW = timedelta(minutes=5)
SNAPSHOTS_PER_DISK = 500
"""Azure: 500 incremental snapshots per disk in total."""
LIMIT_FAILURE = "SnapshotsLimitReached"
"""ARM's code when it reports a snapshot create Failed for a per-disk limit (the module docstring)."""


def window_full(
    created: list[datetime], now: datetime, allowed: int, window: timedelta
) -> tuple[int, datetime] | None:
    """Azure's creation-rate rule (at most `allowed` within any `window`): when one more now would
    break it, how many were created within the window and when the next one is allowed; else None."""
    recent = sorted(t for t in created if t > now - window)
    if len(recent) < allowed:
        return None
    return len(recent), recent[-allowed] + window


def check_limits(created: list[datetime], now: datetime) -> None:
    """LimitError when one more incremental snapshot would break a limit (`created`: the disk's)."""
    if len(created) >= SNAPSHOTS_PER_DISK:
        raise LimitError(
            f"the disk already has {len(created)} incremental snapshots (Azure allows {SNAPSHOTS_PER_DISK}); "
            "delete old ones (--source-keep) before --snapshot-now."
        )
    if full := window_full(created, now, SNAPSHOTS_PER_WINDOW, SNAPSHOT_WINDOW):
        count, free_at = full
        raise LimitError(
            f"{count} incremental snapshots of the disk were taken in the last 5 minutes (Azure allows "
            f"{SNAPSHOTS_PER_WINDOW}); run again after {free_at:%H:%M:%S} UTC.",
            retry_after_seconds=round((free_at - now).total_seconds(), 3),
        )


def snapshot_name(disk_name: str, now: datetime) -> str:
    """A new snapshot's name: the disk's, a UTC timestamp and a short random suffix (≤ 80 characters)."""
    return f"{disk_name[:48]}-repl-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


Search = Literal["resource-group", "subscription"]


async def snapshot_now(
    source: ArmSource,
    disk_id: str,
    on_message: Callable[[str], None],
    now: datetime | None = None,
    *,
    target: str,
    search: Search = "resource-group",
) -> SnapshotInfo:
    """Take an incremental snapshot of the disk `disk_id`, tagged as this tool's and taken for `target`
    (its display URL), and wait until it is complete. `search`: where the disk's snapshots counted
    against Azure's limits are looked for."""
    rid = arm_ids.parse(disk_id)
    now = now or datetime.now(UTC)
    _, existing = await source.resolve(disk_id, search=search)
    check_limits([s.time_created for s in existing], now)
    compute = source.compute(rid.subscription_id)
    name = snapshot_name(rid.name, now)
    with source.arm_errors(f"read disk {rid}"):
        disk = await compute.disks.get(rid.resource_group, rid.name)
    if (disk.data_access_auth_mode or "").casefold() == ENTRA_MODE.casefold():
        source.disk_auth.check_credential(rid.name, "disk")  # before a snapshot nobody could read
    body = Snapshot(
        location=disk.location,
        incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=disk.id),
        tags={OWNER_TAG: OWNER_VALUE, TARGET_TAG: target_tag(target)},
        # The disk's protection, said explicitly: Azure documents no inheritance, and a hardened
        # tenant's policy may refuse a snapshot without it.
        data_access_auth_mode=disk.data_access_auth_mode,
    )
    on_message(f"taking incremental snapshot {name} of {rid.name}")
    poller = None
    try:
        with source.arm_errors(f"take an incremental snapshot of {rid}"):
            poller = await compute.snapshots.begin_create_or_update(rid.resource_group, name, body)
            snap = snapshot_info(await poller.result())
    except ArmOperationFailed as err:
        left = await _delete_failed(source, rid, name, target, on_message)
        raise (LimitError if err.code == LIMIT_FAILURE else ReplicationError)(f"{err} {left}") from err
    except ReplicationError as err:
        cause = err.__cause__
        if isinstance(cause, HttpResponseError) and cause.status_code == 409:
            message = getattr(cause.error, "message", None) or cause.reason or ""
            raise LimitError(f"Azure refused the snapshot of {rid.name}: {message}") from err
        if poller is not None:  # accepted, then its status could not be read: the snapshot may exist
            raise ReplicationError(
                f"{err} ARM had accepted snapshot {name}: once Azure completes it, the next run replicates "
                "it (it carries the tool's tags, so --source-keep trims it in time)."
            ) from err
        raise
    return await source.wait_complete(
        snap, lambda s: on_message(f"{s.name}: {s.completion_percent or 100:.0f} % complete")
    )


async def _delete_failed(
    source: ArmSource, rid: arm_ids.ResourceId, name: str, target: str, on_message: Callable[[str], None]
) -> str:
    """Delete the snapshot `name` of a create ARM reported Failed, if it is there, Failed, and carries
    this run's tags for `target`; the sentence says what was left."""
    operations = source.compute(rid.subscription_id).snapshots
    try:
        with source.arm_errors(f"read snapshot {name}"):
            try:
                left = await operations.get(rid.resource_group, name)
            except ResourceNotFoundError:
                return "It left no snapshot behind."
            if left.provisioning_state != "Failed" or not ours(snapshot_info(left), target):
                return f"Snapshot {name} is left as it is (provisioningState {left.provisioning_state})."
            on_message(f"deleting snapshot {name}: its creation failed")
            poller = await operations.begin_delete(rid.resource_group, name)
            await poller.result()
    except ReplicatorError as err:
        return f"The snapshot {name} it left behind could not be deleted ({err}); delete it."
    return f"The snapshot {name} it left behind in provisioningState Failed was deleted."


def protected_ids(state: State) -> set[str]:
    """Unique IDs of the source snapshots the target still needs: the last restore point's, the one
    being written and its diff base."""
    keep = set()
    if state.last:
        keep.add(state.last.unique_id.casefold())
    if state.in_progress:
        keep.add(state.in_progress.snapshot.unique_id.casefold())
    return keep


@dataclass(frozen=True)
class Trim:
    """What `--source-keep` does to the disk's snapshots beyond the newest N."""

    delete: list[SnapshotInfo]  # the tool's own for this target, not needed by it
    not_owned: list[SnapshotInfo]  # left because the tool did not take them
    other_targets: list[SnapshotInfo]  # left because the tool took them for another target


def ours(snap: SnapshotInfo, target: str) -> bool:
    """Whether the tool took `snap` for `target` (display URL): both tags, the target's value exact."""
    return snap.owned and snap.owner_target == target_tag(target)


def plan_trim(snaps: list[SnapshotInfo], keep: int, state: State, target: str) -> Trim:
    """Pure: of the snapshots beyond the newest `keep` (`snaps` oldest first), the tool's own for
    `target` minus those the target needs are deleted; the others are left and counted."""
    needed = protected_ids(state)
    base_id = state.in_progress.base_id if state.in_progress else None
    old = snaps[: max(0, len(snaps) - keep)]
    return Trim(
        [
            s
            for s in old
            if ours(s, target)
            and s.unique_id.casefold() not in needed
            and not arm_ids.same_resource(s.id, base_id)
        ],
        [s for s in old if not s.owned],
        [s for s in old if s.owned and not ours(s, target)],
    )


async def keep_source(
    source: ArmSource,
    disk_id: str,
    keep: int,
    state: State,
    on_message: Callable[[str], None],
    *,
    target: str,
    search: Search = "resource-group",
) -> list[str]:
    """Delete the tool's own incremental snapshots of the disk beyond the newest `keep` (see the
    module docstring); returns the IDs deleted."""
    _, snaps = await source.resolve(disk_id, search=search)
    trim = plan_trim(snaps, keep, state, target)
    if trim.not_owned:
        on_message(
            f"--source-keep {keep}: left {plural(len(trim.not_owned), 'older snapshot')} of the disk, "
            f"not the tool's (no tag {OWNER_TAG}={OWNER_VALUE}); it deletes only snapshots it took"
        )
    if trim.other_targets:
        on_message(
            f"--source-keep {keep}: left {plural(len(trim.other_targets), 'older snapshot')} of the disk "
            f"taken for another target (tag {TARGET_TAG}); a run trims only its own target's"
        )
    deleted = []
    for snap in trim.delete:
        rid = snap.resource
        operations = source.compute(rid.subscription_id).snapshots
        with source.arm_errors(f"delete snapshot {snap.id}"):
            try:
                current = await operations.get(rid.resource_group, rid.name)
            except ResourceNotFoundError:
                continue
            if current.unique_id != snap.unique_id or not ours(snapshot_info(current), target):
                continue  # re-created (or re-tagged) since it was listed: not the one planned
            if current.disk_state == "ActiveSAS":
                on_message(f"kept {snap.name}: another replication is reading it (active SAS)")
                continue
            on_message(f"deleting source snapshot {snap.name} (--source-keep {keep})")
            poller = await operations.begin_delete(rid.resource_group, rid.name)
            await poller.result()
        deleted.append(snap.id)
    return deleted
