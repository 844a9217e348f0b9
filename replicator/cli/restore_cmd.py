"""`replicate restore --target URL --point ID|latest|NAME --resource-group RG --disk-name D --location L`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from replicator.cli import shell
from replicator.settings.knobs import TARGET_KNOBS
from replicator.target.restore_points import AUTH_MODES, DISK_SKUS, RestoreRequest, restore


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
_resource_group = _named(
    r"[\w().-]{0,89}[\w()-]",
    "a resource group name is 1-90 letters, digits, '_', '(', ')', '.' or '-' and does not end with '.'",
)
_location = _named(
    r"[A-Za-z0-9]+",
    "a location is a region name of letters and digits, such as westeurope (az account list-locations)",
)


async def _restore(invocation: shell.Invocation) -> shell.CommandResult:
    p = invocation.parser(
        "Create a managed disk from a restore point (ARM disk create, createOption Import).",
        knobs=(*TARGET_KNOBS, "subscription_id"),
    )
    p.add_argument(
        "--point",
        required=True,
        help="restore point ID, 'latest' (the one holding the newest source snapshot, also after a "
        "rollback), or a source snapshot name",
    )
    p.add_argument(
        "--resource-group", required=True, type=_resource_group, help="resource group of the new disk"
    )
    p.add_argument("--disk-name", required=True, type=_disk_name, help="name of the new disk")
    p.add_argument(
        "--location",
        required=True,
        type=_location,
        help="region of the new disk, e.g. westeurope (the target account's region)",
    )
    p.add_argument(
        "--sku",
        default="Premium_LRS",
        choices=DISK_SKUS,
        metavar="SKU",
        help=f"disk type: {', '.join(DISK_SKUS)} (default Premium_LRS); 4096-byte sectors need "
        "PremiumV2_LRS or UltraSSD_LRS",
    )
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
    config = shell.configure(p, args)
    request = RestoreRequest(
        point=args.point,
        subscription_id=config.subscription_id,
        resource_group=args.resource_group,
        disk_name=args.disk_name,
        location=args.location,
        sku=args.sku,
        storage_account_id=args.storage_account_id,
        data_access_auth_mode=args.data_access_auth_mode,
    )
    result = await restore(config, request, shell.say)

    def show() -> None:
        shell.say(
            f"restored {result.point.id} ({result.point.snapshot_name}) to {result.sku} disk "
            f"{result.disk_id} ({result.size_bytes} bytes, dataAccessAuthMode "
            f"{result.data_access_auth_mode or 'None'})",
            "restored",
            restore_point=result.point.id,
            disk=result.disk_id,
            data_access_auth_mode=result.data_access_auth_mode,
        )
        print(result.disk_id)

    return shell.CommandResult(config.json, "restored", result.to_json(), show)


def main(argv: list[str]) -> int:
    return shell.run("restore", argv, _restore)
