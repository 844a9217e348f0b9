"""The emulator's page store and blob backend, driven directly (no HTTP), against a dumb page model."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.blob.page_blobs import TIB
from replicator.emulator.blob.store import OVERLAPPING, PageStore
from replicator.emulator.errors import blob as blob_errors

P = 512
KEY = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"


def make_backend(path: Path) -> BlobBackend:
    return BlobBackend(path, account_key=KEY)


@pytest.fixture
def backend(tmp_path: Path):
    b = make_backend(tmp_path)
    yield b
    b.close()


def ranges(
    backend: BlobBackend,
    snapshot: str | None = None,
    previous: str | None = None,
    limit: int = 10**6,
    blob: str = "b",
    **window: int,
) -> list[tuple[int, int, bool]]:
    """All runs, following markers to the end."""
    out: list[tuple[int, int, bool]] = []
    marker = None
    prev = SnapshotRef("acct", "c", blob, previous) if previous else None
    while True:
        page = backend.page_ranges(
            "acct", "c", blob, snapshot, previous=prev, marker=marker, limit=limit, **window
        )
        assert len(page.ranges) <= limit
        out += page.ranges
        if page.next_marker is None:
            return out
        marker = page.next_marker


def test_sparse_write_read_and_valid_ranges(backend: BlobBackend) -> None:
    backend.create_page_blob("acct", "c", "b", 16 * P)
    backend.write_pages("acct", "c", "b", 2 * P, b"a" * 3 * P)
    backend.write_pages("acct", "c", "b", 3 * P, b"b" * P)  # splits the first extent
    backend.clear_pages("acct", "c", "b", 4 * P, P)
    assert backend.read("acct", "c", "b", None, 0, 6 * P) == bytes(2 * P) + b"a" * P + b"b" * P + bytes(2 * P)
    assert ranges(backend) == [(2 * P, 4 * P, True)]


def test_snapshot_freezes_content_and_diff_reports_writes_and_clears(backend: BlobBackend) -> None:
    backend.create_page_blob("acct", "c", "b", 8 * P)
    backend.write_pages("acct", "c", "b", 0, b"1" * 4 * P)
    s1 = backend.snapshot_blob("acct", "c", "b")
    backend.write_pages("acct", "c", "b", P, b"1" * P)  # identical bytes: still reported
    backend.clear_pages("acct", "c", "b", 3 * P, 2 * P)
    assert backend.read("acct", "c", "b", s1, 0, 4 * P) == b"1" * 4 * P
    assert ranges(backend, previous=s1) == [(P, 2 * P, True), (3 * P, 5 * P, False)]
    s2 = backend.snapshot_blob("acct", "c", "b")
    assert ranges(backend, snapshot=s2, previous=s1) == ranges(backend, previous=s1)
    assert ranges(backend, previous=s2) == []


def test_shrink_then_grow_reads_zeros_and_diff_reports_the_cleared_tail(backend: BlobBackend) -> None:
    backend.create_page_blob("acct", "c", "b", 8 * P)
    backend.write_pages("acct", "c", "b", 0, b"x" * 8 * P)
    s1 = backend.snapshot_blob("acct", "c", "b")
    backend.resize_page_blob("acct", "c", "b", 4 * P)
    assert ranges(backend, previous=s1) == []
    backend.resize_page_blob("acct", "c", "b", 8 * P)
    assert backend.read("acct", "c", "b", None, 0, 8 * P) == b"x" * 4 * P + bytes(4 * P)
    assert ranges(backend) == [(0, 4 * P, True)]
    assert ranges(backend, previous=s1) == [(4 * P, 8 * P, False)]


def test_diff_needs_a_common_lineage(backend: BlobBackend) -> None:
    backend.create_page_blob("acct", "c", "b", 8 * P)
    backend.create_page_blob("acct", "c", "other", 8 * P)
    s_other = backend.snapshot_blob("acct", "c", "other")
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.page_ranges(
            "acct", "c", "b", None, previous=SnapshotRef("acct", "c", "other", s_other), limit=10
        )
    assert exc.value.code == "PreviousSnapshotOperationNotSupported"
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.page_ranges("acct", "c", "b", None, previous=SnapshotRef("acct", "c", "b", "nope"), limit=10)
    assert exc.value.code == "PreviousSnapshotNotFound"


def test_alias_and_copy_on_write_copy_share_lineage(backend: BlobBackend) -> None:
    backend.create_page_blob("md-x", "disk", "abcd", 8 * P)
    backend.write_pages("md-x", "disk", "abcd", 0, b"a" * P)
    s1 = backend.snapshot_blob("md-x", "disk", "abcd")
    backend.read_only_alias("md-x", "snap1", "abcd", SnapshotRef("md-x", "disk", "abcd", s1))
    backend.write_pages("md-x", "disk", "abcd", 2 * P, b"b" * P)
    s2 = backend.snapshot_blob("md-x", "disk", "abcd")
    backend.read_only_alias("md-x", "snap2", "abcd", SnapshotRef("md-x", "disk", "abcd", s2))
    diff = backend.page_ranges(
        "md-x", "snap2", "abcd", None, previous=SnapshotRef("md-x", "snap1", "abcd", None), limit=10
    )
    assert diff.ranges == [(2 * P, 3 * P, True)]
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.write_pages("md-x", "snap1", "abcd", 0, b"z" * P)
    assert exc.value.status == 403
    backend.create_page_blob("md-x", "full", "abcd", 8 * P, source=SnapshotRef("md-x", "snap2", "abcd", None))
    assert backend.read("md-x", "full", "abcd", None, 0, 3 * P) == b"a" * P + bytes(P) + b"b" * P
    backend.write_pages("md-x", "full", "abcd", 0, b"c" * P)
    assert backend.read("md-x", "snap2", "abcd", None, 0, P) == b"a" * P  # copy-on-write


def test_diff_across_the_4tib_boundary_is_refused(backend: BlobBackend) -> None:
    backend.create_page_blob("acct", "c", "b", 4 * TIB)
    s1 = backend.snapshot_blob("acct", "c", "b")
    backend.resize_page_blob("acct", "c", "b", 5 * TIB)
    with pytest.raises(blob_errors.BlobError) as exc:
        ranges(backend, previous=s1)
    assert (exc.value.status, exc.value.code) == (409, "SnapshotDiffAcrossResizeNotSupported")


def test_size_limits(backend: BlobBackend) -> None:
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.create_page_blob("acct", "c", "big", 8 * TIB + P)
    assert exc.value.code == "InvalidHeaderValue"
    backend.create_page_blob("md-big", "c", "abcd", 64 * TIB + P)
    with pytest.raises(blob_errors.BlobError):
        backend.create_page_blob("acct", "c", "odd", 1000)


def test_big_sparse_blob_is_cheap_and_listing_windows_are_fast(tmp_path: Path) -> None:
    backend = make_backend(tmp_path)
    backend.create_page_blob("acct", "c", "b", 4 * TIB)
    chunk = os.urandom(64 * 1024)
    started = time.monotonic()
    for i in range(1000):  # 1000 extents, 64 MiB, spread over the whole 4 TiB
        backend.write_pages("acct", "c", "b", i * (4 * TIB // 1000) // P * P, chunk)
    listed = ranges(backend, limit=100)
    window = ranges(backend, start=2 * TIB, end=2 * TIB + 1024**3)
    elapsed = time.monotonic() - started
    backend.close()
    assert len(listed) == 1000 and all(e - s == len(chunk) for s, e, _ in listed)
    assert len(window) == 1  # one extent starts in every 4.4 GB, the 1 GiB window at 2 TiB holds one
    used = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert used < 100 * 1024**2
    assert elapsed < 30


# -- property test against a dumb model of page arrays ------------------------------------------------
N = 24  # pages; small so that every example covers overlaps

op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, N - 1), st.integers(1, 6), st.integers(1, 255)),
    st.tuples(st.just("clear"), st.integers(0, N - 1), st.integers(1, 6)),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("resize"), st.integers(0, N)),
    # Put Page From URL: (source page, target page, pages, source version: a snapshot or the live blob)
    st.tuples(
        st.just("copy"), st.integers(0, N - 1), st.integers(0, N - 1), st.integers(1, 6), st.integers(0, 3)
    ),
)


class Model:
    """Per-page truth: content (None = never written or cleared) and, per epoch, what was touched."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pages: dict[int, bytes] = {}
        self.epochs: list[dict[int, bool]] = [{}]  # epoch k: page -> written (True) / cleared (False)
        self.snapshots: list[tuple[str, int, dict[int, bytes], int]] = []  # id, size, pages, epoch

    def write(self, page: int, data: bytes) -> None:
        self.pages[page] = data
        self.epochs[-1][page] = True

    def clear(self, page: int) -> None:
        self.pages.pop(page, None)
        self.epochs[-1][page] = False

    def resize(self, size: int) -> None:
        for page in range(size, self.size):
            self.clear(page)
        self.size = size

    def diff(self, size: int, new_epoch: int, old_epoch: int) -> list[tuple[int, int, bool]]:
        touched: dict[int, bool] = {}
        for epoch in self.epochs[old_epoch + 1 : new_epoch + 1]:
            touched.update(epoch)
        return runs({p: k for p, k in touched.items() if p < size})


