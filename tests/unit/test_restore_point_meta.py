"""The restore-point metadata codec (target.state.RestorePointMeta): the wire format of every restore point.

Restore points already in storage were written by a dict literal in pipeline.py; the codec must write
exactly those keys and values and read them back as `list`, `restore` and `status` always did.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from replicator.engine.base_choice import DiskIdentity, Job
from replicator.engine.job import _restore_point_meta
from replicator.source.arm import SnapshotInfo
from replicator.target.restore_points import PointInfo
from replicator.target.state import RestorePoint, RestorePointMeta, State

SUB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute"

WRITTEN_BY_THE_OLD_LITERAL = {
    "source_disk_id": f"{SUB}/disks/d",
    "source_disk_unique_id": "disk-guid",
    "snapshot_id": f"{SUB}/snapshots/s2",
    "snapshot_unique_id": "s2-guid",
    "snapshot_time": "2026-03-01T12:00:00.123456+00:00",
    "snapshot_name": "s2",
    "size_bytes": "1073742336",
    "logical_sector_size": "512",
    "mode": "diff",
    "reason": "diff from s1 (the last restore point)",
    "base_snapshot_id": f"{SUB}/snapshots/s1",
}
"""What pipeline._restore_point_metadata wrote for `job()` below, before the codec existed."""

ADDED_SINCE = {"data_access_auth_mode": ""}
"""Keys written after the old literal, at its end (issue 13: the source's dataAccessAuthMode; "" when
ARM reports none); restore points without them read as before."""


def snapshot(name: str, minute: int) -> SnapshotInfo:
    return SnapshotInfo(
        id=f"{SUB}/snapshots/{name}",
        name=name,
        unique_id=f"{name}-guid",
        family_id="fam",
        time_created=datetime(2026, 3, 1, 12, minute, 0, 123456, tzinfo=UTC),
        size_bytes=1024**3,
        logical_sector_size=512,
        incremental=True,
        completion_percent=None,
        source_resource_id=f"{SUB}/disks/d",
        source_unique_id="disk-guid",
    )


def test_the_pipeline_writes_what_the_old_literal_wrote() -> None:
    job = Job(snapshot("s2", 0), snapshot("s1", 0), "diff from s1 (the last restore point)")
    disk = DiskIdentity(f"{SUB}/disks/d", "disk-guid")
    meta = _restore_point_meta(job, disk, 1024**3 + 512, job.reason, "")
    written = WRITTEN_BY_THE_OLD_LITERAL | ADDED_SINCE
    assert meta.to_metadata() == written
    assert list(meta.to_metadata()) == list(written)  # the old keys in the same order, the new ones after


def test_a_restore_point_written_by_the_old_literal_reads_as_before() -> None:
    listed = WRITTEN_BY_THE_OLD_LITERAL | {"commit_id": "c0ffee"}  # the tag commit adds
    info = PointInfo.of(RestorePoint("2026-03-01T12:05:00.0000000Z", listed), State())
    assert (info.snapshot_name, info.snapshot_id, info.snapshot_unique_id) == (
        "s2",
        f"{SUB}/snapshots/s2",
        "s2-guid",
    )
    assert (info.snapshot_time, info.size_bytes, info.logical_sector_size) == (
        "2026-03-01T12:00:00.123456+00:00",
        1073742336,
        512,
    )
    assert (info.mode, info.reason) == ("diff", "diff from s1 (the last restore point)")
    assert info.snapshot_datetime == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert RestorePointMeta.from_metadata(listed).to_metadata() == WRITTEN_BY_THE_OLD_LITERAL | ADDED_SINCE
    assert info.data_access_auth_mode == ""


def test_missing_keys_read_as_the_old_readers_defaults() -> None:
    """A blob snapshot taken by hand carries the base blob's metadata, none of these keys."""
    assert RestorePointMeta.from_metadata({"replicator_schema": "1"}) == RestorePointMeta(
        "", "", "", "", "", "", 0, 512, "", "", ""
    )
    assert RestorePointMeta.from_metadata({"Snapshot_Unique_Id": "u"}).snapshot_unique_id == "u"


def test_a_full_copy_writes_empty_base_and_a_4096_byte_sector_size() -> None:
    snap = snapshot("s1", 0)
    snap = SnapshotInfo(**{**vars(snap), "logical_sector_size": 4096})
    meta = _restore_point_meta(Job(snap, None, "first copy"), None, 4096, "first copy", "").to_metadata()
    assert meta["base_snapshot_id"] == meta["source_disk_id"] == meta["source_disk_unique_id"] == ""
    assert (meta["mode"], meta["logical_sector_size"], meta["size_bytes"]) == ("full", "4096", "4096")


ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    st.builds(
        RestorePointMeta,
        source_disk_id=ascii_text,
        source_disk_unique_id=ascii_text,
        snapshot_id=ascii_text,
        snapshot_unique_id=ascii_text,
        snapshot_time=ascii_text,
        snapshot_name=ascii_text,
        size_bytes=st.integers(min_value=0, max_value=8 * 1024**4),
        logical_sector_size=st.sampled_from([512, 4096]),
        mode=st.sampled_from(["full", "diff"]),
        reason=ascii_text,
        base_snapshot_id=ascii_text,
        data_access_auth_mode=st.sampled_from(["", "None", "AzureActiveDirectory"]),
    )
)
def test_round_trip(meta: RestorePointMeta) -> None:
    wire = meta.to_metadata()
    assert all(isinstance(v, str) and v.isascii() for v in wire.values())
    assert RestorePointMeta.from_metadata(wire) == meta
    assert RestorePointMeta.from_metadata({k.upper(): v for k, v in wire.items()}) == meta


@given(st.text(max_size=20))
def test_non_ascii_text_travels_percent_encoded(name: str) -> None:
    """Metadata travels in HTTP headers: what is not ASCII is percent-encoded, as State's values are."""
    wire = RestorePointMeta(snapshot_name=name).to_metadata()
    assert wire["snapshot_name"].isascii()
    assert wire["snapshot_name"] == name or not name.isascii()


def test_stripe_snapshots_round_trip_and_are_absent_for_one_blob() -> None:
    one = RestorePointMeta(snapshot_name="s1", size_bytes=512)
    assert "stripe_snapshots" not in one.to_metadata()
    assert RestorePointMeta.from_metadata(one.to_metadata()).stripe_snapshots == ()
    times = ("2026-12-03T10:00:00.1000000Z", "2026-12-03T10:00:00.2000000Z")
    striped = RestorePointMeta(snapshot_name="s1", size_bytes=16 * 1024**4 + 512, stripe_snapshots=times)
    meta = striped.to_metadata()
    assert meta["stripe_snapshots"] == ",".join(times)
    assert RestorePointMeta.from_metadata(meta) == striped
