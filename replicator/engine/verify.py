"""Byte-for-byte comparison of a restore point with the source snapshot it claims to hold.

Why a module of its own: a replica is only worth the proof that it reads back equal to its source,
and that proof must not trust the code that wrote it. So this reads both sides through the public
SDK and compares bytes; it shares no code with the planner: from replicator.core.ranges it takes only the
`Range` type, Azure's inclusive-end conversion and the 4 MiB request limit, and its windows and the
union of both sides are its own.

Paced: `--verify`'s reads of the target go through the target blob's pacer and its account's budget
(`slot`: engine.pacer.Pacer.slot, one request and no ingress each), as its writes do, so a verifying
run neither bursts past the blob's pacer nor takes more than its share of the account; the source's
reads are another account's and are not paced.

How, without reading whole disks: the sizes must be equal; then, window by window, the union of the
valid page ranges of both sides is read from both and compared. A byte outside that union is a
never-written or cleared page on both sides and reads as zero on both, so it cannot differ. Memory
is one window's range lists plus `concurrency` chunks in flight, whatever the disk size.

A target over 8 TiB is several blobs (core.stripes): the copy's side is then a `Route`, the blob
pieces holding an export range (target.stripe_set), and `compare_striped` compares each stripe blob
with its part of the source, window by window, the same way. A drill of a striped restore point
compares the same way round: its stripe snapshots (target.striped_point) with the one disk made of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from azure.storage.blob.aio import BlobClient

from replicator.core.ranges import MAX_WRITE, Range, from_azure
from replicator.plumbing.blobio import read_range

VERIFY_WINDOW = 256 * 1024**3
"""Listing window: large enough that an idle 8 TiB disk costs 32 listings, small enough that one
window's range list stays small on a fragmented disk."""
VERIFY_CONCURRENCY = 4
"""Chunk pairs read at once: 4 x 2 x 4 MiB = 32 MiB of buffers at most."""

Route = Callable[[Range], list[tuple[BlobClient, Range]]]
"""Where a striped copy holds an export range: (stripe blob, range in that blob), in offset order."""

Slot = Callable[[], AbstractAsyncContextManager[None]]
"""What a read of the compared copy holds while it runs (the target's pacer slot; default: nothing)."""


@dataclass(frozen=True)
class Comparison:
    """The outcome of one comparison; `first_mismatch` is the lowest differing offset, if any."""

    expected_size: int
    actual_size: int
    bytes_compared: int
    first_mismatch: int | None

    @property
    def equal(self) -> bool:
        return self.expected_size == self.actual_size and self.first_mismatch is None


async def valid_ranges(client: BlobClient, start: int, end: int) -> list[Range]:
    """The valid page ranges of `client`'s blob (or snapshot) within `[start, end)`.

    Uses the SDK's paged `list_page_ranges`, which follows every NextMarker (unlike the managed-disk
    diff call, which is why the replicator itself lists differently).
    """
    found: list[Range] = []
    async for page in client.list_page_ranges(offset=start, length=end - start):
        if page.cleared:
            continue
        r = from_azure(page.start, page.end)
        found.append(Range(max(r.start, start), min(r.end, end)))
    return found


def union(a: Sequence[Range], b: Sequence[Range]) -> list[Range]:
    """The sorted union of two sorted, non-overlapping range lists, overlapping and touching parts merged.

    Why: a full comparison reads every byte either side holds (valid ranges of the source and of the
    copy); bytes that neither holds read as zeros on both sides and need not be read. Input that is
    not sorted and disjoint is not a listing, and is refused rather than compared.
    """
    for name, side in (("first", a), ("second", b)):
        for before, r in itertools.pairwise(side):
            if r.start < before.end:
                raise ValueError(
                    f"{name} range list is unsorted or overlapping at {r} (previous end {before.end})"
                )
    merged: list[Range] = []
    for r in sorted([*a, *b], key=lambda r: r.start):
        if merged and r.start <= merged[-1].end:
            merged[-1] = Range(merged[-1].start, max(merged[-1].end, r.end))
        else:
            merged.append(r)
    return merged


def _chunks(regions: Iterable[Range], chunk: int) -> Iterable[Range]:
    for region in regions:
        for pos in range(region.start, region.end, chunk):
            yield Range(pos, min(pos + chunk, region.end))


async def _read(actual: BlobClient | Route, r: Range) -> bytes:
    """`r` of the copy: one blob's, or a striped copy's through its route (a callable)."""
    if not callable(actual):
        return await read_range(actual, r)
    return b"".join([await read_range(client, local) for client, local in actual(r)])


