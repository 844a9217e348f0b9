"""Stripes: how a source larger than one page blob is laid out over several blobs, pure.

Why: a page blob holds at most 8 TiB, a managed disk up to 32 TiB (64 TiB for Ultra and Premium SSD
v2). A larger export is written into stripes: stripe 0 is the base blob itself, stripe k >= 1 a
blob of its own beside it (`stripe_blob_name`), and every stripe but the last holds exactly
`STRIPE_BYTES` of the export. The boundaries are fixed multiples of `STRIPE_BYTES` (a multiple of
4 MiB, so the 4 MiB chunks of ranges.plan never straddle one when they are cut at multiples), so
the layout depends on the export's size alone: a resumed run, `restore`, `verify` and the next diff
all find every byte where the first run put it.

Every offset here is an offset of the export (the disk as Azure exports it, footer included) or of
one stripe blob; `split` is the one place that converts, so an off-by-one can only hide in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from replicator.core.ranges import MAX_WRITE, PAGE, Op, Range

STRIPE_BYTES = 8 * 1024**4
"""Width of every stripe but the last: the largest page blob (8 TiB), a multiple of 4 MiB."""


@dataclass(frozen=True, slots=True)
class Stripe:
    """Stripe `index` holds the export's bytes `[start, start + length)` at offsets 0..length of its blob."""

    index: int
    start: int
    length: int

    @property
    def end(self) -> int:
        """First export offset past this stripe."""
        return self.start + self.length


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size <= 0 or size % PAGE:
        raise ValueError(f"an export's size must be a positive multiple of {PAGE} bytes, got {size!r}")


def stripe_count(size: int) -> int:
    """How many blobs an export of `size` bytes needs (1 when it fits in one page blob)."""
    _check_size(size)
    return -(-size // STRIPE_BYTES)


def layout(size: int) -> list[Stripe]:
    """Every stripe of an export of `size` bytes, in offset order (at most 8 for a 64 TiB disk)."""
    width = STRIPE_BYTES
    return [Stripe(i, i * width, min(width, size - i * width)) for i in range(stripe_count(size))]


def stripe_blob_name(base_name: str, index: int) -> str:
    """The blob that holds stripe `index` of the base blob `base_name`: the base itself for stripe 0."""
    if index < 0:
        raise ValueError(f"a stripe index is 0 or more, got {index}")
    return base_name if index == 0 else f"{base_name}.stripe{index}"


def split(op: Op) -> Iterator[tuple[int, Op]]:
    """`op` as (stripe index, the same op in that stripe's blob offsets), cut at every stripe boundary.

    A copy that straddles a boundary becomes two copies, a clear of many stripes one clear each;
    the bytes are the same bytes, each at the offset of its stripe blob that holds it.
    """
    pos = op.range.start
    while pos < op.range.end:
        index = pos // STRIPE_BYTES
        base = index * STRIPE_BYTES
        end = min(op.range.end, base + STRIPE_BYTES)
        yield index, Op(op.kind, Range(pos - base, end - base))
        pos = end


def locate(r: Range) -> tuple[int, Range]:
    """The stripe holding the export range `r` and `r` in that stripe blob's offsets; ValueError
    when `r` straddles a boundary (`cut` it first)."""
    index = r.start // STRIPE_BYTES
    base = index * STRIPE_BYTES
    if r.end > base + STRIPE_BYTES:
        raise ValueError(f"{r} straddles the stripe boundary at {base + STRIPE_BYTES}; cut it first")
    return index, Range(r.start - base, r.end - base)


def resume_point(streams: Sequence[tuple[int, bool]], size: int) -> int:
    """The checkpoint of a plan written as one stream per stripe at once: every byte below it is written.

    `streams`, in stripe order: each stream's watermark low (every op it issued below that is
    written) and whether it is complete (planned to its end, nothing in flight). The first incomplete
    stream's low is the answer: a later stripe's progress cannot count while an earlier stripe has
    ops not yet written (a resumed run writes them again; writes are idempotent). All complete: `size`.
    """
    return next((low for low, complete in streams if not complete), size)


def copy_workers(ceiling: int, written: Sequence[Stripe], cap: int) -> int:
    """Copy workers for a job that writes the stripe blobs `written` at once, each paced up to `ceiling`
    requests in flight: enough for every blob's pacer to reach its ceiling together (a worker holds one
    request; a stripe too short for that many writes of MAX_WRITE, such as the footer's 512 bytes,
    counts for the writes it can take), but no more than `cap` (the process's connections) unless one
    ceiling alone is more.

    Why: the job feeds the stripes' ops in turn into one pool, so a pool of one ceiling gave each of
    two stripes half of it (the 16 TiB scattered diff at 60 ms: 32 in flight per blob, ~440 of its
    500 requests/s, 1.42x the stripes' bound)."""
    if ceiling < 1 or not written:
        raise ValueError(f"a ceiling and the stripes written are 1 or more, got {ceiling} and {len(written)}")
    wanted = sum(min(ceiling, -(-stripe.length // MAX_WRITE)) for stripe in written)
    return max(ceiling, min(wanted, cap))


def to_export(stripe: Stripe, r: Range) -> Range:
    """The export's offsets of `r`, given in stripe `stripe`'s blob offsets: the inverse of `split`
    (a striped restore lists each stripe snapshot in its own offsets and writes the disk in the export's)."""
    if r.end > stripe.length:
        raise ValueError(f"{r} is not within stripe {stripe.index} of {stripe.length} bytes")
    return Range(stripe.start + r.start, stripe.start + r.end)
