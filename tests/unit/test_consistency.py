"""The consistency of a VM restore point (replicator.core.consistency): Azure's rules, case by case."""

from __future__ import annotations

import pytest

from replicator.core.consistency import (
    APPLICATION_CONSISTENT,
    BEST_EFFORT,
    CRASH_CONSISTENT,
    FILE_SYSTEM_CONSISTENT,
    DiskFacts,
    azure_boost_size,
    judge,
    left_out,
)

OS = DiskFacts("os", "os", "Premium_LRS", "ReadOnly")
DATA1 = DiskFacts("data1", "data", "Premium_LRS", "None")
DATA2 = DiskFacts("data2", "data", "StandardSSD_LRS", None)


def test_a_crash_consistent_restore_point_of_plain_disks_is_crash_consistent() -> None:
    result = judge("CrashConsistent", "Standard_D4s_v5", [OS, DATA1, DATA2])
    assert (result.level, result.reasons) == (CRASH_CONSISTENT, ())


@pytest.mark.parametrize(
    ("disk", "says"),
    [
        (DiskFacts("d", "data", "PremiumV2_LRS", "None"), "d is a Premium SSD v2 disk"),
        (DiskFacts("d", "data", "UltraSSD_LRS", "None"), "d is an Ultra Disk"),
        (DiskFacts("d", "data", "Premium_LRS", "ReadWrite"), "d has read/write host caching"),
        (DiskFacts("d", "os", "Premium_LRS", "readwrite"), "d has read/write host caching"),
        (
            DiskFacts("d", "data", "Premium_LRS", "None", write_accelerator=True),
            "d has the write accelerator",
        ),
    ],
)
def test_a_disk_azure_does_not_cover_makes_it_best_effort(disk: DiskFacts, says: str) -> None:
    result = judge("CrashConsistent", "Standard_D4s_v5", [OS, disk])
    assert result.level == BEST_EFFORT
    assert len(result.reasons) == 1 and result.reasons[0].startswith(says)


def test_every_reason_is_given_in_disk_order() -> None:
    disks = [
        DiskFacts("os", "os", "Premium_LRS", "ReadWrite"),
        DiskFacts("v2", "data", "PremiumV2_LRS", "None", write_accelerator=True),
    ]
    result = judge("CrashConsistent", None, disks)
    assert [r.split(" ")[0] for r in result.reasons] == ["os", "v2"]


@pytest.mark.parametrize(
    ("size", "boost"),
    [
        ("Standard_D4s_v6", True),
        ("Standard_E16ds_v6", True),
        ("Standard_E8-4ds_v6", True),
        ("Standard_D4as_v7", True),
        ("Standard_F4alds_v7", True),
        ("standard_d4s_v7", True),
        ("Standard_D4as_v6", False),  # AMD v6: not named
        ("Standard_D4ps_v6", False),  # Arm: not named
        ("Standard_D4s_v5", False),
        ("Standard_B1s", False),
        ("", False),
        (None, False),
    ],
)
def test_azure_boost_sizes(size: str | None, boost: bool) -> None:
    assert azure_boost_size(size) is boost


def test_an_azure_boost_size_with_two_data_disks_is_best_effort_and_with_one_is_not() -> None:
    two = judge("CrashConsistent", "Standard_D4s_v6", [OS, DATA1, DATA2])
    assert (
        two.level == BEST_EFFORT and "Standard_D4s_v6" in two.reasons[0] and "2 data disks" in two.reasons[0]
    )
    assert judge("CrashConsistent", "Standard_D4s_v6", [OS, DATA1]).level == CRASH_CONSISTENT


@pytest.mark.parametrize(
    ("mode", "level"),
    [("ApplicationConsistent", APPLICATION_CONSISTENT), ("FileSystemConsistent", FILE_SYSTEM_CONSISTENT)],
)
def test_an_application_consistent_restore_point_is_what_azure_made_it(mode: str, level: str) -> None:
    # Azure supports these disks in application-consistent restore points: the crash rules do not apply.
    disks = [OS, DiskFacts("v2", "data", "PremiumV2_LRS", "ReadWrite")]
    assert judge(mode, "Standard_D4s_v6", disks).level == level


@pytest.mark.parametrize("mode", [None, "", "SomethingNew"])
def test_an_unknown_mode_is_best_effort_and_says_so(mode: str | None) -> None:
    result = judge(mode, None, [OS])
    assert result.level == BEST_EFFORT
    assert "not CrashConsistent" in result.reasons[0]


def test_a_disk_left_out_and_snapshotted_beside_the_restore_point_makes_it_best_effort() -> None:
    v2 = DiskFacts("v2", "data", "PremiumV2_LRS", "None", separate=True)
    result = judge("CrashConsistent", "Standard_D4s_v5", [OS, DATA1, v2])
    assert result.level == BEST_EFFORT
    assert result.reasons == (
        "v2 is a Premium SSD v2 disk, which Azure leaves out of crash-consistent restore points: it is "
        "copied from an incremental snapshot taken right after",
    )


@pytest.mark.parametrize(
    ("disk", "why"),
    [
        (DiskFacts("d", "data", "UltraSSD_LRS", None), "is an Ultra Disk"),
        (DiskFacts("d", "data", "PremiumV2_LRS", None), "is a Premium SSD v2 disk"),
        (DiskFacts("d", "data", "Premium_LRS", None, write_accelerator=True), "has the write accelerator on"),
        (DiskFacts("d", "data", "Premium_LRS", None, shared=True), "is a shared disk"),
        (DiskFacts("d", "data", "Premium_LRS", "ReadWrite"), None),
        (OS, None),
    ],
)
def test_left_out_names_the_disks_azure_excludes_from_crash_consistency(
    disk: DiskFacts, why: str | None
) -> None:
    assert left_out(disk) == why
