"""The baseline contender: what the public sample does, as a program of its own.

The sample lists the diff of the whole disk at once, then copies each changed range with
sequential `Put Page From URL` calls of 4 MiB, one request in flight, no coalescing, and clears
each cleared range. One fix in its favour: the sample's `get_page_range_diff_for_managed_disk`
drops `NextMarker` (a diff over 10,000 ranges loses data silently); this contender follows every
marker so it copies exactly what the others copy and can be verified.

Its time is linear in its requests (one in flight), so with `BENCH_BUDGET_SECONDS` it stops after
that long and reports what it did and what remained; the harness extrapolates and says so.

Input from the environment (never argv: the SAS URLs are secrets): BENCH_SOURCE_SAS (current
snapshot), BENCH_BASE_SAS (base snapshot), BENCH_TARGET (target blob URL, bearer credential from
REPLICATOR_ACCESS_TOKEN), BENCH_BUDGET_SECONDS (optional). Output: one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from azure.storage.blob import BlobClient

from replicator.plumbing.credentials import sync_credential

CHUNK = 4 * 1024 * 1024
"""Put Page From URL writes at most 4 MiB: the sample's chunk."""


def list_diff(source: BlobClient, base_url: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(changed, cleared) ranges as (start, end inclusive), following every NextMarker."""
    changed: list[tuple[int, int]] = []
    cleared: list[tuple[int, int]] = []
    marker = None
    while True:
        page = source._client.page_blob.get_page_ranges_diff(prev_snapshot_url=base_url, marker=marker)
        changed += [(r.start, r.end) for r in page.page_range or ()]
        cleared += [(r.start, r.end) for r in page.clear_range or ()]
        marker = page.next_marker
        if not marker:
            return changed, cleared


def run(source_url: str, base_url: str, target_url: str, budget: float | None) -> dict[str, Any]:
    started = time.monotonic()
    source = BlobClient.from_blob_url(source_url)
    target = BlobClient.from_blob_url(target_url, credential=sync_credential())
    changed, cleared = list_diff(source, base_url)
    listed = time.monotonic()
    ops = [
        ("copy", pos, min(CHUNK, end + 1 - pos))
        for start, end in changed
        for pos in range(start, end + 1, CHUNK)
    ]
    ops += [("clear", start, end + 1 - start) for start, end in cleared]
    done = written = 0
    for kind, offset, length in ops:
        if budget is not None and time.monotonic() - started > budget:
            break
        if kind == "copy":
            target.upload_pages_from_url(source_url, offset=offset, length=length, source_offset=offset)
            written += length
        else:
            target.clear_page(offset=offset, length=length)
        done += 1
    return {
        "list_seconds": round(listed - started, 3),
        "copy_seconds": round(time.monotonic() - listed, 3),
        "requests_done": done,
        "requests_total": len(ops),
        "bytes_written": written,
        "changed_bytes": sum(end + 1 - start for start, end in changed),
        "complete": done == len(ops),
    }


def main() -> int:
    budget = os.environ.get("BENCH_BUDGET_SECONDS")
    result = run(
        os.environ["BENCH_SOURCE_SAS"],
        os.environ["BENCH_BASE_SAS"],
        os.environ["BENCH_TARGET"],
        float(budget) if budget else None,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
