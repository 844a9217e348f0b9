"""Make a managed disk of a restore point: the disk a failover attaches in place of its source.

A restore is ARM's disk create with `createOption: Import` from the restore point's blob snapshot
URL (`sourceUri`) in the target storage account (`storageAccountId`). The new disk gets what the
restore point records of its source (core.disk_profile.DiskProfile: SKU, OS type, Hyper-V
generation, supported capabilities, security type, zone, tags, network access; and the
`dataAccessAuthMode`, so an Entra-ID-protected source gives a protected disk), each replaced by an
override when one is given (`--sku`, `--zone`, `--security-type`, `--tags` merged over the source's,
`--disk-encryption-set`, `--data-access-auth-mode`). A restore point of an older version records
none of it: the disk is then Premium_LRS (`FALLBACK_SKU`) with Azure's defaults, as before.

A striped restore point (a source larger than one page blob: core.stripes) cannot be imported from
one blob: its disk is created with `createOption: Upload` (`uploadSizeBytes` = the export's size) and
the same profile, and engine.striped_restore writes it. Upload takes what Import takes of the profile
but a security type other than Standard (Azure lists FromImage, Import, ImportSecure and
UploadPreparedSecure for Trusted Launch), and only a fixed VHD (512-byte sectors) of at most
32,767 GiB + 512 bytes; each is refused before anything is created.

Everything that can be refused is refused before anything is created (UserError, exit 2): the
restore point's checks (target.restore_points), a security type Import cannot carry, a Trusted
Launch disk that is not generation 2, too many tags, a disk encryption set that does not exist or is
in another region (customer-managed keys do not cross regions: "Server-side encryption of Azure
managed disks", Restrictions), and a disk name already taken. The encryption set's region is read
before the create because Azure's own refusal says less.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    Disk,
    DiskSecurityProfile,
    DiskSku,
    Encryption,
    SupportedCapabilities,
)

from replicator.core import arm_ids
from replicator.core.disk_profile import TRUSTED_LAUNCH, DiskProfile, Overrides, check_tag_count
from replicator.core.errors import ReplicationError, UserError
from replicator.plumbing.urlcheck import TargetUrl
from replicator.settings.config import Config
from replicator.source.arm import ArmSource
from replicator.source.disk_auth import ENTRA_MODE
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_points import (
    V2_SKUS,
    Listing,
    PointInfo,
    check_footer,
    check_sku,
    list_points,
    profile_json,
    select,
)
from replicator.target.striped_point import StripedPoint

FALLBACK_SKU = "Premium_LRS"
"""The SKU of a disk restored from a restore point that does not record its source's (older versions;
a source disk deleted before its snapshot was replicated)."""
CUSTOMER_KEY = "EncryptionAtRestWithCustomerKey"
AUTH_MODES = (ENTRA_MODE, "None")
"""The `dataAccessAuthMode` values a restored disk may be given (`--data-access-auth-mode`)."""
MIN_UPLOAD_BYTES = 20 * 1024**2 + 512
MAX_UPLOAD_BYTES = 32767 * 1024**3 + 512
"""uploadSizeBytes' documented bounds: 20 MiB and "32 TiB" (35183298347520: 32,767 GiB, the largest disk),
each + a 512-byte VHD footer (REST "Disks - Create Or Update", CreationData; the same for every SKU)."""
RESTORE_TIMEOUT_SECONDS = 3600.0
"""Bound on the disk create (an import of a large VHD can take many minutes in Azure)."""
COMPLETION_POLL_SECONDS = 5.0
"""How often a Premium SSD v2 / Ultra disk's completionPercent is re-read while it hydrates."""


def account_name(url: TargetUrl) -> str:
    """The storage account of a target: the path's first segment on emulators, else the host's first label."""
    parts = urlsplit(url.account_url)
    return parts.path.strip("/") or (parts.hostname or "").split(".")[0]


def storage_account_id(url: TargetUrl, subscription_id: str, resource_group: str) -> str:
    """The ARM ID of the target's storage account, assuming it lives in `resource_group`."""
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{account_name(url)}"
    )


def source_uri(url: TargetUrl, point_id: str) -> str:
    """The restore point's blob snapshot URL, without any SAS (ARM reads it with its own access)."""
    return f"{url.display}?snapshot={quote(point_id, safe='')}"


@dataclass(frozen=True)
class RestoreRequest:
    """Where and as what to restore; `storage_account_id` None: derived in `resource_group`."""

    point: str
    subscription_id: str | None
    resource_group: str
    disk_name: str
    location: str
    overrides: Overrides = field(default_factory=Overrides)
    storage_account_id: str | None = None
    data_access_auth_mode: str | None = None  # None: the source snapshot's, as the restore point records it


