"""Progress as log events: the periodic record (driven by a fake clock), its rate over a window, the
ticker that logs it, and the wording of a snapshot's summary."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from replicator.core.account_budget import BudgetRecord
from replicator.core.pacing import PacingRecord
from replicator.core.progress import SnapshotResult
from replicator.observe import jsonlog
from replicator.observe.progress_log import (
    RATE_WINDOW_SECONDS,
    LogProgress,
    RateWindow,
    reported,
    snapshot_summary,
)

MiB = 1024 * 1024


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()  # not a terminal: JSON lines
    handler = jsonlog.setup("info", out)
    yield out
    logging.getLogger().removeHandler(handler)


def lines(out: io.StringIO, name: str) -> list[dict]:
    return [r for r in map(json.loads, out.getvalue().splitlines()) if r["event"] == name]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_is_over_the_last_window_not_since_the_start() -> None:
    """An hour at 10 MiB/s, then a minute at 1 MiB/s: the record says 1 MiB/s, not the average."""
    window = RateWindow()
    window.restart(0.0)
    done = 0
    for t in range(30, 3601, 30):
        done += 30 * 10 * MiB
        window.rate(float(t), done)
    assert window.rate(3600.0, done) == pytest.approx(10 * MiB)
    for t in (3630, 3660):
        done += 30 * MiB
        rate = window.rate(float(t), done)
    assert rate == pytest.approx(1 * MiB)  # since-start would say about 9.9 MiB/s


def test_before_a_full_window_the_rate_is_since_the_snapshot_started() -> None:
    window = RateWindow()
    window.restart(10.0)
    assert window.rate(10.0, 0) is None  # no time has passed: no rate, not a division by zero
    assert window.rate(20.0, 40 * MiB) == pytest.approx(4 * MiB)
    assert RATE_WINDOW_SECONDS == 60.0


def _result(name: str = "snap-1", **fields) -> SnapshotResult:
    return SnapshotResult(f"/subscriptions/s/snapshots/{name}", name, "full", "the target is empty", **fields)


def test_a_record_carries_snapshot_bytes_total_rate_and_eta(stream: io.StringIO) -> None:
    clock = Clock()
    progress = LogProgress(clock=clock)
    progress.on_snapshot_start(_result(), 1, 2)
    progress.on_planned(64 * MiB, 0)  # listing still under way
    clock.now += 30
    progress.on_written(12 * MiB)
    progress.report()
    progress.on_planned(36 * MiB, 4 * MiB)
    progress.on_listing_done()
    clock.now += 30
    progress.on_written(18 * MiB)
    progress.on_retry("copy [0, 4194304)", 1, 0.5, "503 ServerBusy")
    progress.report()

    listing, final = lines(stream, "progress")
    assert listing["total_final"] is False and "eta_seconds" not in listing
    assert (listing["bytes_done"], listing["bytes_total"]) == (12 * MiB, 64 * MiB)
    assert listing["message"] == (
        "[1/2] snap-1: 12.0 MiB of 64.0 MiB listed so far copied, 409.6 KiB/s; still listing"
    )
    assert {
        k: final[k] for k in ("bytes_done", "bytes_total", "total_final", "retries", "index", "total")
    } == {
        "bytes_done": 30 * MiB,
        "bytes_total": 100 * MiB,
        "total_final": True,
        "retries": 1,
        "index": 1,
        "total": 2,
    }
    assert final["bytes_per_second"] == round(30 * MiB / 60)
    assert final["eta_seconds"] == round(70 * MiB / (30 * MiB / 60))  # 140 s
    assert (
        final["message"]
        == "[1/2] snap-1: 30.0 MiB of 100.0 MiB copied (30 %), 512.0 KiB/s, about 2 min 20 s left"
    )
    assert final["snapshot"].endswith("/snap-1") and final["seconds"] == 60.0


def test_a_plan_counted_ahead_gives_the_total_and_an_eta_while_the_copy_still_lists(
    stream: io.StringIO,
) -> None:
    clock = Clock()
    progress = LogProgress(clock=clock)
    progress.on_snapshot_start(_result(), 1, 1)
    progress.on_planned(64 * MiB, 0)
    progress.on_total(1024 * MiB)  # job.JobRunner.count_total
    clock.now += 10
    progress.on_written(64 * MiB)
    progress.report()
    [record] = lines(stream, "progress")
    assert (record["bytes_total"], record["total_final"], record["eta_seconds"]) == (1024 * MiB, True, 150)
    assert (
        record["message"]
        == "[1/1] snap-1: 64.0 MiB of 1.0 GiB copied (6 %), 6.4 MiB/s, about 2 min 30 s left"
    )


def test_a_stalled_copy_says_so(stream: io.StringIO) -> None:
    clock = Clock()
    progress = LogProgress(clock=clock)
    progress.on_snapshot_start(_result(), 1, 1)
    progress.on_planned(8 * MiB, 0)
    progress.on_listing_done()
    clock.now += 61
    progress.report()
    [record] = lines(stream, "progress")
    assert record["bytes_per_second"] == 0 and "eta_seconds" not in record
    assert record["message"].endswith("0 B/s; nothing written in the last 60 s")


def test_a_resumed_copy_counts_what_the_checkpoint_covers_apart(stream: io.StringIO) -> None:
    clock = Clock()
    progress = LogProgress(clock=clock)
    progress.on_snapshot_start(_result(), 1, 1)
    progress.on_skipped(512 * MiB)
    progress.on_planned(4 * MiB, 0)
    progress.on_listing_done()
    clock.now += 2
    progress.on_written(4 * MiB)
    progress.report()
    [record] = lines(stream, "progress")
    assert (record["skipped_bytes"], record["bytes_done"], record["eta_seconds"]) == (512 * MiB, 4 * MiB, 0)
    assert "512.0 MiB copied before the resume" in record["message"]


def test_without_a_snapshot_under_way_a_record_names_the_last_step(stream: io.StringIO) -> None:
    progress = LogProgress(run_id="r1")
    progress.report()
    progress.on_message("waiting for the lease on https://a.blob.core.windows.net/c/b")
    progress.report()
    first, second = lines(stream, "progress")
    assert first["message"] == "working: starting" and first["snapshots_done"] == 0
    assert second["step"].startswith("waiting for the lease") and second["run_id"] == "r1"


async def test_the_ticker_logs_records_while_the_work_runs_and_stops_with_it() -> None:
    """Deterministic: the work ends when the ticker has reported three times, whatever the clock does."""
    reports: list[int] = []
    enough = asyncio.Event()

    class Counting(LogProgress):
        def report(self) -> None:
            reports.append(1)
            if len(reports) == 3:
                enough.set()

    async def work() -> str:
        await enough.wait()
        return "done"

    progress = Counting()
    assert await reported(work(), progress, 0.001) == "done"
    seen = len(reports)
    await asyncio.sleep(0.01)
    assert seen == len(reports) >= 3  # cancelled with the work: no record after it
    assert await reported(asyncio.sleep(0, "bar"), progress, None) == "bar"  # None: no ticker at all


async def test_a_failing_record_never_fails_the_run(caplog: pytest.LogCaptureFixture) -> None:
    failed = asyncio.Event()

    class Broken(LogProgress):
        def report(self) -> None:
            failed.set()
            raise RuntimeError("bug in a record")

    assert await reported(failed.wait(), Broken(), 0.001) is True
    assert "could not log a progress record" in caplog.text


def test_a_summary_agrees_in_number_and_says_what_clears_are() -> None:
    one = _result(restore_point="rp", changed_bytes=MiB, copied_bytes=MiB, requests=1, retries=1, seconds=2)
    assert snapshot_summary(one) == (
        "snap-1: restore point rp; full copy (the target is empty); 1.0 MiB changed, 1.0 MiB copied, "
        "1 request, 1 retry, 2.0 s"
    )
    full = _result(restore_point="rp", cleared_bytes=64 * 1024 * MiB, requests=2, retries=0)
    assert "64.0 GiB zeroed where the source is empty (the target held data)" in snapshot_summary(full)
    assert "2 requests, 0 retries" in snapshot_summary(full)
    diff = SnapshotResult("id", "s2", "diff", "diff from s1", cleared_bytes=8192, merged_gap_bytes=4096)
    text = snapshot_summary(diff)
    assert (
        "(+4.0 KiB merged gaps)" in text and "8.0 KiB cleared (trimmed on the source since the base)" in text
    )
    assert "planned, nothing written" in text


def test_a_summary_names_the_pacing_only_when_the_blob_throttled() -> None:
    calm = _result(restore_point="rp", pacing=PacingRecord(8, 64, 64, throttled=0))
    assert "throttled" not in snapshot_summary(calm)
    busy = _result(restore_point="rp", pacing=PacingRecord(5, 32, 20, throttled=3))
    assert snapshot_summary(busy).endswith("3 requests throttled, requests in flight 5-32 (last 20)")


def test_a_reason_that_names_the_mode_is_said_once(stream: io.StringIO) -> None:
    """`diff from s1` is the whole phrase: never "diff copy (diff from s1)"; a reason that does not
    name the mode follows it ("full copy (the target has no restore point)")."""
    progress = LogProgress()
    diff = SnapshotResult("/subscriptions/s/snapshots/s2", "s2", "diff", "diff from s1", restore_point="rp")
    progress.on_snapshot_start(diff, 2, 2)
    progress.on_snapshot_done(diff)
    full = SnapshotResult("/subscriptions/s/snapshots/s1", "s1", "full", "full copy")
    progress.on_snapshot_start(full, 1, 1)
    [diff_start, full_start] = [r["message"] for r in lines(stream, "snapshot_start")]
    assert (diff_start, full_start) == ("[2/2] s2: diff from s1", "[1/1] s1: full copy")
    [done] = lines(stream, "snapshot_done")
    assert done["message"].startswith("s2: restore point rp; diff from s1; ")
    assert _result().how == "full copy (the target is empty)"


def test_a_vm_disk_is_named_by_its_place_among_the_vm_disks(stream: io.StringIO) -> None:
    """A disk of a VM run copies one restore point per group: its lines say which disk of how many
    (`vm1-data1 (disk 2 of 3)`), never `[1/1]`, and carry `disk`."""
    clock = Clock()
    vm = LogProgress(clock=clock, source="vm1")
    disk = vm.for_disk("vm1-data1", 2, 3)
    point = _result("vm1-data1_0c8f", restore_point="rp")
    disk.on_snapshot_start(point, 1, 1)
    disk.on_planned(8 * MiB, 0)
    clock.now += 10
    disk.on_written(4 * MiB)
    vm.report()  # the VM's record: one per disk under way
    disk.on_snapshot_done(point)
    names = ("snapshot_start", "progress", "snapshot_done")
    [start], [record], [done] = (lines(stream, name) for name in names)
    assert start["message"] == "vm1-data1 (disk 2 of 3): full copy (the target is empty)"
    assert record["message"].startswith("vm1-data1 (disk 2 of 3): 4.0 MiB of 8.0 MiB listed so far copied")
    assert done["message"].startswith("vm1-data1: restore point rp; full copy (the target is empty); ")
    assert {r["disk"] for r in (start, record, done)} == {"vm1-data1"}
    assert "[1/1]" not in stream.getvalue()


def test_a_summary_names_the_account_budget_only_when_it_bound() -> None:
    calm = _result(restore_point="rp", account_budget=BudgetRecord.at("https://a", 20_000, 3e9))
    assert "budget" not in snapshot_summary(calm)
    held = BudgetRecord.at("https://a", 400, 3e9)
    held.moved(260, 3e9)
    held.waited(0.5)
    held.waited(0.25)
    held.refused("requests")
    busy = _result(restore_point="rp", account_budget=held)
    assert snapshot_summary(busy).endswith(
        "the account's budget (260-260 requests/s) held 2 requests 0.8 s, 1 account-level 503"
    )
