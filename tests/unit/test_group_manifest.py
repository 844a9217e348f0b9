"""The group manifest codec (replicator.target.manifest): round trip, versions, refusals, group IDs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.consistency import LEVELS
from replicator.core.errors import UserError
from replicator.target import manifest as m

SUB = "00000000-0000-0000-0000-000000000001"
RP = (
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/restorePointCollections/c"
    "/restorePoints/rp1"
)

texts = st.text(min_size=0, max_size=30)
entries = st.builds(
    m.DiskEntry,
    name=st.text(min_size=1, max_size=20),
    role=st.sampled_from(["os", "data"]),
    lun=st.none() | st.integers(min_value=0, max_value=63),
    disk_id=texts,
    blob_url=texts,
    disk_restore_point_id=texts,
    restore_point=st.none() | texts,
).flatmap(
    lambda entry: st.sampled_from(
        [entry, m.DiskEntry(**{**entry.__dict__, "disk_restore_point_id": None, "snapshot_id": "snap"})]
    )
)
manifests = st.builds(
    m.GroupManifest,
    group_id=texts,
    vm_id=texts,
    vm_name=texts,
    vm_unique_id=texts,
    restore_point_id=texts,
    restore_point_time=texts,
    consistency_mode=texts,
    consistency=st.sampled_from(LEVELS),
    consistency_reasons=st.lists(texts, max_size=3).map(tuple),
    disks=st.lists(entries, max_size=4).map(tuple),
    not_captured=st.lists(st.tuples(texts, texts), max_size=2).map(tuple),
    created=texts,
)


@given(manifests)
def test_every_manifest_round_trips(manifest: m.GroupManifest) -> None:
    assert m.decode(m.encode(manifest), "x") == manifest


def _manifest(*committed: str | None) -> m.GroupManifest:
    disks = tuple(
        m.DiskEntry(
            f"d{i}",
            "os" if i == 0 else "data",
            None if i == 0 else i,
            f"id{i}",
            f"u{i}",
            f"drp{i}",
            restore_point=point,
        )
        for i, point in enumerate(committed)
    )
    return m.GroupManifest("g", "vm", "vm", "guid", RP, "t", "CrashConsistent", "crash-consistent", (), disks)


def test_a_group_is_complete_when_every_disk_committed() -> None:
    group = _manifest(None, "2025-01-01T00:00:00.0000000Z", None)
    assert not group.complete and group.missing == ["d0", "d2"]
    group = group.committed("d0", "a").committed("d2", "b")
    assert group.complete and group.missing == []
    assert [d.restore_point for d in group.disks] == ["a", "2025-01-01T00:00:00.0000000Z", "b"]
    with pytest.raises(KeyError):
        group.committed("nope", "c")


def test_the_document_says_committed_and_the_version() -> None:
    doc = json.loads(m.encode(_manifest(None, "p")))
    assert (doc["format"], doc["version"]) == ("replicator-vm-group", 1)
    assert [(d["committed"], d["restore_point"]) for d in doc["disks"]] == [(False, None), (True, "p")]
    assert doc["restore_point"]["id"] == RP and _manifest().restore_point_name == "rp1"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.update(version=2), "format version 2; this replicator reads version 1"),
        (lambda d: d.update(format="other"), "not a replicator group manifest"),
        (lambda d: d.update(consistency="perfect"), "cannot be read"),
        (lambda d: d["disks"][0].update(committed=True), "cannot be read"),
        (lambda d: d["disks"][0].update(lun=-1), "cannot be read"),
        (lambda d: d["disks"][0].update(role="swap"), "cannot be read"),
        (lambda d: d.pop("vm"), "cannot be read"),
        (lambda d: d["disks"][0].update(snapshot_id="s"), "cannot be read"),
        (lambda d: d["disks"][0].update(disk_restore_point_id=None), "cannot be read"),
    ],
)
def test_what_this_version_cannot_read_is_bad_input_naming_the_blob(change, says: str) -> None:
    doc = json.loads(m.encode(_manifest(None)))
    change(doc)
    with pytest.raises(UserError, match=says) as caught:
        m.decode(json.dumps(doc).encode(), "https://a/c/p/.groups/g.json")
    assert "https://a/c/p/.groups/g.json" in str(caught.value)


@pytest.mark.parametrize("data", [b"", b"[]", b"\xff", b'{"format": "replicator-vm-group"'])
def test_garbage_is_bad_input(data: bytes) -> None:
    with pytest.raises(UserError, match="cannot be read"):
        m.decode(data, "x")


def test_group_ids_sort_by_time_and_ignore_the_id_case() -> None:
    early = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    late = datetime(2025, 1, 1, 13, 0, 0, tzinfo=timezone(timedelta(hours=2)))  # 11:00 UTC
    assert m.group_id(RP, early).startswith("20250101T120000Z-")
    assert m.group_id(RP, late) < m.group_id(RP, early)
    assert m.group_id(RP, early) == m.group_id(RP.upper() + "/", early)
    assert m.group_id(RP, early) != m.group_id(RP + "x", early)
    assert m.manifest_name("g1") == ".groups/g1.json"
