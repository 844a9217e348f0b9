"""What a striped restore point's disk is created with (target.restore_disk.upload_creation): Upload of
the export, footer included, and a refusal (UserError, nothing created) for what Upload cannot take."""

from __future__ import annotations

import pytest

from replicator.core.disk_profile import DiskProfile
from replicator.core.errors import UserError
from replicator.target.restore_disk import MAX_UPLOAD_BYTES, MIN_UPLOAD_BYTES, upload_creation
from replicator.target.restore_points import PointInfo

TIB = 1024**4


def point(size: int = 16 * TIB + 512, sector: int = 512) -> PointInfo:
    return PointInfo(
        id="2026-01-01T00:00:00.0000000Z", snapshot_name="s", snapshot_id="", snapshot_unique_id="",
        snapshot_time="", size_bytes=size, logical_sector_size=sector, mode="full", reason="",
        base_of_next_diff=False, stripe_snapshots=("t1", "t2"),
    )  # fmt: skip


def test_the_documented_bounds() -> None:
    assert (MIN_UPLOAD_BYTES, MAX_UPLOAD_BYTES) == (20972032, 35183298347520)  # diskRPCommon.json


@pytest.mark.parametrize("sku", ["Standard_LRS", "PremiumV2_LRS"])
def test_upload_of_the_whole_export(sku: str) -> None:
    creation = upload_creation(point(), DiskProfile(sku=sku))
    assert (creation.create_option, creation.upload_size_bytes) == ("Upload", 16 * TIB + 512)
    assert creation.source_uri is None and creation.storage_account_id is None
    assert creation.logical_sector_size == (512 if sku == "PremiumV2_LRS" else None)


@pytest.mark.parametrize(
    ("given", "profile", "why"),
    [
        (point(sector=4096), DiskProfile(), "4096-byte sectors"),
        (point(size=MAX_UPLOAD_BYTES + 512), DiskProfile(), "uploadSizeBytes"),
        (point(), DiskProfile(security_type="TrustedLaunch"), "--security-type Standard"),
    ],
)
def test_what_upload_cannot_take_is_refused(given: PointInfo, profile: DiskProfile, why: str) -> None:
    with pytest.raises(UserError, match=why):
        upload_creation(given, profile)
