"""list_changes against a fake page-blob operation group: markers, windows, clipping, 403 re-grants,
the resize refusal, and a service that misbehaves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.errors import ReplicationError
from replicator.core.ranges import Change, Range
from replicator.plumbing.credentials import AsyncStaticTokenCredential
from replicator.source import listing
from replicator.source.disk_auth import DiskAuth
from replicator.source.listing import DiffNotPossible, list_changes
from tests.helpers.source_fakes import snapshot

KiB = 1024
MiB = 1024 * KiB


@dataclass
class FakeGrant:
    name: str
    serial: int = 0
    invalidations: int = 0
    snapshot: Any = None
    disk_auth: DiskAuth = field(default_factory=lambda: DiskAuth(AsyncStaticTokenCredential("token")))

    noun: str = "snapshot"

    def __post_init__(self) -> None:
        self.snapshot = snapshot(self.name)
        if self.noun != "snapshot":  # a disk restore point: SnapshotInfo.noun reads its ID's form
            restore_point = (
                f"/virtualMachines/vm/restorePointCollections/c/restorePoints/p/diskRestorePoints/{self.name}"
            )
            self.snapshot = replace(
                self.snapshot, id=self.snapshot.id.replace(f"/snapshots/{self.name}", restore_point)
            )

    async def url(self) -> str:
        return f"https://127.0.0.1/md/c/{self.name}?sv=1&sig=SECRET{self.serial}"

    def invalidate(self, stale_url: str | None = None) -> None:
        self.invalidations += 1
        self.serial += 1


def response_error(status: int, code: str, message: str) -> HttpResponseError:
    err = HttpResponseError(message=message)
    err.status_code = status
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}\nRequestId:1</Message></Error>"
    err.response = SimpleNamespace(headers={"x-ms-error-code": code}, text=lambda: body)  # type: ignore[assignment]
    return err


@dataclass
class FakePageBlob:
    """Serves `items` ((start, end_inclusive, clear), sorted) like Get Page Ranges, `page` per answer."""

    items: list[tuple[int, int, bool]]
    page: int = 2
    fail_first: HttpResponseError | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    repeat_marker: bool = False
    timeout_over: int | None = None  # more items than this in the rest of a window: 500 OperationTimedOut

    def _answer(self, range: str, marker: str | None, maxresults: int | None) -> Any:
        low, high = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", range).groups())  # type: ignore[union-attr]
        hits = [item for item in self.items if item[0] <= high and item[1] >= low]
        first = int(marker) if marker else 0
        if self.timeout_over is not None and len(hits) - first > self.timeout_over:
            raise response_error(500, "OperationTimedOut", "The operation could not be completed in time.")
        size = min(self.page, maxresults or self.page)
        chunk = hits[first : first + size]
        more = first + size < len(hits)
        next_marker = (marker if self.repeat_marker and marker else str(first + size)) if more else None
        return SimpleNamespace(
            page_range=[SimpleNamespace(start=s, end=e) for s, e, c in chunk if not c],
            clear_range=[SimpleNamespace(start=s, end=e) for s, e, c in chunk if c],
            next_marker=next_marker,
        )

    async def get_page_ranges_diff(
        self,
        *,
        prev_snapshot_url: str,
        range: str,
        marker: str | None,
        maxresults: int | None,
        **options: Any,
    ) -> Any:
        self.calls.append(
            {"diff": True, "range": range, "marker": marker, "maxresults": maxresults, **options}
        )
        self.urls.append(prev_snapshot_url)
        if self.fail_first is not None:
            err, self.fail_first = self.fail_first, None
            raise err
        return self._answer(range, marker, maxresults)

    async def get_page_ranges(
        self, *, range: str, marker: str | None, maxresults: int | None, **options: Any
    ) -> Any:
        self.calls.append(
            {"diff": False, "range": range, "marker": marker, "maxresults": maxresults, **options}
        )
        return self._answer(range, marker, maxresults)


@pytest.fixture
def blob(monkeypatch: pytest.MonkeyPatch) -> FakePageBlob:
    fake = FakePageBlob(items=[])

    class FakeClient:
        def __init__(self, url: str) -> None:
            self.url = url
            self._client = SimpleNamespace(page_blob=fake)

        async def close(self) -> None:
            pass

    monkeypatch.setattr(listing.BlobClient, "from_blob_url", lambda url, **_: FakeClient(url))
    return fake


async def collect(*args: Any, **kwargs: Any) -> list[Change]:
    return [change async for change in list_changes(*args, **kwargs)]


async def test_follows_every_marker_of_every_window_and_clips_to_windows(blob: FakePageBlob) -> None:
    blob.items = [
        (0, 511, False),
        (1 * KiB, 2 * KiB - 1, True),
        (3 * KiB, 5 * KiB - 1, False),  # straddles the 4 KiB window edge
        (6 * KiB, 6 * KiB + 511, True),
        (7 * KiB, 7 * KiB + 511, False),
        (9 * KiB, 11 * KiB - 1, False),  # inside the last window
    ]
    changes = await collect(
        FakeGrant("new"), FakeGrant("old"), start=0, end=12 * KiB, window=4 * KiB, page_size=2
    )
    assert changes == [
        Change(Range(0, 512), False),
        Change(Range(1 * KiB, 2 * KiB), True),
        Change(Range(3 * KiB, 4 * KiB), False),
        Change(Range(4 * KiB, 5 * KiB), False),
        Change(Range(6 * KiB, 6 * KiB + 512), True),
        Change(Range(7 * KiB, 7 * KiB + 512), False),
        Change(Range(9 * KiB, 11 * KiB), False),
    ]
    assert [(c["range"], c["marker"]) for c in blob.calls] == [
        ("bytes=0-4095", None),
        ("bytes=0-4095", "2"),
        ("bytes=4096-8191", None),
        ("bytes=4096-8191", "2"),
        ("bytes=8192-12287", None),
    ]
    assert all(c["diff"] and c["maxresults"] == 2 for c in blob.calls)
    assert all(url.startswith("https://127.0.0.1/md/c/old?") for url in blob.urls)


async def test_without_a_base_lists_valid_ranges_from_a_resume_offset(blob: FakePageBlob) -> None:
    blob.items = [(0, 1023, False), (2 * KiB, 3 * KiB - 1, False), (5 * KiB, 6 * KiB - 1, False)]
    changes = await collect(FakeGrant("new"), None, start=2560, end=6 * KiB, window=4 * KiB, page_size=None)
    assert changes == [Change(Range(2560, 3 * KiB), False), Change(Range(5 * KiB, 6 * KiB), False)]
    assert [c["range"] for c in blob.calls] == ["bytes=2560-6143"]  # one window of at most 4 KiB
    assert not any(c["diff"] for c in blob.calls)


async def test_a_timed_out_window_is_listed_again_in_smaller_windows_without_sdk_retries(
    blob: FakePageBlob,
) -> None:
    blob.page, blob.timeout_over = 4, 6
    blob.items = [(i * 16 * MiB, i * 16 * MiB + 511, False) for i in range(16)]  # 16 ranges over 256 MiB
    changes = await collect(FakeGrant("new"), None, start=0, end=256 * MiB, window=256 * MiB, page_size=None)
    assert changes == [Change(Range(s, e + 1), False) for s, e, _ in blob.items]
    # every window of 8 or more ranges timed out at once (no SDK retries while it can split), every
    # 64 MiB window (the smallest: never split, so the SDK retries it) answered its 4 ranges
    assert sorted((c["range"], c.get("retry_total")) for c in blob.calls) == sorted(
        [("bytes=0-268435455", 0), ("bytes=0-134217727", 0), ("bytes=134217728-268435455", 0)]
        + [(f"bytes={i * 64 * MiB}-{(i + 1) * 64 * MiB - 1}", None) for i in range(4)]
    )


async def test_a_busy_answer_to_the_first_attempt_is_sent_again_with_the_sdk_retries(
    blob: FakePageBlob,
) -> None:
    blob.items = [(0, 511, False)]
    blob.fail_first = response_error(503, "ServerBusy", "The server is busy.")
    changes = await collect(
        FakeGrant("new"), FakeGrant("old"), start=0, end=128 * MiB, window=128 * MiB, page_size=None
    )
    assert changes == [Change(Range(0, 512), False)]
    assert [c.get("retry_total") for c in blob.calls] == [0, None]  # ServerBusy is the SDK's to retry


async def test_a_timeout_of_the_smallest_window_fails_the_listing(blob: FakePageBlob) -> None:
    blob.page, blob.timeout_over = 4, 1
    blob.items = [(i * MiB, i * MiB + 511, False) for i in range(4)]
    with pytest.raises(listing.ListingTimedOut, match="OperationTimedOut"):
        await collect(FakeGrant("new"), None, start=0, end=128 * MiB, window=128 * MiB, page_size=None)


async def test_a_403_regrants_both_sas_and_repeats_the_page(blob: FakePageBlob) -> None:
    blob.items = [(0, 511, False)]
    blob.fail_first = response_error(
        403, "AuthenticationFailed", "Signature not valid in the specified time frame"
    )
    current, base = FakeGrant("new"), FakeGrant("old")
    changes = await collect(current, base, start=0, end=4 * KiB, window=4 * KiB, page_size=None)
    assert changes == [Change(Range(0, 512), False)]
    assert (current.invalidations, base.invalidations) == (1, 1)
    assert blob.urls[-1].endswith("sig=SECRET1")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (409, "SnapshotDiffAcrossResizeNotSupported", "whatever"),
        (409, "OperationNotAllowed", "Cannot diff snapshots across a resize beyond 4 TB."),
        (400, "InvalidOperation", "The disk was resized across the 4 TiB boundary."),
    ],
)
async def test_a_resize_refusal_raises_diff_not_possible(
    blob: FakePageBlob, status: int, code: str, message: str
) -> None:
    blob.fail_first = response_error(status, code, message)
    with pytest.raises(DiffNotPossible) as caught:
        await collect(
            FakeGrant("new"), FakeGrant("old"), start=0, end=4 * KiB, window=4 * KiB, page_size=None
        )
    assert isinstance(caught.value, ReplicationError)
    assert "4 TiB" in str(caught.value)


async def test_other_errors_are_replication_errors_without_the_sas(blob: FakePageBlob) -> None:
    blob.fail_first = response_error(409, "PreviousSnapshotNotFound", "https://x/md?sig=SECRET0 not found")
    with pytest.raises(ReplicationError) as caught:
        await collect(
            FakeGrant("new"), FakeGrant("old"), start=0, end=4 * KiB, window=4 * KiB, page_size=None
        )
    assert not isinstance(caught.value, DiffNotPossible)
    assert "PreviousSnapshotNotFound" in str(caught.value)
    assert "SECRET" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("status", [400, 404, 409])
async def test_any_refusal_of_a_diff_between_disk_restore_points_raises_diff_not_possible(
    blob: FakePageBlob, status: int
) -> None:
    # Azure does not document these diffs: a refusal means a full copy, with the service's answer.
    blob.fail_first = response_error(status, "OperationNotAllowed", "https://x/md?sig=SECRET0 cannot diff")
    with pytest.raises(DiffNotPossible) as caught:
        await collect(
            FakeGrant("new", noun="disk restore point"),
            FakeGrant("old", noun="disk restore point"),
            start=0,
            end=4 * KiB,
            window=4 * KiB,
            page_size=None,
        )
    assert f"it answered {status} OperationNotAllowed" in caught.value.why
    assert "does not document diffs between disk restore points" in caught.value.why
    assert "SECRET" not in str(caught.value) + caught.value.why


async def test_a_repeated_marker_fails_instead_of_looping(blob: FakePageBlob) -> None:
    blob.items = [(i * KiB, i * KiB + 511, False) for i in range(4)]
    blob.repeat_marker = True
    with pytest.raises(ReplicationError, match="same NextMarker twice"):
        await collect(FakeGrant("new"), None, start=0, end=4 * KiB, window=4 * KiB, page_size=1)


async def test_out_of_order_answers_fail(blob: FakePageBlob) -> None:
    blob.items = [(2 * KiB, 3 * KiB - 1, False), (0, 511, False)]
    with pytest.raises(ReplicationError, match="after offset"):
        await collect(FakeGrant("new"), None, start=0, end=4 * KiB, window=4 * KiB, page_size=1)


@given(
    st.lists(st.tuples(st.integers(1, 8), st.integers(0, 3), st.booleans()), max_size=30),
    st.integers(0, 60),
    st.integers(1, 60),
)
def test_page_changes_merges_both_lists_in_order_and_clips_to_the_window(
    spans: list[tuple[int, int, bool]], window_start: int, window_pages: int
) -> None:
    items, pos = [], 0  # disjoint page-aligned ranges: (start, end_inclusive, clear)
    for length, gap, clear in spans:
        start = (pos + gap) * 512
        items.append((start, start + length * 512 - 1, clear))
        pos += gap + length
    page = SimpleNamespace(
        page_range=[SimpleNamespace(start=s, end=e) for s, e, c in items if not c],
        clear_range=[SimpleNamespace(start=s, end=e) for s, e, c in items if c],
    )
    window = Range(window_start * 512, (window_start + window_pages) * 512)
    expected = [
        Change(Range(max(s, window.start), min(e + 1, window.end)), c)
        for s, e, c in items
        if max(s, window.start) < min(e + 1, window.end)
    ]
    assert list(listing._page_changes(page, window)) == expected