@dataclass(frozen=True)
class RestoreResult:
    disk_id: str
    point: PointInfo
    profile: DiskProfile  # what the new disk was given
    size_bytes: int
    data_access_auth_mode: str | None = None
    disk_encryption_set_id: str | None = None

    @property
    def sku(self) -> str:
        return self.profile.sku

    def to_json(self) -> dict[str, Any]:
        return {
            "disk_id": self.disk_id,
            "sku": self.sku,
            "data_access_auth_mode": self.data_access_auth_mode,
            "disk_size_bytes": self.size_bytes,
            "disk": profile_json(self.profile) | {"disk_encryption_set_id": self.disk_encryption_set_id},
            "restore_point": self.point.to_json(),
        }


def planned_profile(point: PointInfo, overrides: Overrides) -> DiskProfile:
    """The new disk's properties, or UserError (nothing created) when Azure could not import them."""
    profile = overrides.applied(point.profile)
    if not profile.sku:
        profile = replace(profile, sku=FALLBACK_SKU)
    check_sku(point, profile.sku)
    if (why := point.profile.refusal(profile.security_type)) is not None:
        raise UserError(f"restore point {point.id} cannot become a disk: {why}")
    if profile.security_type == TRUSTED_LAUNCH and profile.hyper_v_generation != "V2":
        recorded = profile.hyper_v_generation or "not recorded"
        raise UserError(
            f"a Trusted Launch disk must be Hyper-V generation V2, and restore point {point.id} records "
            f"{recorded}; restore it with --security-type Standard."
        )
    check_tag_count(profile)
    return profile


def import_creation(point: PointInfo, profile: DiskProfile, source: str, account_id: str) -> CreationData:
    """Import of `source` (the restore point's blob snapshot URL) in the storage account `account_id`."""
    return CreationData(
        create_option="Import",
        source_uri=source,
        storage_account_id=account_id,
        # v2/Ultra disks default to 4096-byte sectors: say what the restore point holds.
        logical_sector_size=point.logical_sector_size if profile.sku in V2_SKUS else None,
    )


def upload_creation(point: PointInfo, profile: DiskProfile) -> CreationData:
    """Upload of the restore point's export (VHD footer included) through a Write grant; UserError for
    what Upload cannot take (module docstring: a striped restore point)."""
    if point.logical_sector_size != 512:
        raise UserError(
            f"restore point {point.id} has {point.logical_sector_size}-byte sectors and is striped: a disk "
            "made by upload takes a fixed VHD (512-byte sectors, footer included), which it does not hold."
        )
    if not MIN_UPLOAD_BYTES <= point.size_bytes <= MAX_UPLOAD_BYTES:
        raise UserError(
            f"restore point {point.id} holds {point.size_bytes} bytes, and a disk made by upload takes "
            f"{MIN_UPLOAD_BYTES} to {MAX_UPLOAD_BYTES} bytes (uploadSizeBytes, VHD footer included): "
            "a larger Premium SSD v2 or Ultra disk cannot be made by upload."
        )
    if profile.security_type and profile.security_type != "Standard":
        raise UserError(
            f"restore point {point.id} is striped, so its disk is made by upload, which takes no security "
            f"type {profile.security_type} (Azure: not a supported create option); restore it with "
            "--security-type Standard."
        )
    return CreationData(
        create_option="Upload",
        upload_size_bytes=point.size_bytes,
        logical_sector_size=512 if profile.sku in V2_SKUS else None,
    )


def disk_body(
    point: PointInfo, profile: DiskProfile, request: RestoreRequest, creation: CreationData
) -> Disk:
    """The create request: `creation` (Import or Upload) with `profile`."""
    capabilities = SupportedCapabilities(
        architecture=profile.architecture or None,
        accelerated_network=profile.accelerated_network,
        disk_controller_types=profile.disk_controller_types or None,
    )
    des = request.overrides.disk_encryption_set_id
    return Disk(
        location=request.location,
        sku=DiskSku(name=profile.sku),
        zones=[profile.zone] if profile.zone else None,
        tags=profile.tags or None,
        os_type=profile.os_type or None,
        hyper_v_generation=profile.hyper_v_generation or None,
        supported_capabilities=capabilities if any(capabilities.as_dict().values()) else None,
        security_profile=DiskSecurityProfile(security_type=profile.security_type)
        if profile.security_type
        else None,
        network_access_policy=profile.network_access_policy or None,
        public_network_access=profile.public_network_access or None,
        encryption=Encryption(type=CUSTOMER_KEY, disk_encryption_set_id=des) if des else None,
        creation_data=creation,
        data_access_auth_mode=request.data_access_auth_mode or point.data_access_auth_mode or None,
    )


