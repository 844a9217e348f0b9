"""`replicate restore --target URL --point ID|latest|NAME --resource-group RG --disk-name D --location L`,
`replicate restore --target PREFIX --group ID|latest --resource-group RG --location L` (every disk of a
VM's group: target.restore_group), and the overrides of the source's recorded disk properties, which
`drill` takes too (`add_overrides`)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from replicator.cli import shell
from replicator.cli.argv import target_display
from replicator.core import arm_ids
from replicator.core.disk_profile import Overrides, parse_security_type, parse_tags, parse_zone
from replicator.core.errors import UserError
from replicator.engine.striped_restore import make, restore
from replicator.settings.knobs import TARGET_KNOBS
from replicator.target.manifest import DiskEntry
from replicator.target.restore_disk import AUTH_MODES, FALLBACK_SKU, RestoreRequest, RestoreResult
from replicator.target.restore_group import GroupRestore, disk_json, restore_group
from replicator.target.restore_points import DISK_SKUS

UPLOAD_KNOBS = (
    "concurrency",
    "max_in_flight_bytes",
    "max_attempts",
    "request_timeout_seconds",
    "sas_duration_seconds",
)
"""The knobs of a striped restore point's upload (engine.striped_restore): its writes, as a replication's,
and its Write grant's lifetime. A restore of one blob (Import) copies nothing itself and ignores them."""


def _named(pattern: str, rule: str) -> Callable[[str], str]:
    """An argparse type that refuses a name Azure would refuse, with its rule: exit 2, nothing created."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError(f"{value!r} is not valid: {rule}")
        return value

    return check


# Azure's naming rules (learn.microsoft.com, "Naming rules and restrictions for Azure resources").
_disk_name = _named(
    r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?",
    "a disk name is 1-80 letters, digits, '_', '.' or '-', starts with a letter or digit "
    "and does not end with '.' or '-'",
)
resource_group_type = _named(
    r"[\w().-]{0,89}[\w()-]",
    "a resource group name is 1-90 letters, digits, '_', '(', ')', '.' or '-' and does not end with '.'",
)


def _checked(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises ValueError with its one sentence (exit 2)."""

    def check(value: str) -> object:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _encryption_set(value: str) -> str:
    try:
        rid = arm_ids.parse(value)
    except UserError:
        rid = None
    if rid is None or rid.kind != "disk_encryption_set":
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a disk encryption set ID: /subscriptions/<subscription>/resourceGroups/"
            "<group>/providers/Microsoft.Compute/diskEncryptionSets/<name>, a set in the restore's region"
        )
    return value.strip()


def add_overrides(p: argparse.ArgumentParser) -> None:
    """The flags that replace what the restore point records of its source disk (restore and drill)."""
    p.add_argument(
        "--sku",
        choices=DISK_SKUS,
        metavar="SKU",
        help=f"disk type: {', '.join(DISK_SKUS)} (default: the source disk's, as the restore point "
        f"records it; {FALLBACK_SKU} when it records none); 4096-byte sectors need PremiumV2_LRS or "
        "UltraSSD_LRS",
    )
    p.add_argument(
        "--zone",
        type=_checked(parse_zone),
        help="availability zone 1, 2 or 3, or none for a regional disk (default: the source disk's zone)",
    )
    p.add_argument(
        "--security-type",
        type=_checked(parse_security_type),
        help="Standard or TrustedLaunch (default: the source's; a confidential VM disk is refused)",
    )
    p.add_argument(
        "--tags",
        type=_checked(parse_tags),
        default={},
        metavar="KEY=VALUE,...",
        help="tags merged over the source disk's recorded tags (a key given here replaces the source's)",
    )
    p.add_argument(
        "--disk-encryption-set",
        type=_encryption_set,
        metavar="ID",
        help="a disk encryption set in the new disk's region: customer-managed keys (default: platform "
        "keys; the source's set does not cross regions)",
    )


def overrides(args: argparse.Namespace) -> Overrides:
    return Overrides(
        sku=args.sku,
        zone=args.zone,
        security_type=args.security_type,
        tags=args.tags,
        disk_encryption_set_id=args.disk_encryption_set,
    )


location_type = _named(
    r"[A-Za-z0-9]+",
    "a location is a region name of letters and digits, such as westeurope (az account list-locations)",
)


