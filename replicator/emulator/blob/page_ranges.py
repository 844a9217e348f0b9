"""Get Page Ranges: a version's valid ranges, or its diff against an ancestor, paged by an opaque marker.

This is the surface Azurite lacks and the replicator depends on most (`x-ms-previous-snapshot-url`),
so its refusals follow Azure's: an unknown or non-snapshot previous version, a diff across a resize
over 4 TiB, and a previous version of another lineage are each their own coded error.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator

from replicator.emulator.blob.conditions import Conditions
from replicator.emulator.blob.model import BlobProps, PageRangeList, SnapshotRef
from replicator.emulator.blob.page_blobs import TIB
from replicator.emulator.blob.rows import BlobRows
from replicator.emulator.errors import blob as blob_errors

DIFF_BOUNDARY = 4 * TIB + 512  # Azure refuses diffs across a resize over 4 TiB (plus footer)


class PageRanges(BlobRows):
    """The page-range listing of the blob backend."""

    def page_ranges(
        self,
        account: str,
        container: str,
        blob: str,
        snapshot: str | None,
        *,
        start: int = 0,
        end: int | None = None,
        previous: SnapshotRef | None = None,
        marker: str | None = None,
        limit: int,
        timeout_over: int | None = None,
        lease_id: str | None = None,
        conditions: Conditions | None = None,
    ) -> PageRangeList:
        """Valid ranges of a version, or (with `previous`) its diff against an ancestor version.

        `[start, end)` is the window (clipped to the size); at most `limit` runs per answer, and a
        `next_marker` (opaque) while more remain. With `timeout_over`, a window whose rest (from the
        marker) holds more runs answers 500 OperationTimedOut: Azure's server timeout on a fragmented
        page blob, modelled by count since Azure publishes no figure (docs/emulator.md).
        """
        props = self.get_properties(
            account, container, blob, snapshot, lease_id=lease_id, conditions=conditions
        )
        window_end = props.size if end is None else min(end, props.size)
        pos = max(start, _decode_marker(marker)) if marker else start
        if previous is None:
            runs: Iterator[tuple[int, int, bool]] = (
                (s, e, True) for s, e in self.store.valid_ranges(props.layer, pos, window_end)
            )
        else:
            base = self._diff_base(props, previous)
            runs = self.store.diff(props.layer, base, pos, window_end)
        if timeout_over is not None:
            scanned = list(itertools.islice(runs, timeout_over + 1))  # at most timeout_over + 1 held
            if len(scanned) > timeout_over:
                raise blob_errors.operation_timed_out()
            runs = iter(scanned)
        out: list[tuple[int, int, bool]] = []
        next_marker = None
        for run in runs:
            if len(out) == limit:
                next_marker = _encode_marker(out[-1][1])
                break
            out.append(run)
        return PageRangeList(props.size, out, next_marker, props)

    def _diff_base(self, props: BlobProps, previous: SnapshotRef) -> int:
        try:
            prev = self._version(previous)
        except blob_errors.BlobError as exc:
            raise blob_errors.previous_snapshot_not_found() from exc
        if previous.snapshot is None and not prev["read_only"]:
            raise blob_errors.previous_snapshot_not_found("The previous version must be a snapshot.")
        if (props.size > DIFF_BOUNDARY) != (prev["size"] > DIFF_BOUNDARY):
            raise blob_errors.snapshot_diff_across_resize_not_supported()
        if not self.store.is_ancestor(prev["layer"], props.layer):
            raise blob_errors.previous_snapshot_operation_not_supported()
        return prev["layer"]


def _encode_marker(offset: int) -> str:
    return base64.urlsafe_b64encode(f"pr1:{offset}".encode()).decode().rstrip("=")


def _decode_marker(marker: str) -> int:
    try:
        text = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode()
        kind, offset = text.split(":")
        if kind != "pr1":
            raise ValueError(kind)
        return int(offset)
    except ValueError as exc:
        raise blob_errors.invalid_query_parameter_value(
            "The marker is not one this server returned."
        ) from exc
