"""`replicate list --target URL [--json]`: the restore points of a target, oldest first."""

from __future__ import annotations

from replicator.cli import shell
from replicator.core.output import (
    human_size,
    plural,
    table,
    utc_time,
)
from replicator.settings.knobs import TARGET_KNOBS
from replicator.source.disk_auth import ENTRA_MODE
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
                human_size(p.size_bytes),
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
    return lines


async def _list(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser("List the restore points of a target, oldest first.", knobs=TARGET_KNOBS)
    args = p.parse_args(invocation.argv)
    config = shell.configure(p, args)
    async with PageBlobTarget(config, command="list") as target:
        listing = await list_points(target)

    def show() -> None:
        for line in render(listing):
            print(line)

    return shell.CommandResult(config.json, "listed", listing.to_json(), show)


def main(argv: list[str]) -> int:
    return shell.run("list", argv, _list)
