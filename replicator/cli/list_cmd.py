"""`replicate list --target URL [--json]`: the restore points of a target, oldest first; or, for a VM's
target prefix (a container or a folder in it), its groups, newest first (replicator.target.groups)."""

from __future__ import annotations

from typing import Any

from replicator.cli import shell
from replicator.core.errors import UserError
from replicator.core.output import (
    human_size,
    plural,
    table,
    utc_time,
)
from replicator.plumbing.urlcheck import parse_target_prefix, parse_target_url
from replicator.settings.config import Config
from replicator.settings.knobs import TARGET_KNOBS
from replicator.source.disk_auth import ENTRA_MODE
from replicator.target.groups import GroupStore, Stored
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_points import Listing, list_points


def render(listing: Listing) -> list[str]:
    """The human table: one row per restore point, then the state of the base blob."""
    rows = [
        ("restore point", "source snapshot", "snapshot created", "size", "sector", "mode", "access", "role")
    ]
    for p in listing.points:
        rows.append(
            (
                p.id,
                p.snapshot_name,
                utc_time(p.snapshot_time),
                human_size(p.size_bytes) + (f" ({p.stripes} stripes)" if p.stripes > 1 else ""),
                str(p.logical_sector_size),
                p.mode,
                "Entra ID" if p.data_access_auth_mode == ENTRA_MODE else "SAS",
                "base of next diff" if p.base_of_next_diff else "",
            )
        )
    lines = table(rows)
    progress = listing.in_progress
    if listing.locked:
        run_state = "a run holds the lease now"
    elif progress is not None:
        run_state = "idle; an interrupted run will resume"
    else:
        run_state = "idle"
    if progress is not None:
        run_state += f" ({progress.snapshot.name}, {progress.mode}, checkpoint at byte {progress.checkpoint})"
    lines.append(f"{plural(len(listing.points), 'restore point')} of {listing.target}; run: {run_state}")
    if (count := listing.snapshots) is not None:
        foreign = sum(p.foreign for p in listing.points)
        others = f" ({foreign} not taken by the replicator: counted, never pruned)" if foreign else ""
        lines.append(f"premium page blob: {count.held} of its {count.limit} snapshots{others}")
    return lines


def render_groups(target: str, groups: list[Stored]) -> list[str]:
    """The human table of a VM's groups, newest first; below it, why a group is best-effort and which
    disks of the VM a restore point did not hold."""
    rows = [("group", "restore point created", "restore point", "consistency", "state")]
    notes = []
    for stored in groups:
        group = stored.manifest
        missing = group.missing
        state = "complete" if not missing else f"incomplete: {', '.join(missing)} not committed"
        rows.append(
            (
                group.group_id,
                utc_time(group.restore_point_time),
                group.restore_point_name,
                group.consistency,
                state,
            )
        )
        notes += [f"{group.group_id}: {group.consistency}: {reason}" for reason in group.consistency_reasons]
        if group.not_captured:
            names = ", ".join(name for name, _ in group.not_captured)
            notes.append(f"{group.group_id}: not in its restore point: {names}")
    complete = sum(1 for s in groups if s.manifest.complete)
    return [
        *table(rows),
        *notes,
        f"{plural(len(groups), 'group')} of {target} ({complete} complete), newest first",
    ]


async def read(config: Config) -> Listing | tuple[str, list[Stored]]:
    """What `list` shows of `config.target`: the listing of a page blob that exists, else the groups
    under it as a VM's prefix (the prefix, its groups); UserError when it holds neither."""
    shown = config.target.split("?", 1)[0]
    try:
        parse_target_url(config.target, allow_http=config.allow_http)
    except UserError:
        pass  # a container URL: only a VM's prefix
    else:
        async with PageBlobTarget(config, command="list") as target:
            if (await target.inspect()).exists:
                return await list_points(target, with_limit=True)
            shown = target.url.display
    try:
        prefix = parse_target_prefix(config.target, allow_http=config.allow_http)
    except UserError:  # ends in .vhd: a blob's name, and there is no such blob
        prefix = None
    if prefix is not None:
        async with GroupStore(config, prefix, command="list") as store:
            if groups := await store.list():
                return prefix.display, groups
        shown = prefix.display
    raise UserError(
        f"there is no target blob at {shown} and no group of a VM under it; nothing has been replicated "
        "there."
    )


async def _list(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "List the restore points of a target, oldest first (of a VM's target prefix: its groups, newest "
        "first).",
        knobs=TARGET_KNOBS,
    )
    p.reword(
        "target",
        "URL of a target page blob (its restore points), or a VM's prefix: a container, or a folder in "
        "it (its groups); a SAS in it is honoured. (required)",
    )
    args = p.parse_args(invocation.argv)
    config = shell.configure(p, args)
    found = await read(config)
    lines: list[str]
    payload: dict[str, Any]
    if isinstance(found, Listing):
        lines, payload = render(found), found.to_json()
    else:
        prefix, groups = found
        lines = render_groups(prefix, groups)
        payload = {"target": prefix, "groups": [g.to_json() for g in groups]}

    def show() -> None:
        for line in lines:
            print(line)

    return shell.CommandResult(config.json, "listed", payload, show)


def main(argv: list[str]) -> int:
    return shell.run("list", argv, _list)
