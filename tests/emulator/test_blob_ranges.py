"""Get Page Ranges (valid ranges, diffs, windows, paging) and Put Page From URL through the real SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, ContainerClient, generate_blob_sas

from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.model import SnapshotRef
from replicator.emulator.process import EmulatorProcess
from tests.helpers.blob_clients import BlobClients

# get_page_ranges is deprecated in the SDK but still what older clients call: it must keep working.
pytestmark = pytest.mark.filterwarnings("ignore:get_page_ranges is deprecated:DeprecationWarning")

P = 512
MIB = 1024 * 1024
TIB = 1024**4


@pytest.fixture
def container(blob_clients: BlobClients, unique_name) -> ContainerClient:
    client = blob_clients.key(unique_name("acct")).get_container_client(unique_name("c"))
    client.create_container()
    return client


def listed(blob: BlobClient, **kwargs) -> list[tuple[int, int, bool]]:
    """All ranges through list_page_ranges (which follows NextMarker), as (start, end incl, cleared)."""
    return [(r.start, r.end, r.cleared) for r in blob.list_page_ranges(**kwargs)]


def test_valid_ranges_and_windows(container: ContainerClient) -> None:
    blob = container.get_blob_client("b")
    blob.create_page_blob(64 * MIB)
    blob.upload_page(b"a" * 4 * P, offset=0, length=4 * P)
    blob.upload_page(b"b" * P, offset=MIB, length=P)
    blob.upload_page(b"c" * 2 * MIB, offset=10 * MIB, length=2 * MIB)
    blob.clear_page(offset=P, length=P)
    ranges, clears = blob.get_page_ranges()
    assert ranges == [
        {"start": 0, "end": P - 1},
        {"start": 2 * P, "end": 4 * P - 1},
        {"start": MIB, "end": MIB + P - 1},
        {"start": 10 * MIB, "end": 12 * MIB - 1},
    ]
    assert clears == []
    window, _ = blob.get_page_ranges(offset=3 * P, length=11 * MIB - 3 * P)  # clipped to the window
    assert window == [
        {"start": 3 * P, "end": 4 * P - 1},
        {"start": MIB, "end": MIB + P - 1},
        {"start": 10 * MIB, "end": 11 * MIB - 1},
    ]
    assert listed(blob, results_per_page=1) == [(r["start"], r["end"], False) for r in ranges]


def test_diff_after_writes_clears_rewrites_and_resizes(container: ContainerClient) -> None:
    blob = container.get_blob_client("b")
    blob.create_page_blob(16 * P)
    blob.upload_page(b"1" * 8 * P, offset=0, length=8 * P)
    s1 = blob.create_snapshot()["snapshot"]
    blob.upload_page(b"1" * P, offset=P, length=P)  # same bytes rewritten: still reported
    blob.clear_page(offset=3 * P, length=2 * P)
    blob.upload_page(b"2" * P, offset=4 * P, length=P)  # written after the clear: the newest wins
    assert listed(blob, previous_snapshot=s1) == [
        (P, 2 * P - 1, False),
        (3 * P, 4 * P - 1, True),
        (4 * P, 5 * P - 1, False),
    ]
    ranges, clears = blob.get_page_ranges(previous_snapshot_diff=s1)
    assert ranges == [{"start": P, "end": 2 * P - 1}, {"start": 4 * P, "end": 5 * P - 1}]
    assert clears == [{"start": 3 * P, "end": 4 * P - 1}]
    s2 = blob.create_snapshot()["snapshot"]
    blob.resize_blob(4 * P)
    blob.resize_blob(16 * P)
    assert listed(blob, previous_snapshot=s2) == [(4 * P, 16 * P - 1, True)]
    assert blob.download_blob(offset=4 * P, length=P).readall() == bytes(P)
    snap2 = container.get_blob_client("b", snapshot=s2)
    assert listed(snap2, previous_snapshot=s1) == [
        (P, 2 * P - 1, False),
        (3 * P, 4 * P - 1, True),
        (4 * P, 5 * P - 1, False),
    ]


def test_diff_against_a_foreign_or_missing_snapshot_is_refused(container: ContainerClient) -> None:
    blob, other = container.get_blob_client("b"), container.get_blob_client("o")
    blob.create_page_blob(P)
    other.create_page_blob(P)
    foreign = other.create_snapshot()["snapshot"]
    with pytest.raises(HttpResponseError) as exc:
        listed(blob, previous_snapshot=foreign)
    assert exc.value.error_code == "PreviousSnapshotNotFound"  # no such snapshot of *this* blob
    with pytest.raises(HttpResponseError) as exc:
        blob.get_page_range_diff_for_managed_disk(other.url + "?snapshot=" + foreign)
    assert (exc.value.status_code, exc.value.error_code) == (409, "PreviousSnapshotOperationNotSupported")


def test_diff_across_4tib_boundary_is_refused(container: ContainerClient) -> None:
    blob = container.get_blob_client("big")
    blob.create_page_blob(4 * TIB)
    s1 = blob.create_snapshot()["snapshot"]
    blob.resize_blob(4 * TIB + 1024 * P)
    with pytest.raises(HttpResponseError) as exc:
        listed(blob, previous_snapshot=s1)
    assert (exc.value.status_code, exc.value.error_code) == (409, "SnapshotDiffAcrossResizeNotSupported")


def test_paging_with_small_max_page_ranges(fresh_emulator, unique_name) -> None:
    emulator: EmulatorProcess = fresh_emulator("--max-page-ranges", "3")
    clients = BlobClients(emulator.env)
    service = clients.key(unique_name("acct"))
    service.create_container("c")
    blob = service.get_blob_client("c", "b")
    blob.create_page_blob(64 * P)
    s1 = blob.create_snapshot()["snapshot"]
    for i in range(0, 20, 2):
        blob.upload_page(b"x" * P, offset=i * P, length=P)
    blob.clear_page(offset=P, length=P)  # a clear between two writes: in the diff too
    expected = [(i * P, i * P + P - 1, False) for i in range(0, 20, 2)]
    assert listed(blob) == expected
    assert listed(blob, results_per_page=2) == expected
    # The raw protocol: at most min(maxresults, --max-page-ranges) per answer and a NextMarker.
    marker, pages = None, []
    while True:
        answer = blob._client.page_blob.get_page_ranges_diff(prevsnapshot=s1, marker=marker, maxresults=100)
        assert len(answer.page_range or []) + len(answer.clear_range or []) <= 3
        pages.append(answer)
        marker = answer.next_marker
        if not marker:
            break
    got = sorted(
        [(r.start, r.end, False) for a in pages for r in a.page_range or []]
        + [(r.start, r.end, True) for a in pages for r in a.clear_range or []]
    )
    assert got == sorted([*expected, (P, 2 * P - 1, True)])
    assert len(pages) == 4
    # The SDK's managed-disk helper reads one answer and drops NextMarker (the trap the replicator avoids).
    sas = generate_blob_sas(
        blob.account_name,
        "c",
        "b",
        snapshot=s1,
        account_key=emulator.env["REPLICATOR_ACCOUNT_KEY"],
        permission="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    truncated = blob.get_page_range_diff_for_managed_disk(f"{blob.url}?snapshot={s1}&{sas}")
    assert len(truncated[0]) + len(truncated[1]) == 3


def test_put_page_from_url_with_sas_and_bearer(blob_clients: BlobClients, emulator_env, unique_name) -> None:
    src_account, dst_account = unique_name("src"), unique_name("dst")
    blob_clients.key(src_account).create_container("c")
    src = blob_clients.key(src_account).get_blob_client("c", "source")
    src.create_page_blob(16 * P)
    src.upload_page(b"s" * 4 * P, offset=4 * P, length=4 * P)
    snap = src.create_snapshot()["snapshot"]
    src.clear_page(offset=4 * P, length=4 * P)  # the snapshot keeps the data
    blob_clients.key(dst_account).create_container("c")
    dst = blob_clients.key(dst_account).get_blob_client("c", "target")
    dst.create_page_blob(16 * P)
    key, expiry = emulator_env["REPLICATOR_ACCOUNT_KEY"], datetime.now(UTC) + timedelta(hours=1)
    sas = generate_blob_sas(
        src_account, "c", "source", snapshot=snap, account_key=key, permission="r", expiry=expiry
    )
    dst.upload_pages_from_url(f"{src.url}?snapshot={snap}&{sas}", offset=0, length=2 * P, source_offset=5 * P)
    assert dst.download_blob(offset=0, length=3 * P).readall() == b"s" * 2 * P + bytes(P)
    bearer = f"Bearer {emulator_env['REPLICATOR_ACCESS_TOKEN']}"
    dst.upload_pages_from_url(
        f"{src.url}?snapshot={snap}", offset=8 * P, length=P, source_offset=4 * P, source_authorization=bearer
    )
    assert dst.download_blob(offset=8 * P, length=P).readall() == b"s" * P
    write_only = generate_blob_sas(
        src_account, "c", "source", snapshot=snap, account_key=key, permission="w", expiry=expiry
    )
    with pytest.raises(HttpResponseError) as exc:
        dst.upload_pages_from_url(
            f"{src.url}?snapshot={snap}&{write_only}", offset=0, length=P, source_offset=0
        )
    assert (exc.value.status_code, exc.value.error_code) == (403, "CannotVerifyCopySource")
    with pytest.raises(HttpResponseError) as exc:
        dst.upload_pages_from_url(f"{src.url}?snapshot={snap}", offset=0, length=P, source_offset=0)
    assert exc.value.error_code == "CannotVerifyCopySource"


def grant(
    emulator: EmulatorProcess,
    account: str,
    container: str,
    blob: str,
    permissions: str,
    expiry: datetime | None = None,
) -> tuple[str, str]:
    """grant_sas as ARM calls it."""
    with backend_of(emulator) as backend:
        return backend.grant_sas(
            account, container, blob, permissions, expiry or datetime.now(UTC) + timedelta(hours=1)
        )


@contextmanager
def backend_of(emulator: EmulatorProcess) -> Iterator[BlobBackend]:
    """The running emulator's blob backend, opened from this process on its data dir (SQLite is shared)."""
    backend = BlobBackend(emulator.data_dir, account_key=emulator.env["REPLICATOR_ACCOUNT_KEY"])
    backend.base_url = emulator.env["REPLICATOR_BLOB_ENDPOINT"]
    try:
        yield backend
    finally:
        backend.close()


