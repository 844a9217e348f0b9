"""What a replacement disk needs of its source, and the rules of giving it to an imported disk.

Why: a replica is worth the disk it gives back, and a disk that lacks its source's OS type, Hyper-V
generation, SKU or zone does not boot the VM it replaces, or comes back slower or dearer than it was.
So each restore point records its source disk's `DiskProfile` (target.state writes it into the
restore point's metadata, the one codec), and `restore` gives it to the new disk unless an override
says otherwise (`Overrides`, parsed from the command line here so bad values exit 2 before anything
is created).

Pure (no I/O). The values are ARM's strings as ARM answered them; "" (None for a flag) means not
recorded: a restore point of an older version, or a property the source did not carry.

Import rules (Azure's, for `createOption: Import` of a VHD; docs/runbook.md "Restore for failover"):
- a Trusted Launch disk imports with `securityProfile.securityType: TrustedLaunch` (Azure lists
  Import among its create options); its VM guest state (vTPM, UEFI variables) is not in the restore
  point, so the new disk starts with a fresh one;
- a confidential VM disk (`ConfidentialVM_*`) cannot: Azure needs `ImportSecure` with the VM guest
  state blob (`securityDataUri`), which the source's data plane does not export with the disk's bytes.
  `refusal` names such a security type before anything is created; only the guest-state-only type
  (its data not encrypted with that state) may be restored as TrustedLaunch or Standard instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from replicator.core.errors import UserError

TRUSTED_LAUNCH = "TrustedLaunch"
IMPORTABLE_SECURITY_TYPES = ("", TRUSTED_LAUNCH)
"""Security types a disk created with createOption Import may carry ("" is none, a Standard disk)."""
ZONES = ("1", "2", "3")
NO_ZONE = "none"
GUEST_STATE_ONLY = "ConfidentialVM_VMGuestStateOnlyEncryptedWithPlatformKey"
"""The one confidential type whose disk data is not encrypted with the VM guest state."""
MAX_TAGS = 50
"""Azure: a resource carries at most 50 tags ("Use tags to organize your Azure resources")."""
_TAG_NAME_FORBIDDEN = re.compile(r"[<>%&\\?/]")


@dataclass(frozen=True)
class DiskProfile:
    """A source disk's failover-grade properties, as the restore point records them."""

    sku: str = ""  # the disk's (a snapshot's own SKU is where Azure stores it, not the disk's)
    os_type: str = ""  # Windows | Linux; "" a data disk
    hyper_v_generation: str = ""  # V1 | V2
    architecture: str = ""  # supportedCapabilities.architecture: x64 | Arm64
    accelerated_network: bool | None = None  # supportedCapabilities.acceleratedNetwork
    disk_controller_types: str = ""  # supportedCapabilities.diskControllerTypes: "SCSI, NVMe"
    security_type: str = ""  # securityProfile.securityType
    zone: str = ""  # the disk's availability zone, "" regional
    tags: dict[str, str] = field(default_factory=dict)
    tags_dropped: int = 0  # tags not recorded: they did not fit the restore point's metadata
    network_access_policy: str = ""  # AllowAll | DenyAll | AllowPrivate
    public_network_access: str = ""  # Enabled | Disabled

    def refusal(self, chosen: str) -> str | None:
        """Why this recorded disk cannot be imported with security type `chosen` (the recorded one
        or an override): one sentence saying what to do, or None."""
        if self.security_type in IMPORTABLE_SECURITY_TYPES:
            return None
        if self.security_type == GUEST_STATE_ONLY:
            if chosen in IMPORTABLE_SECURITY_TYPES:
                return None
            return (
                f"the source is a confidential VM disk (securityType {self.security_type}), which Azure "
                "creates only with createOption ImportSecure and its VM guest state, which the restore "
                "point does not hold; its data is not encrypted with that state, so restore it with "
                "--security-type TrustedLaunch (or Standard) for a VM that is not confidential."
            )
        if self.security_type.startswith("ConfidentialVM"):
            return (
                f"the source is a confidential VM disk (securityType {self.security_type}) whose data "
                "is encrypted with its VM guest state, which Azure imports only with createOption "
                "ImportSecure and which the restore point does not hold; recover that VM with a "
                "service that keeps its guest state (Azure Backup), not from this replica."
            )
        if chosen != self.security_type:
            return None
        return (
            f"the source disk has securityType {self.security_type!r}, which this version cannot "
            "import; restore it with --security-type Standard or --security-type TrustedLaunch."
        )


