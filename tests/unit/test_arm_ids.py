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
        ("", "not a managed disk, snapshot or virtual machine resource ID"),
        ("disk1", "not a managed disk, snapshot or virtual machine resource ID"),
        (DISK.lstrip("/"), "not a managed disk, snapshot or virtual machine resource ID"),
        (DISK + "/extra", "not a managed disk, snapshot or virtual machine resource ID"),
        (DISK.replace("Microsoft.Compute", "Microsoft.Storage"), "not a Microsoft.Compute resource ID"),
        (
            DISK.replace("/disks/", "/availabilitySets/"),
            "names a Microsoft.Compute/availabilitySets resource",
        ),
        (DISK + "/extra/x", "names a Microsoft.Compute/disks/extra resource"),
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


VM = f"/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachines/vm-1"
RPC = f"/subscriptions/{SUB}/resourceGroups/rg-1/providers/Microsoft.Compute/restorePointCollections/rpc"
DRP = f"{RPC}/restorePoints/rp-1/diskRestorePoints/os_22b4bdfe-6c54-4f72-84d8-85d8860f0c57"


def test_parses_a_vm_and_the_nested_restore_point_ids() -> None:
    vm = arm_ids.parse_source(VM)
    assert (vm.kind, vm.name, vm.parents) == ("vm", "vm-1", ())
    drp = arm_ids.parse(DRP.upper().replace("SUBSCRIPTIONS", "subscriptions"))
    assert (drp.kind, drp.parents) == ("disk_restore_point", ("RPC", "RP-1"))
    assert arm_ids.same_resource(str(drp), DRP)
    point = arm_ids.parse(f"{RPC}/restorePoints/rp-1")
    assert (point.kind, point.name, point.parents) == ("restore_point", "rp-1", ("rpc",))
    assert str(point) == f"{RPC}/restorePoints/rp-1"


@pytest.mark.parametrize("text", [DRP, f"{RPC}/restorePoints/rp-1"])
def test_a_restore_point_is_no_source(text: str) -> None:
    with pytest.raises(
        UserError, match="--source must be a managed disk, an incremental snapshot or a virtual"
    ):
        arm_ids.parse_source(text)


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
    st.sampled_from(["disks", "snapshots", "DISKS", "Snapshots", "virtualMachines", "VIRTUALMACHINES"]),
    st.from_regex(r"[A-Za-z0-9_\-.()]{0,89}[A-Za-z0-9_\-()]", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_\-.]{1,80}", fullmatch=True),
)
def test_every_valid_id_round_trips(rtype: str, group: str, name: str) -> None:
    text = f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/{rtype}/{name}"
    rid = arm_ids.parse(text)
    assert (rid.resource_group, rid.name, rid.kind) == (
        group,
        name,
        {"disks": "disk", "snapshots": "snapshot", "virtualmachines": "vm"}[rtype.lower()],
    )
    assert arm_ids.same_resource(str(rid), text)
