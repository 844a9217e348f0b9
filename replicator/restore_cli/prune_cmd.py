"""`replicate prune --target URL (--keep N | --older-than DAYS) [--dry-run]`: delete old restore points."""

from __future__ import annotations

from datetime import UTC, datetime

from replicator.output import plural
from replicator.restore_cli import Outcome, load, parser, run, say
from replicator.restore_points import prune


async def _prune(argv: list[str]) -> Outcome:
    p = parser(
        "prune",
        "Delete old restore points; never the newest, never the base of the next diff, never during a run.",
    )
    policy = p.add_mutually_exclusive_group(required=True)
    policy.add_argument("--keep", type=int, metavar="N", help="keep the newest N restore points")
    policy.add_argument(
        "--older-than", type=float, metavar="DAYS", help="delete restore points older than DAYS"
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    args = p.parse_args(argv)
    config = load(args)
    plan = await prune(
        config,
        keep=args.keep,
        older_than_days=args.older_than,
        now=datetime.now(UTC),
        dry_run=args.dry_run,
        on_message=say,
    )

    def show() -> None:
        verb = "would delete" if args.dry_run else "deleted"
        for point, why in plan.protected:
            say(f"kept {point.id} ({point.snapshot_name}): {why}", "kept", restore_point=point.id, why=why)
        say(f"{verb} {plural(len(plan.delete), 'restore point')}", "pruned", count=len(plan.delete))
        for point in plan.delete:
            print(f"{verb} {point.id} ({point.snapshot_name})")

    return Outcome(config.json, "planned" if args.dry_run else "pruned", plan.to_json(), show)


def main(argv: list[str]) -> int:
    return run("prune", argv, _prune)