def subscription_of(subscription_id: str | None, listing: Listing) -> str:
    """The given subscription, else the one of the source disk the target records (UserError without)."""
    if subscription_id:
        return subscription_id
    disk_id = listing.source_disk_id or ""
    parts = disk_id.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return parts[2]
    raise UserError(
        "--subscription-id is required (the target does not name its source disk's subscription)."
    )


async def _check_encryption_set(source: ArmSource, des_id: str, location: str) -> None:
    """The set exists and is in the new disk's region (UserError otherwise)."""
    rid = arm_ids.parse(des_id)
    with source.arm_errors(f"read disk encryption set {des_id}"):
        des = await source.compute(rid.subscription_id).disk_encryption_sets.get(rid.resource_group, rid.name)
    where = (des.location or "").replace(" ", "").lower()
    if where != location.replace(" ", "").lower():
        raise UserError(
            f"the disk encryption set {des_id} is in {des.location}, and the disk is restored in "
            f"{location}: customer-managed keys do not cross regions; give a set in {location}."
        )


@dataclass(frozen=True)
class PreparedRestore:
    """A restore checked in full (nothing created yet): what `create` sends, and what it reports."""

    request: RestoreRequest
    point: PointInfo
    profile: DiskProfile
    subscription: str
    disk_id: str
    body: Disk


async def prepare(config: Config, request: RestoreRequest) -> PreparedRestore:
    """Every check of the module docstring, before anything is created (UserError: exit 2)."""
    async with PageBlobTarget(config, command="restore") as target:
        listing = await list_points(target)
        point = select(listing.points, request.point)
        profile = planned_profile(point, request.overrides)
        if point.stripe_snapshots:
            creation = upload_creation(point, profile)
            StripedPoint(target, point)  # its stripes are whole
        await check_footer(target, point)
        url = target.url
    subscription = subscription_of(request.subscription_id, listing)
    if not point.stripe_snapshots:
        account_id = request.storage_account_id or storage_account_id(
            url, subscription, request.resource_group
        )
        creation = import_creation(point, profile, source_uri(url, point.id), account_id)
    body = disk_body(point, profile, request, creation)
    disk_id = (
        f"/subscriptions/{subscription}/resourceGroups/{request.resource_group}"
        f"/providers/Microsoft.Compute/disks/{request.disk_name}"
    )
    source = await ArmSource.open(config)
    async with source:
        if request.overrides.disk_encryption_set_id:
            await _check_encryption_set(source, request.overrides.disk_encryption_set_id, request.location)
        with source.arm_errors(f"read disk {disk_id}"), contextlib.suppress(ResourceNotFoundError):
            await source.compute(subscription).disks.get(request.resource_group, request.disk_name)
            raise UserError(f"the disk {disk_id} already exists; choose another --disk-name.")
    return PreparedRestore(request, point, profile, subscription, disk_id, body)


async def create(
    config: Config, prepared: PreparedRestore, on_message: Callable[[str], None] = lambda _: None
) -> RestoreResult:
    """Create the disk `prepare` checked, by Import (a striped restore point is made by upload:
    engine.striped_restore.make chooses); returns it once it exists (hydrated, for v2/Ultra)."""
    request, point, profile, disk_id = prepared.request, prepared.point, prepared.profile, prepared.disk_id
    source = await ArmSource.open(config)
    async with source:
        disks = source.compute(prepared.subscription).disks
        with source.arm_errors(f"create disk {disk_id}"):
            on_message(
                f"creating {disk_id} ({profile.sku}) from restore point {point.id} ({point.snapshot_name})"
            )
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT_SECONDS):
                    poller = await disks.begin_create_or_update(
                        request.resource_group, request.disk_name, prepared.body
                    )
                    disk = await poller.result()
                    while disk.completion_percent is not None and disk.completion_percent < 100:
                        on_message(f"{request.disk_name}: {disk.completion_percent:.0f} % hydrated")
                        await asyncio.sleep(COMPLETION_POLL_SECONDS)
                        disk = await disks.get(request.resource_group, request.disk_name)
            except TimeoutError:
                raise ReplicationError(
                    f"the disk {disk_id} was not ready within {RESTORE_TIMEOUT_SECONDS:.0f} s; "
                    "check it with `az disk show` before retrying."
                ) from None
    size = disk.disk_size_bytes or (disk.disk_size_gb or 0) * 1024**3
    return RestoreResult(
        disk.id or disk_id,
        point,
        profile,
        size,
        disk.data_access_auth_mode,
        request.overrides.disk_encryption_set_id,
    )
