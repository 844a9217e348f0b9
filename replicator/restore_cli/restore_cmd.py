"""`replicate restore --target URL --point ID|latest|NAME --resource-group RG --disk-name D --location L`."""

from __future__ import annotations

from replicator.restore_cli import Outcome, load, parser, run, say
from replicator.restore_points import DISK_SKUS, RestoreRequest, restore


async def _restore(argv: list[str]) -> Outcome:
    p = parser(
        "restore", "Create a managed disk from a restore point (ARM disk create, createOption Import)."
    )
    p.add_argument("--point", required=True, help="restore point ID, 'latest', or a source snapshot name")
    p.add_argument("--resource-group", required=True, help="resource group of the new disk")
    p.add_argument("--disk-name", required=True, help="name of the new disk")
    p.add_argument("--location", required=True, help="region of the new disk (the target account's region)")
    p.add_argument(
        "--sku",
        default="Premium_LRS",
        choices=DISK_SKUS,
        help="disk type (default Premium_LRS); 4096-byte sectors need PremiumV2_LRS or UltraSSD_LRS",
    )
    p.add_argument(
        "--storage-account-id",
        help="ARM ID of the target storage account (default: the account of --target in --resource-group)",
    )
    args = p.parse_args(argv)
    config = load(args)
    request = RestoreRequest(
        point=args.point,
        subscription_id=config.subscription_id,
        resource_group=args.resource_group,
        disk_name=args.disk_name,
        location=args.location,
        sku=args.sku,
        storage_account_id=args.storage_account_id,
    )
    result = await restore(config, request, say)

    def show() -> None:
        say(
            f"restored {result.point.id} ({result.point.snapshot_name}) to {result.sku} disk "
            f"{result.disk_id} ({result.size_bytes} bytes)"
        )
        print(result.disk_id)

    return config.json, result.to_json(), show


def main(argv: list[str]) -> int:
    return run("restore", argv, _restore)
