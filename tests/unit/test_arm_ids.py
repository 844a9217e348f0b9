"""Parsing of disk and snapshot resource IDs: what ARM accepts, and one-sentence UserErrors for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core import arm_ids
from replicator.core.errors import UserError

SUB = "00000000-0000-0000-0000-000000000001"
DISK = f"/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Compute/disks/data.disk_1"


def test_parses_a_disk_id() -> None:
    rid = arm_ids.parse(DISK)
    assert (rid.subscription_id, rid.resource_group, rid.kind, rid.name) == (
        SUB,
        "rg-1",
        "disk",
        "data.disk_1",
    )
    assert str(rid) == DISK


def test_parses_a_snapshot_id_case_insensitively_and_keeps_the_spelling() -> None:
    text = f"  /SUBSCRIPTIONS/{SUB}/resourcegroups/My(RG)/PROVIDERS/microsoft.compute/Snapshots/Snap-A/ "
    rid = arm_ids.parse(text)
    assert (rid.resource_group, rid.kind, rid.name) == ("My(RG)", "snapshot", "Snap-A")
    assert (
        str(rid) == f"/subscriptions/{SUB}/resourceGroups/My(RG)/providers/Microsoft.Compute/snapshots/Snap-A"
    )
    assert rid.key == str(rid).casefold()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not a managed disk or snapshot resource ID"),
        ("disk1", "not a managed disk or snapshot resource ID"),
        (DISK.lstrip("/"), "not a managed disk or snapshot resource ID"),
        (DISK + "/extra", "not a managed disk or snapshot resource ID"),
        (DISK.replace("Microsoft.Compute", "Microsoft.Storage"), "not a Microsoft.Compute resource ID"),
        (DISK.replace("/disks/", "/virtualMachines/"), "names a Microsoft.Compute/virtualMachines resource"),
        (DISK.replace(SUB, "my-subscription"), "is not a GUID"),
        (DISK.replace("rg-1", "rg."), "not a valid Azure resource group name"),
        (DISK.replace("data.disk_1", "bad name"), "is not valid"),
        (DISK.replace("data.disk_1", "x" * 81), "is not valid"),
    ],
)
def test_rejects_other_text_with_one_sentence_naming_the_expected_form(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as caught:
        arm_ids.parse(text)
    message = str(caught.value)
    assert fragment in message
    assert message.endswith(".")
    assert "\n" not in message


def test_same_resource_ignores_case_and_a_trailing_slash() -> None:
    assert arm_ids.same_resource(DISK, DISK.upper() + "/")
    assert not arm_ids.same_resource(DISK, DISK + "2")
    assert not arm_ids.same_resource(DISK, None)
    assert not arm_ids.same_resource(None, None)


@given(st.text())
def test_random_text_raises_nothing_but_user_error(text: str) -> None:
    try:
        rid = arm_ids.parse(text)
    except UserError:
        return
    assert arm_ids.parse(str(rid)) == rid


@given(
    st.sampled_from(["disks", "snapshots", "DISKS", "Snapshots"]),
    st.from_regex(r"[A-Za-z0-9_\-.()]{0,89}[A-Za-z0-9_\-()]", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_\-.]{1,80}", fullmatch=True),
)
def test_every_valid_id_round_trips(rtype: str, group: str, name: str) -> None:
    text = f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/{rtype}/{name}"
    rid = arm_ids.parse(text)
    assert (rid.resource_group, rid.name, rid.kind) == (
        group,
        name,
        "disk" if rtype.lower() == "disks" else "snapshot",
    )
    assert arm_ids.same_resource(str(rid), text)
