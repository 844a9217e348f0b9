"""The bytes of chunk writes in flight at once (`--max-in-flight`), shared by the copy workers of a run.

Why, beside the worker count: a page blob serves about 500 requests/s *and* 60 MiB/s. Small
scattered writes need many requests in flight to reach 500/s across a 60 ms link (`concurrency`),
but the same number of 4 MiB chunks would queue several seconds of bytes at the blob, which Azure
answers with 503 ServerBusy, and in stream mode would hold one 4 MiB buffer per worker. Bounding
the bytes in flight keeps many small requests going while large ones queue here, in order, instead
of at the service. The bound is a replicator.core.weighted.WeightedSemaphore of bytes: first come first
served, so a 4 MiB chunk is never starved by small writes, and a request larger than the whole
bound takes the whole bound (never deadlocks).

Stream mode holds the bytes in flight in memory, so its bound is one per process (per event loop),
shared by every replication the process runs (a fleet worker runs several): memory stays bounded by
one `--max-in-flight` whatever the number of disks. Server mode holds no bytes, so each run has its own.
"""

from __future__ import annotations

import asyncio
import weakref

from replicator.core.weighted import WeightedSemaphore

_PROCESS_BYTES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WeightedSemaphore] = (
    weakref.WeakKeyDictionary()
)


def process_in_flight_bytes(limit: int) -> WeightedSemaphore:
    """The in-flight bytes shared by every stream-mode run of the running loop (the first limit wins)."""
    loop = asyncio.get_running_loop()
    in_flight = _PROCESS_BYTES.get(loop)
    if in_flight is None:
        in_flight = _PROCESS_BYTES[loop] = WeightedSemaphore(limit)
    return in_flight
