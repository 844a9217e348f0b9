"""`replicate prune --target URL (--keep N | --older-than DAYS) [--dry-run]`: delete old restore points."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from replicator.cli import shell
from replicator.cli.argv import target_display
from replicator.core.errors import UserError
from replicator.core.output import plural
from replicator.core.permissions import check_sas
from replicator.settings.knobs import TARGET_KNOBS
from replicator.target.restore_points import PointInfo, prune


async def _prune(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Delete old restore points; never the newest, never the base of the next diff, never during a run.",
        knobs=TARGET_KNOBS,
    )
    policy = p.add_mutually_exclusive_group(required=True)
    policy.add_argument("--keep", type=int, metavar="N", help="keep the newest N restore points")
    policy.add_argument(
        "--older-than", type=float, metavar="DAYS", help="delete restore points older than DAYS"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    p.add_argument(
        "--yes",
        action="store_true",
        help="delete without asking (needed when not on a terminal, as for `az ... delete --yes`)",
    )
    args = p.parse_args(invocation.argv)
    config = shell.configure(p, args)
    policy = {"keep": args.keep, "older_than_days": args.older_than, "now": datetime.now(UTC)}
    only = None
    if not (args.dry_run or args.yes):
        check_sas(config.target, "prune")  # what deleting needs, before asking about it
        if not interactive():
            raise UserError(
                "prune deletes restore points and cannot ask here (not a terminal); add --yes to "
                "confirm, or --dry-run to see what it would delete."
            )
        preview = await prune(config, **policy, dry_run=True)
        if preview.delete and not await confirm(preview.delete, config.target):
            raise UserError("Nothing was deleted: the deletion was not confirmed.")
        only = {p.id for p in preview.delete}
    plan = await prune(config, **policy, dry_run=args.dry_run, on_message=shell.say, only=only)

    def show() -> None:
        verb = "would delete" if args.dry_run else "deleted"
        for point, why in plan.protected:
            shell.say(
                f"kept {point.id} ({point.snapshot_name}): {why}", "kept", restore_point=point.id, why=why
            )
        shell.say(f"{verb} {plural(len(plan.delete), 'restore point')}", "pruned", count=len(plan.delete))
        for point in plan.delete:
            print(f"{verb} {point.id} ({point.snapshot_name})")
        if (after := plan.snapshots_after) is not None:
            shell.say(f"premium page blob: {after.held} of its {after.limit} snapshots after this prune")

    return shell.CommandResult(config.json, "planned" if args.dry_run else "pruned", plan.to_json(), show)


def interactive() -> bool:
    """Whether a person can answer a question: stdin and stderr are both a terminal."""
    return sys.stdin.isatty() and sys.stderr.isatty()


async def confirm(points: list[PointInfo], target: str) -> bool:
    """Show what would be deleted and ask; only `y` or `yes` confirms."""
    for point in points:
        shell.say(f"would delete {point.id} ({point.snapshot_name})")
    question = f"Delete {plural(len(points), 'restore point')} of {target_display([], target)}? [y/N] "
    answer = await asyncio.to_thread(_ask, question)
    return answer.strip().lower() in ("y", "yes")


def _ask(question: str) -> str:
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def main(argv: list[str]) -> int:
    return shell.run("prune", argv, _prune)
