"""A striped restore point in the target account: each stripe's blob snapshot, how a Put Page From
URL reads it, for the restore that copies them into one disk, and where a drill reads its bytes to
compare that disk with them.

Its VHD footer is checked where every restore point's is (target.restore_points.check_footer).
A restore point of a source larger than one page blob is the base blob's snapshot plus one blob
snapshot per further stripe, their times in `RestorePointMeta.stripe_snapshots` (core.stripes has the
layout: stripe 0 the base blob, stripe k its `.stripe<k>` sibling, fixed 8 TiB boundaries). Offsets
here are the export's (the disk as Azure exports it, VHD footer included), which are also the
offsets of the disk made of it; `core.stripes.split` converts them to a stripe's own.
"""

from __future__ import annotations

from azure.storage.blob.aio import BlobClient

from replicator.core.errors import UserError
from replicator.core.ranges import PAGE, Op, Range
from replicator.core.stripes import Stripe, layout, split
from replicator.target.page_blob import PageBlobTarget
from replicator.target.restore_points import PointInfo


class StripedPoint:
    """The stripes of one restore point (its ID is stripe 0's snapshot) on `target`."""

    def __init__(self, target: PageBlobTarget, point: PointInfo) -> None:
        snapshots = (point.id, *point.stripe_snapshots)
        whole = point.size_bytes > 0 and point.size_bytes % PAGE == 0
        stripes = layout(point.size_bytes) if whole else []
        if len(stripes) != len(snapshots):
            raise UserError(
                f"restore point {point.id} records {len(snapshots)} stripe snapshots, and its size "
                f"{point.size_bytes} needs {len(stripes)}: it is damaged; restore another one."
            )
        self.target = target
        self.point = point
        self.stripes: list[tuple[Stripe, str]] = list(zip(stripes, snapshots, strict=True))
        # One client per stripe, built once: building one per write cost a fifth of a restore's CPU.
        self._clients = [target.stripe_point_client(s.index, snapshot) for s, snapshot in self.stripes]

    def client(self, index: int) -> BlobClient:
        """A client of stripe `index`'s blob snapshot (its valid ranges are listed through it)."""
        return self._clients[index]

    def parts(self) -> list[tuple[int, int, BlobClient]]:
        """(export offset, length, stripe snapshot) of every stripe in order: what a drill compares
        the disk made of this restore point with (engine.verify.compare_striped)."""
        return [(stripe.start, stripe.length, self.client(stripe.index)) for stripe, _ in self.stripes]

    def route(self, r: Range) -> list[tuple[BlobClient, Range]]:
        """The stripe snapshots holding the export range `r` (which may span two stripes), each with its
        part of `r` in that snapshot's offsets (core.stripes.split)."""
        return [(self.client(index), op.range) for index, op in split(Op("copy", r))]

    async def copy_source(self, op: Op) -> tuple[str, Range, str | None]:
        """Where a Put Page From URL reads the export's `op` (within one stripe): the stripe snapshot's
        URL, the range in it, and the `x-ms-copy-source-authorization` value (PageBlobTarget.copy_source:
        both secrets, never logged)."""
        [(index, local)] = split(op)
        url, authorization = await self.target.copy_source(self.client(index))
        return url, local.range, authorization