def test_managed_disk_diff_by_previous_snapshot_url(
    emulator: EmulatorProcess, blob_clients: BlobClients
) -> None:
    account = f"md-{uuid.uuid4().hex[:12]}"
    with backend_of(emulator) as backend:
        backend.create_page_blob(account, "disk", "abcd", 32 * P + P)
    _, disk_url = grant(emulator, account, "disk", "abcd", "rw")
    disk = blob_clients.blob_from_url(disk_url)
    disk.upload_page(b"1" * 8 * P, offset=0, length=8 * P)
    with backend_of(emulator) as backend:
        s1 = backend.snapshot_blob(account, "disk", "abcd")
        backend.read_only_alias(account, "snap1", "abcd", SnapshotRef(account, "disk", "abcd", s1))
    disk.upload_page(b"2" * P, offset=2 * P, length=P)
    disk.clear_page(offset=6 * P, length=2 * P)
    with backend_of(emulator) as backend:
        s2 = backend.snapshot_blob(account, "disk", "abcd")
        backend.read_only_alias(account, "snap2", "abcd", SnapshotRef(account, "disk", "abcd", s2))
    base_policy, base_url = grant(emulator, account, "snap1", "abcd", "r")
    _, current_url = grant(emulator, account, "snap2", "abcd", "r")
    current = blob_clients.blob_from_url(current_url)
    ranges, clears = current.get_page_range_diff_for_managed_disk(base_url)
    assert ranges == [{"start": 2 * P, "end": 3 * P - 1}]
    assert clears == [{"start": 6 * P, "end": 8 * P - 1}]
    with pytest.raises(HttpResponseError) as exc:
        current.upload_page(b"x" * P, offset=0, length=P)
    assert exc.value.error_code == "AuthorizationPermissionMismatch"  # a managed snapshot is read-only
    with backend_of(emulator) as backend:
        backend.revoke_sas(account, "snap1", base_policy)
    with pytest.raises(HttpResponseError) as exc:
        current.get_page_range_diff_for_managed_disk(base_url)
    assert exc.value.status_code == 403
    # Managed-disk storage refuses the account key and bearer tokens, as Azure does.
    for service in (blob_clients.key(account), blob_clients.bearer(account)):
        with pytest.raises(HttpResponseError) as exc:
            service.get_blob_client("snap2", "abcd").download_blob(offset=0, length=P)
        assert (exc.value.status_code, exc.value.error_code) == (403, "AuthorizationFailure")
