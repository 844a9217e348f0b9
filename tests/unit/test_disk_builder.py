"""replicator.devtools.disk_builder, the developer tool that builds the demo's, the benchmark's and the e2e
tests' disks: extents cut into Put Page requests, footprints, and writes that draw the same bytes in
the same order however many run at once."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.ranges import MAX_WRITE
from replicator.devtools import disk_builder
from replicator.devtools.disk_builder import (
    Extent,
    footprint,
    merged,
    pieces,
    write_extents,
)

KiB = 1024

extents = st.lists(
    st.builds(
        Extent,
        offset=st.integers(0, 64).map(lambda n: n * 512 * KiB),
        length=st.integers(1, 24).map(lambda n: n * 512 * KiB),
        clear=st.booleans(),
    ),
    max_size=8,
)


@given(extents)
def test_pieces_cover_each_extent_in_order_in_requests_of_at_most_4_mib(given_extents: list[Extent]) -> None:
    cut = [list(pieces([e])) for e in given_extents]
    assert list(pieces(given_extents)) == [p for each in cut for p in each]  # extent after extent
    for extent, its in zip(given_extents, cut, strict=True):
        assert all(0 < p.length <= MAX_WRITE and p.clear == extent.clear for p in its)
        ends = [extent.offset] + [p.offset + p.length for p in its]
        assert [p.offset for p in its] == ends[:-1] and ends[-1] == extent.offset + extent.length


def test_pieces_carry_their_slice_of_the_data() -> None:
    data = random.Random(1).randbytes(9 * 1024 * KiB)
    cut = list(pieces([Extent(512, len(data), data=data)]))
    assert [(p.offset, p.length) for p in cut] == [
        (512, MAX_WRITE),
        (512 + MAX_WRITE, MAX_WRITE),
        (512 + 2 * MAX_WRITE, KiB * KiB),
    ]
    assert b"".join(p.data or b"" for p in cut) == data


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 50)), max_size=12))
def test_footprint_counts_every_touched_byte_once(spans: list[tuple[int, int]]) -> None:
    given_extents = [Extent(start, length) for start, length in spans]
    touched = {b for e in given_extents for b in range(e.offset, e.offset + e.length)}
    assert footprint(given_extents) == len(touched)
    out = merged((e.offset, e.offset + e.length) for e in given_extents if e.length)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(out))  # sorted, apart, not touching
    assert {b for start, end in out for b in range(start, end)} == touched


class FakeDisk:
    """A page blob client recording each request; each answer takes a few turns of the loop, so
    writers running at once finish out of order."""

    def __init__(self, delays: random.Random) -> None:
        self.requests: list[tuple[str, int, int, bytes | None]] = []
        self.drawn: list[bytes] = []
        self.delays = delays

    async def __aenter__(self) -> FakeDisk:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def upload_page(self, data: bytes, offset: int, length: int) -> None:
        self.drawn.append(data)
        await self._answer()
        self.requests.append(("write", offset, length, data))

    async def clear_page(self, offset: int, length: int) -> None:
        await self._answer()
        self.requests.append(("clear", offset, length, None))

    async def _answer(self) -> None:
        for _ in range(self.delays.randrange(5)):
            await asyncio.sleep(0)


def _write(monkeypatch: pytest.MonkeyPatch, given_extents: list[Extent], concurrency: int) -> FakeDisk:
    disk = FakeDisk(random.Random(concurrency))
    monkeypatch.setattr(disk_builder.BlobClient, "from_blob_url", lambda url, **kw: disk)
    monkeypatch.setattr(disk_builder, "transport_kwargs", dict)
    asyncio.run(write_extents("https://disk.invalid/d?sig=x", given_extents, random.Random(7), concurrency))
    return disk


def test_one_writer_writes_in_order_and_many_draw_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    layout = [Extent(i * 3 * MAX_WRITE // 2, MAX_WRITE + i * 512, clear=i % 3 == 2) for i in range(12)]
    layout.append(Extent(0, 4096, data=b"x" * 4096))  # given data: written as it is, nothing drawn
    one = _write(monkeypatch, layout, 1)
    assert [(kind, offset, length) for kind, offset, length, _ in one.requests] == [
        ("clear" if p.clear else "write", p.offset, p.length) for p in pieces(layout)
    ]
    assert one.requests[-1][3] == b"x" * 4096
    many = _write(monkeypatch, layout, 16)
    assert many.drawn == one.drawn  # bytes drawn in piece order, whatever order the answers come in
    assert sorted(many.requests, key=repr) == sorted(one.requests, key=repr)


def test_an_extent_without_data_needs_an_rng(monkeypatch: pytest.MonkeyPatch) -> None:
    disk = FakeDisk(random.Random(0))
    monkeypatch.setattr(disk_builder.BlobClient, "from_blob_url", lambda url, **kw: disk)
    monkeypatch.setattr(disk_builder, "transport_kwargs", dict)
    with pytest.raises(ExceptionGroup) as raised:
        asyncio.run(write_extents("https://disk.invalid/d", [Extent(512, 512)]))
    assert "no rng" in str(raised.value.exceptions[0])
