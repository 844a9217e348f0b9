"""The failover-grade disk record: its metadata codec and Azure's 8 KiB bound, override parsing, the
import rules `restore` applies before it creates anything, and a drill's disk name."""

from __future__ import annotations

import re

import pytest

from replicator.core.disk_profile import (
    GUEST_STATE_ONLY,
    DiskProfile,
    Overrides,
    parse_security_type,
    parse_tags,
    parse_zone,
)
from replicator.core.errors import UserError
from replicator.engine.drill import scratch_name
from replicator.target.restore_disk import FALLBACK_SKU, planned_profile
from replicator.target.restore_points import PointInfo
from replicator.target.state import (
    COMMIT_TAG_BYTES,
    METADATA_LIMIT_BYTES,
    RestorePoint,
    RestorePointMeta,
    State,
)

SUB = "0" * 8 + "-0000-0000-0000-" + "0" * 12
GROUP = "g" * 90
NAME = "n" * 80


def _id(kind: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Compute/{kind}/{NAME}"


FULL = DiskProfile(
    sku="StandardSSD_ZRS",
    os_type="Windows",
    hyper_v_generation="V2",
    architecture="Arm64",
    accelerated_network=False,
    disk_controller_types="SCSI, NVMe",
    security_type="TrustedLaunch",
    zone="3",
    network_access_policy="AllowPrivate",
    public_network_access="Disabled",
)


def _meta(profile: DiskProfile, reason: str = "r" * 400) -> RestorePointMeta:
    """Every field at its longest: Azure's name limits (resource group 90, disk and snapshot 80)."""
    return RestorePointMeta(
        source_disk_id=_id("disks"),
        source_disk_unique_id="u" * 36,
        snapshot_id=_id("snapshots"),
        snapshot_unique_id="u" * 36,
        snapshot_time="2026-12-03T13:00:00.123456+00:00",
        snapshot_name=NAME,
        size_bytes=8 * 1024**4,
        logical_sector_size=4096,
        mode="diff",
        reason=reason,
        base_snapshot_id=_id("snapshots"),
        data_access_auth_mode="AzureActiveDirectory",
        profile=profile,
    )


def _size(meta: dict[str, str]) -> int:
    return sum(len(k) + len(v) for k, v in meta.items())


def test_the_whole_record_round_trips() -> None:
    tags = {f"tag{i}": f"value {i} é" for i in range(15)}
    meta = _meta(FULL.__class__(**{**FULL.__dict__, "tags": tags}))
    encoded = meta.to_metadata()
    assert all(k.isascii() and v.isascii() for k, v in encoded.items())
    assert RestorePointMeta.from_metadata({k.upper(): v for k, v in encoded.items()}) == meta


def test_the_worst_case_stays_within_azures_8_kib_with_the_commit_tag() -> None:
    """50 tags of Azure's longest names and values cannot fit: they are left out and counted."""
    tags = {f"{i:02d}".ljust(512, "k"): "v" * 256 for i in range(50)}
    worst = _meta(DiskProfile(**{**FULL.__dict__, "tags": tags}))
    encoded = worst.to_metadata()
    assert _size(encoded) + COMMIT_TAG_BYTES <= METADATA_LIMIT_BYTES
    decoded = RestorePointMeta.from_metadata(encoded).profile
    assert decoded.tags == {} and decoded.tags_dropped == 50
    assert decoded.os_type == "Windows" and decoded.zone == "3"  # what boots the VM is always kept
    # Without tags, the longest record of every other field leaves most of the budget free.
    assert _size(_meta(FULL).to_metadata()) < METADATA_LIMIT_BYTES // 2


def test_a_reason_that_would_not_fit_is_clipped_not_refused() -> None:
    encoded = _meta(FULL, reason="x" * 10_000).to_metadata()
    assert _size(encoded) + COMMIT_TAG_BYTES <= METADATA_LIMIT_BYTES
    assert encoded["reason"].endswith("...")


def test_an_older_restore_point_records_nothing_and_restores_as_before() -> None:
    older = {"snapshot_id": _id("snapshots"), "size_bytes": "1049088", "logical_sector_size": "512"}
    meta = RestorePointMeta.from_metadata(older)
    assert meta.profile == DiskProfile()
    point = PointInfo.of(RestorePoint("2026-12-03T00:00:00.0000000Z", older), State())
    assert planned_profile(point, Overrides()).sku == FALLBACK_SKU
    assert planned_profile(point, Overrides(sku="Standard_LRS")).sku == "Standard_LRS"


def test_damaged_profile_values_read_as_not_recorded() -> None:
    meta = RestorePointMeta.from_metadata(
        {"disk_tags": "{not json", "disk_tags_dropped": "many", "disk_accelerated_network": "maybe"}
    )
    assert meta.profile == DiskProfile()


def _point(profile: DiskProfile, sector: int = 512) -> PointInfo:
    return PointInfo("p1", "s1", _id("snapshots"), "u", "", 1 << 30, sector, "full", "", True, "", profile)


def test_overrides_replace_only_what_they_name() -> None:
    recorded = DiskProfile(**{**FULL.__dict__, "tags": {"env": "prod", "app": "db"}})
    applied = Overrides(sku="Premium_LRS", zone="none", tags={"env": "dr"}).applied(recorded)
    assert (applied.sku, applied.zone) == ("Premium_LRS", "")
    assert applied.tags == {"env": "dr", "app": "db"}
    assert (applied.os_type, applied.hyper_v_generation, applied.security_type) == (
        "Windows",
        "V2",
        "TrustedLaunch",
    )
    assert Overrides(zone="2").applied(recorded).zone == "2"
    assert Overrides().applied(recorded) == recorded


@pytest.mark.parametrize(
    ("recorded", "chosen", "refused"),
    [
        ("", None, None),
        ("TrustedLaunch", None, None),
        ("ConfidentialVM_DiskEncryptedWithCustomerKey", None, "Azure Backup"),
        ("ConfidentialVM_DiskEncryptedWithPlatformKey", "", "Azure Backup"),  # no override rescues it
        ("ConfidentialVM_NonPersistedTPM", "TrustedLaunch", "Azure Backup"),
        (GUEST_STATE_ONLY, None, "--security-type TrustedLaunch"),
        (GUEST_STATE_ONLY, "TrustedLaunch", None),
        (GUEST_STATE_ONLY, "", None),
        ("FutureType", None, "cannot import"),
        ("FutureType", "", None),
    ],
)
def test_import_refusal_rules(recorded: str, chosen: str | None, refused: str | None) -> None:
    point = _point(DiskProfile(hyper_v_generation="V2", security_type=recorded))
    overrides = Overrides(security_type=chosen)
    if refused is None:
        assert planned_profile(point, overrides).security_type == (recorded if chosen is None else chosen)
    else:
        with pytest.raises(UserError, match=refused):
            planned_profile(point, overrides)


def test_trusted_launch_needs_generation_2_and_4096_sectors_need_a_v2_sku() -> None:
    with pytest.raises(UserError, match="generation V2"):
        planned_profile(
            _point(DiskProfile(hyper_v_generation="V1")), Overrides(security_type="TrustedLaunch")
        )
    with pytest.raises(UserError, match="PremiumV2_LRS"):
        planned_profile(_point(DiskProfile(sku="Premium_LRS"), sector=4096), Overrides())
    assert (
        planned_profile(_point(DiskProfile(sku="PremiumV2_LRS"), sector=4096), Overrides()).sku
        == "PremiumV2_LRS"
    )


def test_too_many_tags_after_the_merge_are_refused() -> None:
    recorded = DiskProfile(tags={f"s{i}": "v" for i in range(30)})
    with pytest.raises(UserError, match="at most 50"):
        planned_profile(_point(recorded), Overrides(tags={f"o{i}": "v" for i in range(21)}))


def test_override_parsing() -> None:
    assert parse_zone(" 2 ") == "2" and parse_zone("None") == "none"
    assert parse_security_type("standard") == "" and parse_security_type("trustedlaunch") == "TrustedLaunch"
    assert parse_tags("a=1, b = two words ,c=") == {"a": "1", "b": "two words", "c": ""}
    assert parse_tags("") == {}
    for bad, words in [
        (lambda: parse_zone("4"), "1, 2, 3 or none"),
        (lambda: parse_security_type("ConfidentialVM_NonPersistedTPM"), "cannot be imported"),
        (lambda: parse_tags("a"), "key=value"),
        (lambda: parse_tags("=1"), "key=value"),
        (lambda: parse_tags("a/b=1"), "not valid"),
        (lambda: parse_tags("k" * 513 + "=1"), "not valid"),
        (lambda: parse_tags("a=" + "v" * 257), "longer than 256"),
        (lambda: parse_tags(",".join(f"k{i}=v" for i in range(51))), "at most 50"),
    ]:
        with pytest.raises(ValueError, match=words):
            bad()


@pytest.mark.parametrize(
    "blob", ["replica.vhd", "vms/app/vm1-os.vhd", "a" * 300 + ".vhd", "weird name (1)!.vhd", "-.vhd"]
)
def test_a_drill_disk_name_is_valid_and_says_whose_it_is(blob: str) -> None:
    name = scratch_name(blob, "0123abcd")
    assert re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?", name), name
    assert name.startswith("drill-") and name.endswith("-0123abcd")
