"""The failover-grade properties (core.disk_profile.DiskProfile) of a disk, snapshot or disk restore
point, read from azure-mgmt-compute's models, and which of them a restore point records.

Why apart from source.arm: ARM's models spell these properties in nested optional objects
(`supportedCapabilities`, `securityProfile`), and one reading of them serves disks, snapshots and
disk restore points alike ("Disks - Get", "Snapshots - Get", "Disk Restore Point - Get": the same
`osType`, `hyperVGeneration`, `supportedCapabilities`, `securityProfile`, `networkAccessPolicy`,
`publicNetworkAccess`). A snapshot's `sku` is where Azure keeps the snapshot (Standard_LRS for every
incremental one), not its disk's, and a snapshot has no zone, so the SKU, zone and tags come from
the disk only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from azure.mgmt.compute.models import Disk, DiskRestorePoint, Snapshot

from replicator.core.disk_profile import DiskProfile

_FROM_SNAPSHOT = (
    "os_type",
    "hyper_v_generation",
    "architecture",
    "accelerated_network",
    "disk_controller_types",
    "security_type",
)
"""What the source point itself says best: the disk as it was at that instant (an OS disk's type and
generation never change; a snapshot taken before a disk was moved to Trusted Launch is not one)."""


def _text(value: Any) -> str:
    """An SDK field that is an enum or text, as its plain text ("" when absent)."""
    return "" if value is None else str(getattr(value, "value", value))


def profile_of(resource: Disk | Snapshot | DiskRestorePoint) -> DiskProfile:
    """What `resource` says of the properties; SKU, zone and tags only for a disk (see above)."""
    caps = resource.supported_capabilities
    security = resource.security_profile
    profile = DiskProfile(
        os_type=_text(resource.os_type),
        hyper_v_generation=_text(resource.hyper_v_generation),
        architecture=_text(caps.architecture) if caps else "",
        accelerated_network=caps.accelerated_network if caps else None,
        disk_controller_types=_text(caps.disk_controller_types) if caps else "",
        security_type=_text(security.security_type) if security else "",
        network_access_policy=_text(resource.network_access_policy),
        public_network_access=_text(resource.public_network_access),
    )
    if not isinstance(resource, Disk):
        return profile
    return replace(
        profile,
        sku=_text(resource.sku.name) if resource.sku else "",
        zone=(resource.zones or [""])[0],
        tags=dict(resource.tags or {}),
    )


def recorded(disk: DiskProfile | None, point: DiskProfile) -> DiskProfile:
    """What a restore point records: the source point's boot properties (`_FROM_SNAPSHOT`, the disk's
    where the point says nothing) and the rest from the disk as the run found it; the point's alone
    when the disk is gone (then SKU, zone and tags are not known)."""
    if disk is None:
        return point
    own = {name: getattr(point, name) for name in _FROM_SNAPSHOT if getattr(point, name) not in ("", None)}
    return replace(disk, **own)
