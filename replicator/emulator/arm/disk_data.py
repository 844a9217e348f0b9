"""A managed disk's data in the blob plane: sizes and sector sizes, the VHD footer, grow and import.

A 512-byte-sector disk is a fixed VHD (data + 512-byte footer) and a 4096-byte-sector disk raw
data, in the page blob `DataLocation.of(unique_id)`. These rules touch only that blob, never the
ARM database, so they live apart from backend.py's disk, snapshot and grant rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

from replicator.emulator.arm import vhd
from replicator.emulator.arm.model import (
    GIB,
    MAX_DISK_GB,
    MAX_V2_DISK_GB,
    V2_SKUS,
    DataLocation,
    DiskSpec,
)
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.errors.blob import BlobError


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def sector_size(spec: DiskSpec) -> int:
    v2 = spec.sku in V2_SKUS
    sector = spec.logical_sector_size or (4096 if v2 else 512)
    if sector not in (512, 4096) or (sector == 4096 and not v2):
        raise arm_errors.invalid_parameter(
            target="creationData.logicalSectorSize",
            detail=f"Logical sector size {sector} is not supported for sku {spec.sku}: "
            "512 for every sku, 4096 only for PremiumV2_LRS and UltraSSD_LRS.",
        )
    return sector


def checked_size(sku: str, size_gb: int) -> int:
    limit = MAX_V2_DISK_GB if sku in V2_SKUS else MAX_DISK_GB
    if not 1 <= size_gb <= limit:
        raise arm_errors.invalid_parameter(
            target="diskSizeGB",
            detail=f"Disk size {size_gb} GB is not valid for sku {sku}: it must be between 1 and {limit} GB.",
        )
    return size_gb * GIB


def tail(sector: int) -> int:
    """Bytes after the data in the page blob: a VHD footer for 512-byte sectors, none for 4096."""
    return vhd.FOOTER_SIZE if sector == 512 else 0


class DiskData:
    """Creates, grows and imports disk blobs in the blob plane."""

    def __init__(self, blobs: BlobBackend) -> None:
        self.blobs = blobs

    def create_empty(
        self, where: DataLocation, sector: int, size: int, *, created: float, unique_id: str
    ) -> None:
        self.blobs.create_page_blob(where.account, where.container, where.blob, size + tail(sector))
        self.write_footer(where, sector, size, original=size, created=created, unique_id=unique_id)

    def write_footer(
        self, where: DataLocation, sector: int, size: int, *, original: int, created: float, unique_id: str
    ) -> None:
        if sector != 512:
            return
        footer = vhd.build_footer(
            size, original_size=original, created=utc(created), unique_id=uuid.UUID(unique_id).bytes
        )
        self.blobs.write_pages(where.account, where.container, where.blob, size, footer)

    def grow(
        self,
        where: DataLocation,
        sector: int,
        size: int,
        new_size: int,
        *,
        original: int,
        created: float,
        unique_id: str,
    ) -> None:
        """Resize the blob and move the VHD footer: clear the old one, write the new one at the end."""
        extra = tail(sector)
        self.blobs.resize_page_blob(where.account, where.container, where.blob, new_size + extra)
        if extra:
            self.blobs.clear_pages(where.account, where.container, where.blob, size, extra)
        self.write_footer(where, sector, new_size, original=original, created=created, unique_id=unique_id)

    def import_blob(self, where: DataLocation, spec: DiskSpec, sector: int, *, now: float) -> tuple[int, int]:
        """Copy-on-write from a blob (or blob snapshot) URL of an emulated storage account.

        Returns (disk size, original size): a larger diskSizeGB grows the import at once.
        """
        if not spec.source_uri or not spec.storage_account_id:
            raise arm_errors.invalid_parameter(
                target="creationData.sourceUri",
                detail="createOption Import requires creationData.sourceUri and "
                "creationData.storageAccountId.",
            )
        parts = urlsplit(spec.source_uri)
        path = [unquote(p) for p in parts.path.split("/") if p]
        if len(path) < 3:
            raise arm_errors.import_source_invalid(
                spec.source_uri, "expected a path-style blob URL /account/container/blob."
            )
        snapshot = parse_qs(parts.query).get("snapshot", [None])[0]
        ref = SnapshotRef(path[0], path[1], "/".join(path[2:]), snapshot)
        account_id = spec.storage_account_id.rstrip("/").split("/")
        if [a.lower() for a in account_id[-2:]] != ["storageaccounts", ref.account.lower()]:
            raise arm_errors.invalid_parameter(
                target="creationData.storageAccountId",
                detail=f"storageAccountId '{spec.storage_account_id}' is not the storage account "
                f"{ref.account} holding sourceUri.",
            )
        try:
            blob_size = self.blobs.blob_size(ref.account, ref.container, ref.blob, ref.snapshot)
        except BlobError as e:
            raise arm_errors.import_source_invalid(spec.source_uri, f"{e.code}.") from e
        extra = tail(sector)
        size = blob_size - extra
        if size <= 0 or size % sector:
            raise arm_errors.import_source_invalid(
                spec.source_uri,
                f"its size {blob_size} is not a whole number of {sector}-byte sectors"
                + (" plus a 512-byte VHD footer." if extra else "."),
            )
        wanted = size if spec.size_gb is None else checked_size(spec.sku, spec.size_gb)
        if wanted < size:
            raise arm_errors.import_source_invalid(
                spec.source_uri, f"it is larger than diskSizeGB {spec.size_gb}."
            )
        self.blobs.create_page_blob(where.account, where.container, where.blob, blob_size, source=ref)
        if wanted > size:
            self.grow(where, sector, size, wanted, original=size, created=now, unique_id=where.container)
        return wanted, size