async def compare_regions(
    expected: BlobClient,
    actual: BlobClient | Route,
    regions: Iterable[Range],
    *,
    chunk: int = MAX_WRITE,
    concurrency: int = VERIFY_CONCURRENCY,
    slot: Slot = contextlib.nullcontext,
) -> tuple[int, int | None]:
    """Compare `regions` (sorted) of both blobs, each read of `actual` holding a `slot`; returns
    (bytes compared, lowest differing offset)."""
    semaphore = asyncio.Semaphore(concurrency)
    mismatches: list[int] = []
    compared = 0

    async def read_actual(r: Range) -> bytes:
        async with slot():
            return await _read(actual, r)

    async def one(r: Range) -> None:
        nonlocal compared
        async with semaphore:
            a, b = await asyncio.gather(read_range(expected, r), read_actual(r))
        if a != b:
            offset = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
            )
            mismatches.append(r.start + offset)
        compared += r.length

    pending: set[asyncio.Task[None]] = set()
    async with asyncio.TaskGroup() as group:
        for r in _chunks(regions, chunk):
            if len(pending) >= concurrency * 2:  # bounded: never schedule the whole region list at once
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(group.create_task(one(r)))
    return compared, min(mismatches, default=None)


async def compare_blobs(
    expected: BlobClient,
    actual: BlobClient,
    *,
    window: int = VERIFY_WINDOW,
    concurrency: int = VERIFY_CONCURRENCY,
    tail: int = 0,
    slot: Slot = contextlib.nullcontext,
) -> Comparison:
    """Compare two page blobs (or snapshots) completely; see the module docstring for why this is exact.

    `concurrency` chunk pairs are read at once (memory: 2 x 4 MiB each at most). The sizes must be
    equal; the last `tail` bytes are not compared (a restored disk's VHD footer is its own: its
    uniqueId and creation time, engine.drill).
    """
    expected_size = (await expected.get_blob_properties()).size
    actual_size = (await actual.get_blob_properties()).size
    if expected_size != actual_size:
        return Comparison(expected_size, actual_size, 0, None)
    compared = 0
    for start in range(0, expected_size - tail, window):
        end = min(start + window, expected_size - tail)
        regions = union(await valid_ranges(expected, start, end), await valid_ranges(actual, start, end))
        n, mismatch = await compare_regions(expected, actual, regions, concurrency=concurrency, slot=slot)
        compared += n
        if mismatch is not None:
            return Comparison(expected_size, actual_size, compared, mismatch)
    return Comparison(expected_size, actual_size, compared, None)


async def compare_striped(
    whole: BlobClient,
    stripes: Sequence[tuple[int, int, BlobClient]],
    route: Route,
    *,
    window: int = VERIFY_WINDOW,
    concurrency: int = VERIFY_CONCURRENCY,
    tail: int = 0,
    stripes_expected: bool = False,
) -> Comparison:
    """Compare a blob with the same bytes over stripe blobs, completely (`compare_blobs`, stripe by stripe).

    `stripes`: (export offset, length, blob) of every stripe in order. The striped side's size is the
    sum of its stripe blobs' sizes, and each must be its stripe's length. `--verify` compares the
    source (`whole`, expected) with its striped copy; a drill compares a striped restore point
    (`stripes_expected`: the sizes are reported that way round) with the disk made of it, whose last
    `tail` bytes (its VHD footer, as `compare_blobs`' `tail`) are not compared.
    """
    whole_size = (await whole.get_blob_properties()).size
    sizes = [(await blob.get_blob_properties()).size for _, _, blob in stripes]
    striped_size = sum(sizes)

    def outcome(compared: int, mismatch: int | None) -> Comparison:
        if stripes_expected:
            return Comparison(striped_size, whole_size, compared, mismatch)
        return Comparison(whole_size, striped_size, compared, mismatch)

    if sizes != [length for _, length, _ in stripes] or whole_size != striped_size:
        return outcome(0, None)
    compared, limit = 0, whole_size - tail
    for offset, length, blob in stripes:
        for start in range(0, min(length, limit - offset), window):
            end = min(start + window, length, limit - offset)
            held = [Range(r.start + offset, r.end + offset) for r in await valid_ranges(blob, start, end)]
            regions = union(await valid_ranges(whole, start + offset, end + offset), held)
            n, mismatch = await compare_regions(whole, route, regions, concurrency=concurrency)
            compared += n
            if mismatch is not None:
                return outcome(compared, mismatch)
    return outcome(compared, None)
