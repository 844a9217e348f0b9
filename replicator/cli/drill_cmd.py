"""`replicate drill --target URL --resource-group SCRATCH --location L [--restore-point latest|ID|NAME]`:
restore a restore point into a scratch resource group, read the disk back, compare, delete it, and
report the measured RTO (replicator.engine.drill). Exit 0 only when the disk equals its restore point.
With `--target PREFIX --group ID|latest`: every disk of a VM's group at once.

The result is one sentence on stdout (or the `--json` envelope) and the `drill_done` event on the log
stream (`_result`), never the same sentence twice on one terminal.
"""

from __future__ import annotations

from typing import Any

from replicator.cli import shell
from replicator.cli.restore_cmd import add_overrides, location_type, overrides, resource_group_type
from replicator.core.errors import EXIT_MISMATCH, EXIT_OK, ReplicationError
from replicator.core.output import measured_duration
from replicator.core.ranges import Range
from replicator.core.stripes import locate
from replicator.engine.drill import DrillRequest, DrillResult, GroupDrill, drill, drill_group
from replicator.observe import jsonlog
from replicator.settings.knobs import TARGET_KNOBS
from replicator.target.restore_points import PointInfo


async def _drill(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Restore drill: restore a restore point into a scratch resource group as a disk tagged as the "
        "drill's, read it back through a Read grant and compare it with the restore point byte for "
        "byte, delete the disk (on every way out), record the result on the target and report the "
        "time to restore (RTO). Exit 0 only when the disk equals the restore point; 6 when it differs.",
        knobs=(*TARGET_KNOBS, "subscription_id"),
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--restore-point",
        default="latest",
        help="restore point ID, 'latest' (default: the one `status` reports as protected), or a source "
        "snapshot name",
    )
    which.add_argument(
        "--group",
        help="a VM's group ID, or 'latest' (the newest complete group): every disk of it at once, "
        "--target being the VM's prefix",
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
    if args.group is not None:
        return _group_result(config.json, await drill_group(config, args.group, request, shell.say))
    result = await drill(config, request, shell.say)
    point = result.point
    assert point is not None and result.comparison is not None  # a drill that ran to the end
    timing = (
        f"disk ready in {measured_duration(result.ready_seconds or 0)}, "
        f"verified in {measured_duration(result.verified_seconds or 0)}"
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
            f"drill failed: the disk restored from restore point {point.id} differs from it at "
            f"{_where(point, comparison.first_mismatch)}; the replica does not give back its source: "
            f"replicate it again in full (a new target) and drill again; {timing}."
        )
    return _result(config.json, result.outcome, result.to_json(), line, error)


def _where(point: PointInfo, offset: int | None) -> str:
    """The first differing byte, and for a striped restore point the stripe snapshot holding it
    (core.stripes.locate), so an operator knows which blob snapshot to look at."""
    if offset is None or not point.stripe_snapshots:
        return f"byte {offset}"
    index, local = locate(Range(offset, offset + 1))
    return f"byte {offset} (stripe {index}, byte {local.start} of its snapshot)"


def _group_result(json: bool, done: GroupDrill) -> shell.CommandResult:
    """passed (0) when every disk equals its restore point, mismatch (6) when one differs; a disk whose
    drill could not run fails the command (its error; the others ran and cleaned up)."""
    failed = [(e, r) for e, r in done.disks if not isinstance(r, DrillResult)]
    if failed and done.outcome != "mismatch":
        raise ReplicationError(
            f"the drill of group {done.group.group_id} did not run for "
            + "; ".join(f"disk {entry.name}: {error}" for entry, error in failed)
        )
    timing = (
        f"every disk ready in {measured_duration(done.slowest('ready_seconds') or 0)}, "
        f"verified in {measured_duration(done.slowest('verified_seconds') or 0)}"
    )
    bad = [e.name for e, r in done.disks if not (isinstance(r, DrillResult) and r.outcome == "passed")]
    if done.outcome == "passed":
        error = None
        line = (
            f"drill of group {done.group.group_id} passed: {len(done.disks)} disks equal to their restore "
            f"points; {timing}"
        )
    else:
        error = line = (
            f"drill of group {done.group.group_id} failed: {', '.join(bad)} did not read back equal to "
            f"their restore points; {timing}."
        )
    return _result(json, done.outcome, done.to_json(), line, error)


def _result(
    json: bool, outcome: str, payload: dict[str, Any], line: str, error: str | None
) -> shell.CommandResult:
    """The drill's ending: `line` on stdout (the envelope with `--json`), exit 0 or 6 (`error`: the
    line of a mismatch), and the `drill_done` event carrying `payload` on the log stream, which the
    logs of cron or a container keep. On a terminal without `--json` the event is left out: its
    message is `line`, which stdout prints to the same screen."""
    if json or not jsonlog.on_terminal():
        shell.say(line, "drill_done", **payload)
    exit_code = EXIT_OK if error is None else EXIT_MISMATCH
    return shell.CommandResult(json, outcome, payload, lambda: print(line), exit_code, error)


def main(argv: list[str]) -> int:
    return shell.run("drill", argv, _drill)
