"""The typed model of the emulated Microsoft.Compute surface: what routes/arm.py parses requests into and
serializes answers from, and what ArmBackend (backend.py, persisted in SQLite) returns.

Azure's sizes and limits are here too, as constants and as `ArmLimits`, which tests shrink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GIB = 1 << 30
MAX_DISK_GB = 32767  # Azure's largest Standard/Premium/StandardSSD disk (P80/E80/S80)
MAX_V2_DISK_GB = 65536  # Premium SSD v2 and Ultra Disk maximum
V2_SKUS = frozenset({"PremiumV2_LRS", "UltraSSD_LRS"})
SKUS = frozenset({"Standard_LRS", "Premium_LRS", "StandardSSD_LRS", *V2_SKUS})
SKU_TIERS = {
    "Standard_LRS": "Standard",
    "StandardSSD_LRS": "Standard",
    "Premium_LRS": "Premium",
    "PremiumV2_LRS": "Premium",
    "UltraSSD_LRS": "Ultra",
}
DATA_BLOB = "abcd"  # the blob name Azure uses behind every managed-disk SAS
DATA_ACCESS_AUTH_MODES = ("AzureActiveDirectory", "None")  # properties.dataAccessAuthMode (diskRPCommon.json)
DEFAULT_SAS_MAX_SECONDS = 24 * 3600  # cap on durationInSeconds (`--sas-max-seconds`)


@dataclass(frozen=True)
class ArmLimits:
    """Azure's documented limits and the emulator's timing knobs, injectable for tests."""

    sas_per_family: int = 5  # SAS URIs per incremental snapshot family at a time
    snapshots_per_window: int = 7  # incremental snapshots per disk ...
    snapshot_window_seconds: int = 300  # ... every five minutes
    snapshots_per_disk: int = 500  # incremental snapshots per disk in total
    pending_per_disk: int = 3  # PremiumV2/Ultra snapshots still in background copy, per disk
    completion_seconds: float = 30.0  # PremiumV2/Ultra snapshot completionPercent 0 -> 100
    sas_max_seconds: int = DEFAULT_SAS_MAX_SECONDS
    page_size: int = 10  # list page size: small on purpose, so clients must follow nextLink
    restore_points_per_window: int = 3  # restore point creates per VM ...
    restore_point_window_seconds: int = 3600  # ... per hour (429 beyond)
    restore_points_per_vm: int = 500  # restore points of one VM, across its collections
    collections_per_region: int = 10000  # restore point collections per subscription and region


@dataclass(frozen=True)
class DataLocation:
    account: str
    container: str
    blob: str = DATA_BLOB

    @classmethod
    def of(cls, unique_id: str) -> DataLocation:
        return cls(account="md-" + unique_id.replace("-", "")[:12], container=unique_id)


@dataclass(frozen=True)
class DiskProfile:
    """What a replacement disk needs to boot in place of its source, beyond sku, size, sector size
    and tags (issue 14's failover-grade properties): kept on disks, snapshots and disk restore
    points, and taken from the PUT body by an Import. None is "not given" in a parsed body; the
    backend (disk_profile.py) fills the defaults Azure answers with before it stores one."""

    os_type: str | None = None
    hyper_v_generation: str | None = None
    architecture: str | None = None  # supportedCapabilities.architecture
    accelerated_network: bool | None = None  # supportedCapabilities.acceleratedNetwork
    disk_controller_types: str | None = None  # supportedCapabilities.diskControllerTypes
    security_type: str | None = None  # securityProfile.securityType
    zones: tuple[str, ...] = ()  # disks only: Azure's snapshot has no zones
    network_access_policy: str | None = None
    public_network_access: str | None = None
    encryption_type: str | None = None
    disk_encryption_set_id: str | None = None


@dataclass(frozen=True)
class DiskSpec:
    """A parsed disk PUT body (validated by the backend, which knows the rules)."""

    location: str
    sku: str = "Standard_LRS"
    size_gb: int | None = None
    create_option: str = "Empty"
    logical_sector_size: int | None = None
    source_uri: str | None = None
    storage_account_id: str | None = None
    tags: dict[str, str] | None = None
    profile: DiskProfile = DiskProfile()
    data_access_auth_mode: str | None = None  # None: not given (ARM then omits the property)
    upload_size_bytes: int | None = None  # createOption Upload: the VHD's bytes, footer included


@dataclass(frozen=True)
class SnapshotSpec:
    """A parsed snapshot PUT body."""

    location: str
    source_resource_id: str
    create_option: str = "Copy"  # the only one the emulator supports
    incremental: bool = False
    sku: str | None = None  # none: Standard_LRS, where Azure keeps incremental snapshots
    tags: dict[str, str] | None = None
    profile: DiskProfile = DiskProfile()  # what is not given is the disk's
    data_access_auth_mode: str | None = None  # the snapshot's own, never its disk's (not documented)


@dataclass(frozen=True)
class DiskUpdate:
    """A parsed disk PATCH body: only what it names changes."""

    size_gb: int | None = None  # larger grows the disk, smaller is refused
    sku: str | None = None  # must be the disk's: changing it is refused
    tags: dict[str, str] | None = None  # replace the disk's tags
    data_access_auth_mode: str | None = None  # replace the disk's; the blob plane follows at once


@dataclass(frozen=True)
class Resource:
    """What a managed disk and a snapshot share: identity, placement, size, and whether a SAS is out."""

    id: str
    resource_group: str
    name: str
    location: str
    sku: str
    size_bytes: int
    sector_size: int
    unique_id: str
    family_id: str | None  # the incremental snapshot family: every disk has one, a full snapshot none
    time_created: datetime
    tags: dict[str, str]
    disk_state: str  # Attached, ReadyToUpload/ActiveUpload (arm/uploads.py), ActiveSAS, else Unattached
    profile: DiskProfile
    data_access_auth_mode: str | None  # AzureActiveDirectory: reads through a SAS need an Entra token

    @property
    def size_gb(self) -> int:
        return math.ceil(self.size_bytes / GIB)


@dataclass(frozen=True)
class Disk(Resource):
    create_option: str
    source_uri: str | None
    storage_account_id: str | None
    managed_by: str | None  # the VM it is attached to
    upload_size_bytes: int | None = None  # a disk created with createOption Upload


@dataclass(frozen=True)
class Snapshot(Resource):
    incremental: bool
    source_resource_id: str
    source_unique_id: str
    completion_percent: float
    provisioning_state: str = "Succeeded"  # Failed when its create failed (middleware/arm_faults.py)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_key: str | None  # opaque continuation for nextLink's $skiptoken