def runs(pages: dict[int, bool]) -> list[tuple[int, int, bool]]:
    out: list[tuple[int, int, bool]] = []
    for page in sorted(pages):
        kind = pages[page]
        if out and out[-1][1] == page * P and out[-1][2] == kind:
            out[-1] = (out[-1][0], (page + 1) * P, kind)
        else:
            out.append((page * P, (page + 1) * P, kind))
    return out


def content(pages: dict[int, bytes], size: int) -> bytes:
    return b"".join(pages.get(p, bytes(P)) for p in range(size))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=25), st.integers(1, 3))
def test_store_matches_page_model(ops: list[tuple], limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        backend = make_backend(Path(tmp))
        try:
            _run_against_model(backend, ops, limit)
        finally:
            backend.close()


def _run_against_model(backend: BlobBackend, ops: list[tuple], limit: int) -> None:
    backend.create_page_blob("acct", "c", "b", N * P)
    model = Model(N)
    for kind, *args in ops:
        if kind == "write":
            page, count, byte = args
            count = min(count, model.size - page)
            if count <= 0:
                continue
            backend.write_pages("acct", "c", "b", page * P, bytes([byte]) * count * P)
            for p in range(page, page + count):
                model.write(p, bytes([byte]) * P)
        elif kind == "clear":
            page, count = args
            count = min(count, model.size - page)
            if count <= 0:
                continue
            backend.clear_pages("acct", "c", "b", page * P, count * P)
            for p in range(page, page + count):
                model.clear(p)
        elif kind == "copy":
            _copy(backend, model, *args)
        elif kind == "snapshot":
            snap = backend.snapshot_blob("acct", "c", "b")
            model.snapshots.append((snap, model.size, dict(model.pages), len(model.epochs) - 1))
            model.epochs.append({})
        else:
            backend.resize_page_blob("acct", "c", "b", args[0] * P)
            model.resize(args[0])
    live_epoch = len(model.epochs) - 1
    assert backend.read("acct", "c", "b", None, 0, model.size * P) == content(model.pages, model.size)
    assert ranges(backend, limit=limit) == runs(dict.fromkeys(model.pages, True))
    for i, (snap, size, pages, epoch) in enumerate(model.snapshots):
        assert backend.read("acct", "c", "b", snap, 0, size * P) == content(pages, size)
        assert ranges(backend, snapshot=snap, limit=limit) == runs(dict.fromkeys(pages, True))
        assert ranges(backend, previous=snap, limit=limit) == model.diff(model.size, live_epoch, epoch)
        for newer, newer_size, _, newer_epoch in model.snapshots[i + 1 :]:
            got = ranges(backend, snapshot=newer, previous=snap, limit=limit)
            assert got == model.diff(newer_size, newer_epoch, epoch)


def test_lease_expiry_and_breaking(backend: BlobBackend) -> None:
    now = [1_000_000.0]
    backend.clock = lambda: now[0]
    backend.create_page_blob("acct", "c", "b", 8 * P)
    lease = backend.lease("acct", "c", "b", "acquire", duration=15).lease_id
    now[0] += 16  # a fixed lease expires: writes without it work again, the old ID no longer counts
    assert backend.get_properties("acct", "c", "b").lease.state == "expired"
    backend.write_pages("acct", "c", "b", 0, b"x" * P)
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.write_pages("acct", "c", "b", 0, b"x" * P, lease_id=lease)
    assert exc.value.code == "LeaseNotPresentWithBlobOperation"
    backend.lease("acct", "c", "b", "renew", lease_id=lease)  # an expired lease can be renewed
    assert backend.lease("acct", "c", "b", "break", break_period=30).lease_time == 15  # min(period, left)
    assert backend.get_properties("acct", "c", "b").lease.state == "breaking"
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.write_pages("acct", "c", "b", 0, b"x" * P)
    assert exc.value.code == "LeaseIdMissing"  # still locked while breaking
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.lease("acct", "c", "b", "change", lease_id=lease, proposed_id="other")
    assert exc.value.code == "LeaseIsBreakingAndCannotBeChanged"
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.lease("acct", "c", "b", "acquire", duration=-1)
    assert exc.value.code == "LeaseAlreadyPresent"
    now[0] += 15
    assert backend.get_properties("acct", "c", "b").lease.state == "broken"
    assert backend.lease("acct", "c", "b", "acquire", duration=-1).lease_id != lease
    with pytest.raises(blob_errors.BlobError) as exc:
        backend.lease("acct", "c", "b", "release", lease_id=lease)
    assert exc.value.code == "LeaseIdMismatchWithLeaseOperation"


def _copy(backend: BlobBackend, model: Model, source_page: int, page: int, count: int, version: int) -> None:
    """Copy pages of a snapshot (or of the live blob, when `version` names none) onto the live blob:
    the target pages become written with the source's bytes, zeros where the source has none."""
    snap, size, pages = None, model.size, model.pages
    if version < len(model.snapshots):
        snap, size, pages, _ = model.snapshots[version]
    count = min(count, size - source_page, model.size - page)
    if count <= 0:
        return
    data = [pages.get(source_page + i, bytes(P)) for i in range(count)]
    source = SnapshotRef("acct", "c", "b", snap)
    backend.copy_pages("acct", "c", "b", page * P, source, source_page * P, count * P)
    for i, chunk in enumerate(data):
        model.write(page + i, chunk)


# -- the overlap query against its plain definition ----------------------------------------------------
layer_op = st.tuples(st.sampled_from(["write", "clear"]), st.integers(0, 4 * N - 1), st.integers(1, 12))
window = st.tuples(st.integers(0, 4 * N), st.integers(0, 4 * N))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(layer_op, max_size=40), st.lists(window, min_size=1, max_size=10))
def test_overlapping_seek_returns_what_the_plain_overlap_query_returns(
    ops: list[tuple[str, int, int]], windows: list[tuple[int, int]]
) -> None:
    """`OVERLAPPING` seeks from the extent at the window's start instead of walking every extent:
    on any layer the writes and clears leave (no two extents overlap), its rows are the plain query's."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(":memory:")
        store = PageStore(db, Path(tmp) / "pages.dat")
        try:
            layer, other = store.new_layer(None), store.new_layer(None)
            store.write(other, 0, b"o" * 4 * N * P)  # a neighbour layer the seek must not see
            for kind, page, count in ops:
                if kind == "write":
                    store.write(layer, page * P, b"w" * count * P)
                else:
                    store.clear(layer, page * P, count * P)
            for a, b in windows:
                start, end = min(a, b) * P, max(a, b) * P
                plain = db.execute(
                    'SELECT start, "end", data_off FROM extents WHERE layer = ? AND "end" > ? AND start < ?'
                    " ORDER BY start",
                    (layer, start, end),
                ).fetchall()
                assert db.execute(OVERLAPPING, (layer, start, end)).fetchall() == plain
        finally:
            store.close()
            db.close()
