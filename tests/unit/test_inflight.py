"""The bytes in flight of stream mode: one bound per process (the semaphore itself: test_weighted)."""

from __future__ import annotations

from replicator.engine.inflight import process_in_flight_bytes


async def test_stream_runs_of_one_process_share_one_bound() -> None:
    first = process_in_flight_bytes(8)
    assert process_in_flight_bytes(16) is first and first.capacity == 8
