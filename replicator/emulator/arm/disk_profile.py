"""The rules of the failover-grade disk properties (`DiskProfile`): allowed values, defaults, what
a snapshot or a disk restore point takes from its disk, and what Azure refuses.

Why here and not in backend.py: the rules are pure (no rows, no blobs), a disk, a snapshot and a
disk restore point all go through them, and each refusal is one of Azure's answers:
- a security type with a create option that cannot carry it: Azure's own text, "Security Type
  'TrustedLaunch' is not supported for CreateOption 'Copy'. Supported create options are FromImage,
  Import, ImportSecure, UploadPreparedSecure." (a confidential VM type lists FromImage, ImportSecure,
  UploadPreparedSecure: Import cannot carry its VM guest state, ImportSecure can);
- Trusted launch and confidential VMs are generation 2 only (the Trusted launch docs): a security
  type needs hyperVGeneration V2 (code and text assumed);
- zones: one zone ("ResourceTypeNotSupportMultiZones"), 1 to 3, and only in a region with
  availability zones ("InvalidAvailabilityZone", ARM's text): ZONAL_REGIONS is the list of "Azure
  regions with availability zone support" (January 2025);
- a disk encryption set of another region (the set, its keys and its disks are in one region:
  "Server-side encryption of Azure managed disks", Restrictions; code and text assumed).
Values are compared case-insensitively and answered in Azure's spelling, as ARM's enums are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, fields, replace

from replicator.emulator.arm.encryption_sets import EncryptionSet
from replicator.emulator.arm.model import DiskProfile
from replicator.emulator.errors import arm as arm_errors

ZONAL_REGIONS = frozenset({
    "brazilsouth", "canadacentral", "centralus", "eastus", "eastus2", "mexicocentral", "southcentralus",
    "usgovvirginia", "westus2", "westus3", "francecentral", "germanywestcentral", "italynorth",
    "northeurope", "norwayeast", "polandcentral", "spaincentral", "swedencentral", "switzerlandnorth",
    "uksouth", "westeurope", "israelcentral", "qatarcentral", "uaenorth", "southafricanorth",
    "australiaeast", "centralindia", "chinanorth3", "eastasia", "indonesiacentral", "japaneast",
    "japanwest", "koreacentral", "newzealandnorth", "southeastasia",
})  # fmt: skip
ZONES = ("1", "2", "3")

PLATFORM_KEY = "EncryptionAtRestWithPlatformKey"
_CUSTOMER_KEYS = ("EncryptionAtRestWithCustomerKey", "EncryptionAtRestWithPlatformAndCustomerKeys")
_CONFIDENTIAL = ("ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey",
                 "ConfidentialVM_DiskEncryptedWithPlatformKey", "ConfidentialVM_DiskEncryptedWithCustomerKey",
                 "ConfidentialVM_NonPersistedTPM")  # fmt: skip
_SECURE_OPTIONS = {
    "TrustedLaunch": ("FromImage", "Import", "ImportSecure", "UploadPreparedSecure"),
    **dict.fromkeys(_CONFIDENTIAL, ("FromImage", "ImportSecure", "UploadPreparedSecure")),
}
_VALUES = {
    "os_type": ("osType", ("Windows", "Linux")),
    "hyper_v_generation": ("hyperVGeneration", ("V1", "V2")),
    "architecture": ("supportedCapabilities.architecture", ("x64", "Arm64")),
    "security_type": ("securityProfile.securityType", tuple(_SECURE_OPTIONS)),
    "network_access_policy": ("networkAccessPolicy", ("AllowAll", "DenyAll")),
    "public_network_access": ("publicNetworkAccess", ("Enabled", "Disabled")),
    "encryption_type": ("encryption.type", (PLATFORM_KEY, *_CUSTOMER_KEYS)),
}
_CONTROLLERS = {"scsi": "SCSI", "nvme": "NVMe"}


def checked(
    given: DiskProfile,
    *,
    resource: str,
    location: str,
    create_option: str | None,
    encryption_set: Callable[[str], EncryptionSet],
) -> DiskProfile:
    """`given` validated, in Azure's spelling, with Azure's defaults filled in. `resource` is
    "Microsoft.Compute/disks/NAME" (for messages); `create_option` is None for what copies a disk's
    profile (a snapshot), whose security type the disk already carried."""
    profile = replace(given, **{name: _canonical(name, getattr(given, name)) for name in _VALUES})
    profile = replace(profile, disk_controller_types=_controllers(profile.disk_controller_types))
    if profile.security_type is not None:
        supported = _SECURE_OPTIONS[profile.security_type]
        if create_option is not None and create_option not in supported:
            raise arm_errors.security_type_create_option(
                security_type=profile.security_type,
                create_option=create_option,
                supported=", ".join(supported),
            )
        if profile.hyper_v_generation != "V2":
            raise arm_errors.trusted_launch_needs_v2(security_type=profile.security_type)
    check_zones(profile.zones, resource, location)
    return replace(
        profile,
        network_access_policy=profile.network_access_policy or "AllowAll",
        public_network_access=profile.public_network_access or "Enabled",
        encryption_type=_encryption_type(profile, location, encryption_set),
    )


def of_snapshot(disk: DiskProfile, given: DiskProfile) -> DiskProfile:
    """A snapshot's profile before `checked`: what its own PUT body gives, else its disk's; network
    access is its own (default AllowAll); no zones (Azure's snapshot has none). Assumed: Azure
    documents the snapshot's properties, not which it copies from the disk."""
    base = replace(disk, zones=(), network_access_policy=None, public_network_access=None)
    own = {f.name: getattr(given, f.name) for f in fields(given) if f.name != "zones"}
    return replace(base, **{name: value for name, value in own.items() if value is not None})


def of_restore_point(disk: DiskProfile) -> DiskProfile:
    """A disk restore point's: its disk's, without zones and encrypted with the platform's key ("The
    encryption of source disk won't be enabled on the restore point": Support matrix for VM restore
    points)."""
    return replace(disk, zones=(), encryption_type=PLATFORM_KEY, disk_encryption_set_id=None)


def dumps(profile: DiskProfile) -> str:
    return json.dumps(asdict(profile))


def loads(text: str) -> DiskProfile:
    values = json.loads(text)
    return DiskProfile(**{**values, "zones": tuple(values["zones"])})


def _canonical(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    target, allowed = _VALUES[name]
    spelled = {choice.lower(): choice for choice in allowed}.get(value.lower())
    if spelled is None:
        if value.lower() == "allowprivate":
            detail = "networkAccessPolicy AllowPrivate needs a disk access (diskAccessId), not emulated."
        else:
            detail = f"'{value}' is not a valid {target}: one of {', '.join(allowed)}."
        raise arm_errors.invalid_parameter(target=target, detail=detail)
    return spelled


def _controllers(value: str | None) -> str | None:
    """diskControllerTypes is one string: "SCSI", "NVMe" or "SCSI, NVMe"."""
    if value is None:
        return None
    parts = [part.strip().lower() for part in value.split(",")]
    if not parts or any(part not in _CONTROLLERS for part in parts) or len(set(parts)) != len(parts):
        raise arm_errors.invalid_parameter(
            target="supportedCapabilities.diskControllerTypes",
            detail=f"'{value}' is not a valid diskControllerTypes: SCSI, NVMe, or 'SCSI, NVMe'.",
        )
    return ", ".join(_CONTROLLERS[part] for part in parts)


def check_zones(zones: tuple[str, ...], resource: str, location: str) -> None:
    """One zone, 1 to 3, in a region with availability zones (disks and VMs alike)."""
    if not zones:
        return
    if len(zones) > 1:
        raise arm_errors.multiple_zones(type=resource.split("/")[1], zones=",".join(zones))
    region = location.replace(" ", "").lower()
    if region not in ZONAL_REGIONS or zones[0] not in ZONES:
        raise arm_errors.invalid_zone(
            zones=zones[0],
            resource=resource,
            location=region,
            supported=",".join(ZONES) if region in ZONAL_REGIONS else "",
        )


def _encryption_type(
    profile: DiskProfile, location: str, encryption_set: Callable[[str], EncryptionSet]
) -> str:
    """The set's type when a set is named (its region must be the resource's), else platform keys."""
    if profile.disk_encryption_set_id is None:
        if profile.encryption_type in _CUSTOMER_KEYS:
            raise arm_errors.invalid_parameter(
                target="encryption.diskEncryptionSetId",
                detail=f"encryption.type {profile.encryption_type} needs encryption.diskEncryptionSetId.",
            )
        return PLATFORM_KEY
    des = encryption_set(profile.disk_encryption_set_id)
    if des.location.replace(" ", "").lower() != location.replace(" ", "").lower():
        raise arm_errors.encryption_set_elsewhere(des=des.id, des_location=des.location, location=location)
    if profile.encryption_type == PLATFORM_KEY or des.encryption_type not in _CUSTOMER_KEYS:
        raise arm_errors.invalid_parameter(
            target="encryption.type",
            detail=f"encryption.type {profile.encryption_type or des.encryption_type} cannot use disk "
            f"encryption set {des.id} (of type {des.encryption_type}).",
        )
    return profile.encryption_type or des.encryption_type
