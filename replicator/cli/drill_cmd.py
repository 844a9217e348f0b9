"""`replicate drill --target URL --resource-group SCRATCH --location L [--restore-point latest|ID|NAME]`:
restore a restore point into a scratch resource group, read the disk back, compare, delete it, and
report the measured RTO (replicator.engine.drill). Exit 0 only when the disk equals its restore point.
"""

from __future__ import annotations

from replicator.cli import shell
from replicator.cli.restore_cmd import add_overrides, location_type, overrides, resource_group_type
from replicator.core.errors import EXIT_MISMATCH, EXIT_OK
from replicator.core.output import human_duration
from replicator.engine.drill import DrillRequest, drill
from replicator.settings.knobs import TARGET_KNOBS


async def _drill(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Restore drill: restore a restore point into a scratch resource group as a disk tagged as the "
        "drill's, read it back through a Read grant and compare it with the restore point byte for "
        "byte, delete the disk (on every way out), record the result on the target and report the "
        "time to restore (RTO). Exit 0 only when the disk equals the restore point; 6 when it differs.",
        knobs=(*TARGET_KNOBS, "subscription_id"),
    )
    p.add_argument(
        "--restore-point",
        default="latest",
        help="restore point ID, 'latest' (default: the one `status` reports as protected), or a source "
        "snapshot name",
    )
    p.add_argument(
        "--resource-group",
        required=True,
        type=resource_group_type,
        help="the scratch resource group the drill's disk is created in (and deleted from)",
    )
    p.add_argument(
        "--location",
        required=True,
        type=location_type,
        help="region of the drill's disk, e.g. westeurope (the target account's region)",
    )
    add_overrides(p)
    p.add_argument(
        "--storage-account-id",
        help="ARM ID of the target storage account (default: the account of --target in --resource-group)",
    )
    args = p.parse_args(invocation.argv)
    config = shell.configure(p, args)
    request = DrillRequest(
        point=args.restore_point,
        subscription_id=config.subscription_id,
        resource_group=args.resource_group,
        location=args.location,
        overrides=overrides(args),
        storage_account_id=args.storage_account_id,
    )
    result = await drill(config, request, shell.say)
    point = result.point
    assert point is not None and result.comparison is not None  # a drill that ran to the end
    timing = (
        f"disk ready in {human_duration(result.ready_seconds or 0)}, "
        f"verified in {human_duration(result.verified_seconds or 0)}"
    )
    comparison = result.comparison
    if comparison.equal:
        error = None
        line = (
            f"drill passed: restore point {point.id} ({point.snapshot_name}) gave back a disk equal to it "
            f"({comparison.bytes_compared} bytes compared); {timing}"
        )
    elif comparison.expected_size != comparison.actual_size:
        error = line = (
            f"drill failed: the disk restored from restore point {point.id} has {comparison.actual_size} "
            f"bytes, the restore point {comparison.expected_size}; {timing}."
        )
    else:
        error = line = (
            f"drill failed: the disk restored from restore point {point.id} differs from it at byte "
            f"{comparison.first_mismatch}; the replica does not give back its source: replicate it "
            f"again in full (a new target) and drill again; {timing}."
        )

    def show() -> None:
        print(line)

    shell.say(line, "drill_done", **result.to_json())
    return shell.CommandResult(
        config.json,
        result.outcome,
        result.to_json(),
        show,
        EXIT_OK if comparison.equal else EXIT_MISMATCH,
        error,
    )


def main(argv: list[str]) -> int:
    return shell.run("drill", argv, _drill)