@dataclass(frozen=True)
class Overrides:
    """What `restore` and `drill` were told instead of the recorded profile; None: keep the recorded."""

    sku: str | None = None
    zone: str | None = None  # "1".."3", or NO_ZONE for a regional disk
    security_type: str | None = None  # "" (Standard) or TrustedLaunch
    tags: dict[str, str] = field(default_factory=dict)  # merged over the recorded tags
    disk_encryption_set_id: str | None = None

    def applied(self, recorded: DiskProfile) -> DiskProfile:
        """The profile the new disk gets: the recorded one, each given override replacing its value."""
        zone = recorded.zone if self.zone is None else ("" if self.zone == NO_ZONE else self.zone)
        return DiskProfile(
            sku=self.sku or recorded.sku,
            os_type=recorded.os_type,
            hyper_v_generation=recorded.hyper_v_generation,
            architecture=recorded.architecture,
            accelerated_network=recorded.accelerated_network,
            disk_controller_types=recorded.disk_controller_types,
            security_type=recorded.security_type if self.security_type is None else self.security_type,
            zone=zone,
            tags=recorded.tags | self.tags,
            tags_dropped=recorded.tags_dropped,
            network_access_policy=recorded.network_access_policy,
            public_network_access=recorded.public_network_access,
        )


def parse_zone(text: str) -> str:
    """`--zone`: 1, 2, 3 or none (a regional disk: the source's zone may not exist in the target region)."""
    value = text.strip().lower()
    if value not in (*ZONES, NO_ZONE):
        raise ValueError(f"--zone must be 1, 2, 3 or none, not {text!r}")
    return value


def parse_security_type(text: str) -> str:
    """`--security-type`: Standard (none: "") or TrustedLaunch, the two that Import can carry."""
    value = {"standard": "", TRUSTED_LAUNCH.lower(): TRUSTED_LAUNCH}.get(text.strip().lower())
    if value is None:
        raise ValueError(
            f"--security-type must be Standard or TrustedLaunch, not {text!r} (a confidential VM disk "
            "cannot be imported)"
        )
    return value


def parse_tags(text: str) -> dict[str, str]:
    """`--tags key=value,...`: Azure's tag rules (at most 50; a name of 1-512 characters without
    < > % & \\ ? /, a value of at most 256), so a bad tag exits 2 instead of failing the create."""
    tags: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ValueError(f"--tags takes key=value pairs separated by commas, not {item!r}")
        if len(name) > 512 or _TAG_NAME_FORBIDDEN.search(name):
            raise ValueError(f"tag name {name!r} is not valid: 1-512 characters, none of < > % & \\ ? /")
        if len(value) > 256:
            raise ValueError(f"the value of tag {name!r} is longer than 256 characters")
        tags[name] = value
    if len(tags) > MAX_TAGS:
        raise ValueError(f"--tags gives {len(tags)} tags; Azure allows at most {MAX_TAGS} on a disk")
    return tags


def check_tag_count(profile: DiskProfile) -> None:
    """The merged tags (recorded and --tags) within Azure's limit, before anything is created."""
    if len(profile.tags) > MAX_TAGS:
        raise UserError(
            f"the new disk would carry {len(profile.tags)} tags (the source's and --tags); Azure allows "
            f"at most {MAX_TAGS}: give fewer with --tags."
        )