async def _restore(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Create a managed disk from a restore point (ARM disk create, createOption Import; a striped "
        "restore point of a source over 8 TiB: createOption Upload, its stripes copied server-side).",
        knobs=(*TARGET_KNOBS, "subscription_id", *UPLOAD_KNOBS),
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--point",
        help="restore point ID, 'latest' (the one holding the newest source snapshot, also after a "
        "rollback), or a source snapshot name",
    )
    which.add_argument(
        "--group",
        help="a VM's group ID, or 'latest' (the newest complete group): every disk of it, --target being "
        "the VM's prefix",
    )
    p.add_argument(
        "--resource-group", required=True, type=resource_group_type, help="resource group of the new disk"
    )
    p.add_argument("--disk-name", type=_disk_name, help="name of the new disk (with --point; required)")
    p.add_argument(
        "--name-suffix",
        default="",
        type=_named(r"[A-Za-z0-9_.-]{0,20}", "a suffix is up to 20 letters, digits, '_', '.' or '-'"),
        help="with --group: each new disk is named after its source disk plus this suffix "
        "(e.g. --name-suffix=-dr: a value that starts with '-' takes the = form)",
    )
    p.add_argument(
        "--location",
        required=True,
        type=location_type,
        help="region of the new disk, e.g. westeurope (the target account's region)",
    )
    add_overrides(p)
    p.add_argument(
        "--data-access-auth-mode",
        choices=AUTH_MODES,
        help="the new disk's dataAccessAuthMode (default: its source's, as the restore point records it: "
        "a disk restored from an Entra-ID-protected source is protected too)",
    )
    p.add_argument(
        "--storage-account-id",
        help="ARM ID of the target storage account (default: the account of --target in --resource-group)",
    )
    args = p.parse_args(invocation.argv)
    if args.point is not None and not args.disk_name:
        p.error("--disk-name is required with --point")
    if args.group is not None and args.disk_name:
        p.error(
            "--disk-name names one disk: with --group each disk is named after its source (--name-suffix)"
        )
    config = shell.configure(p, args)
    request = RestoreRequest(
        point=args.point or "",
        subscription_id=config.subscription_id,
        resource_group=args.resource_group,
        disk_name=args.disk_name or "",
        location=args.location,
        overrides=overrides(args),
        storage_account_id=args.storage_account_id,
        data_access_auth_mode=args.data_access_auth_mode,
    )
    if args.group is not None:
        restored: list[dict[str, Any]] = []  # the disks created so far: a failure's envelope lists them
        invocation.error_payload = lambda: {"target": target_display(invocation.argv), "disks": restored}

        def created(entry: DiskEntry, result: RestoreResult) -> None:
            _say_restored(result)
            restored.append(disk_json(entry, result))

        done = await restore_group(
            config, args.group, request, args.name_suffix, shell.say, created, make=make
        )
        return _group_result(config.json, done)
    result = await restore(config, request, shell.say)
    _say_restored(result)
    return shell.CommandResult(config.json, "restored", result.to_json(), lambda: print(result.disk_id))


def _group_result(json: bool, done: GroupRestore) -> shell.CommandResult:
    """The `az vm create` line that attaches the disks (stderr), and their IDs in VM order on stdout."""
    attach = done.attach_command()
    data = " ".join(attach["attach_data_disks"])
    shell.say(
        f"attach them: az vm create ... --attach-os-disk {attach['attach_os_disk']}"
        + (f" --attach-data-disks {data}" if data else "")
        + (f" --os-type {attach['os_type']}" if attach["os_type"] else ""),
        "restored_group",
        group=done.group.group_id,
    )

    def show() -> None:
        for _, result in done.disks:
            print(result.disk_id)

    return shell.CommandResult(json, "restored", done.to_json(), show)


def _say_restored(result: RestoreResult) -> None:
    """The `restored` line of one disk on the log stream (with `--json` too: the stream is stderr):
    what it was given, and a warning for tags not recorded."""
    kept = ", ".join(
        f"{name} {value}"
        for name, value in (
            ("OS type", result.profile.os_type),
            ("generation", result.profile.hyper_v_generation),
            ("zone", result.profile.zone),
            ("security type", result.profile.security_type),
        )
        if value
    )
    if result.point.profile.tags_dropped:
        shell.say(
            f"the source disk's {result.point.profile.tags_dropped} tags were not recorded (too large "
            "for the restore point's metadata); give the ones the disk needs with --tags",
            "restore_tags_not_recorded",
        )
    shell.say(
        f"restored {result.point.id} ({result.point.snapshot_name}) to {result.sku} disk "
        f"{result.disk_id} ({result.size_bytes} bytes, {kept + ', ' if kept else ''}dataAccessAuthMode "
        f"{result.data_access_auth_mode or 'None'})",
        "restored",
        restore_point=result.point.id,
        disk=result.disk_id,
        data_access_auth_mode=result.data_access_auth_mode,
    )


def main(argv: list[str]) -> int:
    return shell.run("restore", argv, _restore)
