"""`replicate status`'s pure part: durations, verdicts from facts and a moment, the table, the JSON
(checked against the published schema), and the exit code of a fleet."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.cli import main as cli_main
from replicator.core.errors import UserError
from replicator.core.freshness import (
    EXIT_CODES,
    VM_DISK_NOTE,
    Checked,
    Count,
    Facts,
    GroupFacts,
    RunState,
    SourceSnapshot,
    human_duration,
    judge,
    parse_duration,
    render,
    summary,
    worst,
)
from replicator.core.output import envelope
from replicator.core.progress import Protected
from replicator.fleet import status
from replicator.fleet.jobs import JobSpec
from replicator.fleet.status import MAX_AGE_ENV, max_age, newest_point
from replicator.settings.config import Config
from replicator.target.restore_points import PointInfo
from replicator.target.state import (
    InProgress,
    RestorePoint,
    SnapshotRef,
    State,
)
from tests import envelope as schema

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 86400.0
ACCOUNT = "https://acct.blob.core.windows.net"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("26h", 26 * HOUR),
        ("90m", 5400),
        ("2d", 2 * DAY),
        ("3600", 3600),
        ("1d12h", 36 * HOUR),
        ("1d 2h", 26 * HOUR),
        ("1.5h", 5400),
        (" 45S ", 45),
        ("0.5", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected a duration like 26h"),
        ("abc", "expected a duration like 26h"),
        ("1x", "got '1x'"),
        ("-5", "expected a duration"),
        ("h", "expected a duration"),
        ("1h30", "expected a duration"),
        ("1e9", "expected a duration"),
        ("0", "more than zero"),
        ("0s", "more than zero"),
        ("x" * 500, "..."),
    ],
)
def test_bad_durations_say_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert says in str(caught.value) and len(str(caught.value)) < 300


@given(st.integers(1, 10**7), st.sampled_from(sorted(UNITS)))
def test_every_unit_multiplies(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * UNITS[unit]
    assert parse_duration(f"{n}{unit.upper()}") == n * UNITS[unit]


@given(st.floats(1, 10**9))
def test_a_printed_duration_reads_back_within_its_last_unit(seconds: float) -> None:
    """What the table prints is what --max-age accepts, cut to its two largest units."""
    shown = parse_duration(human_duration(seconds))
    granularity = 3600 if seconds >= DAY else 60 if seconds >= HOUR else 1
    assert 0 <= seconds - shown < granularity


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (59, "59s"), (60, "1m 0s"), (3725, "1h 2m"), (93784, "1d 2h"), (-3, "0s")],
)
def test_human_durations(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_max_age_comes_from_the_flag_then_the_environment() -> None:
    assert max_age("26h", {MAX_AGE_ENV: "1h"}) == 26 * HOUR
    assert max_age(None, {MAX_AGE_ENV: "90m"}) == 5400
    with pytest.raises(UserError, match=f"^{MAX_AGE_ENV} \\(environment variable\\): expected a duration"):
        max_age(None, {MAX_AGE_ENV: "soon"})
    with pytest.raises(UserError, match=r"^--max-age is required"):
        max_age(None, {})


# ---------------------------------------------------------------- verdicts


def point(age: timedelta, name: str = "snap-1") -> Protected:
    return Protected("2026-12-03T11:00:00.0000000Z", f"/sub/snapshots/{name}", name, NOW - age)


def protected(lag: timedelta, **extra: object) -> Facts:
    """A target whose newest restore point holds a snapshot `lag` old, its source with 3 snapshots."""
    facts = Facts(
        "https://acct.blob.core.windows.net/c/disk.vhd",
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d",
        restore_points=2,
        newest=point(lag),
        lease_held=False,
        newest_snapshot=SourceSnapshot("/sub/snapshots/snap-1", "snap-1", NOW - lag),
        newest_replicated=True,
        source_snapshots=Count(3, 500),
        active_grants=Count(0, 5),
    )
    return replace(facts, **extra)


def stopped(idle: timedelta, *, running: bool = False) -> RunState:
    return RunState("/sub/snapshots/snap-2", "snap-2", "diff", 512 * 1024**2, 1024**3, running, NOW - idle)


def test_unreadable_is_unknown_with_the_error() -> None:
    facts = protected(timedelta(hours=1), error="access to https://x was denied (403); check the SAS.")
    assert judge(facts, NOW, DAY) == ("unknown", "access to https://x was denied (403); check the SAS.")


@pytest.mark.parametrize(
    ("facts", "says"),
    [
        (Facts("t"), "the target blob does not exist: nothing can be restored."),
        (Facts("t", lease_held=False), "no restore point: nothing can be restored."),
        (
            Facts("t", lease_held=True, run=stopped(timedelta(0), running=True)),
            "no restore point (a first copy is running snap-2 diff 512.0 MiB/1.0 GiB): "
            "nothing can be restored.",
        ),
        (
            protected(timedelta(minutes=5), source_snapshots=Count(0, 500), newest_snapshot=None),
            "the source disk has no incremental snapshot",
        ),
    ],
)
def test_unprotected(facts: Facts, says: str) -> None:
    verdict, reason = judge(facts, NOW, DAY)
    assert verdict == "unprotected" and reason.startswith(says)


@given(lag=st.floats(0, 10 * DAY), limit=st.floats(1, 10 * DAY))
def test_lag_alone_decides_fresh_or_stale(lag: float, limit: float) -> None:
    facts = protected(timedelta(seconds=lag))
    assert facts.newest is not None
    held = facts.newest.lag_seconds(NOW)
    assert judge(facts, NOW, limit).verdict == ("fresh" if held <= limit else "stale")


def test_stale_and_fresh_say_the_lag_against_the_maximum_age() -> None:
    assert judge(protected(timedelta(hours=30)), NOW, 26 * HOUR) == (
        "stale",
        "the lag 1d 6h exceeds the maximum age 1d 2h.",
    )
    assert judge(protected(timedelta(hours=26)), NOW, 26 * HOUR).verdict == "fresh"  # the bound is fresh
    not_yet = protected(timedelta(hours=2), newest_replicated=False)
    assert judge(not_yet, NOW, DAY).reason == (
        "the lag 2h 0m is within the maximum age 1d 0h; the newest snapshot snap-1 is not replicated yet."
    )


def test_a_run_stopped_longer_than_the_maximum_age_is_stale() -> None:
    """Even when the lag is within it (a rolled-back target): nothing has resumed it for too long."""
    facts = protected(timedelta(hours=1), run=stopped(timedelta(hours=30)))
    verdict, reason = judge(facts, NOW, DAY)
    assert verdict == "stale"
    assert reason == (
        "a run stopped part-way (stopped snap-2 diff 512.0 MiB/1.0 GiB) and nothing resumed it for 1d 6h, "
        "more than the maximum age 1d 0h."
    )
    # Running now (lease held), or stopped recently: the next schedule resumes it.
    assert judge(replace(facts, run=stopped(timedelta(hours=30), running=True)), NOW, DAY).verdict == "fresh"
    assert judge(replace(facts, run=stopped(timedelta(hours=2))), NOW, DAY).verdict == "fresh"


def test_the_fleet_takes_its_worst_verdict() -> None:
    assert worst([]) == "fresh"
    assert worst(["fresh", "unknown"]) == "unknown"
    assert worst(["unknown", "stale", "fresh"]) == "stale"
    assert worst(["stale", "unprotected", "unknown"]) == "unprotected"
    assert EXIT_CODES == {"fresh": 0, "unknown": 1, "stale": 5, "unprotected": 4}


# ---------------------------------------------------------------- output


def fleet() -> list[Checked]:
    facts = [
        protected(timedelta(minutes=3)),
        protected(timedelta(days=2), target="https://acct.blob.core.windows.net/c/old.vhd"),
        Facts(f"{ACCOUNT}/c/new.vhd", "/sub/disks/new", source_snapshots=Count(0, 500)),
    ]
    return [Checked(f, judge(f, NOW, 26 * HOUR), NOW) for f in facts]


def test_the_table_has_a_row_per_target_and_says_why_each_is_not_fresh() -> None:
    lines = render(fleet(), 26 * HOUR)
    assert lines[0].split() == [
        "target", "verdict", "newest", "restore", "point", "lag", "newest", "replicated", "run", "lease",
        "snapshots", "grants",
    ]  # fmt: skip
    fresh = lines[1].split()
    assert fresh == [
        "https://acct.blob.core.windows.net/c/disk.vhd", "fresh", "snap-1", "2026-12-03T11:57:00.000000Z",
        "3m", "0s", "yes", "-", "free", "3/500", "0/5",
    ]  # fmt: skip
    assert lines[2].split()[:2] == ["https://acct.blob.core.windows.net/c/old.vhd", "stale"]
    assert "2d 0h" in lines[2]
    assert lines[3].split() == ["https://acct.blob.core.windows.net/c/new.vhd", "unprotected"] + ["-"] * 5 + [
        "0/500",
        "-",
    ]
    assert lines[4] == f"{ACCOUNT}/c/old.vhd: stale: the lag 2d 0h exceeds the maximum age 1d 2h."
    assert lines[5].startswith("https://acct.blob.core.windows.net/c/new.vhd: unprotected: the target blob")
    assert lines[6] == "3 targets: 1 fresh, 1 stale, 1 unprotected (maximum age 1d 2h)"


def test_the_envelope_validates_and_its_error_names_the_worst_targets_first() -> None:
    checked = fleet()
    verdict = worst([c.judgement.verdict for c in checked])
    doc = envelope(
        "status",
        status=verdict,
        exit_code=EXIT_CODES[verdict],
        error=summary(checked),
        started_at=NOW,
        payload={"max_age_seconds": 26 * HOUR, "targets": [c.to_json() for c in checked]},
    )
    schema.check(doc)
    assert doc["status"] == "unprotected" and doc["exit_code"] == 4
    assert doc["error"].startswith(
        f"2 of 3 targets not fresh: {ACCOUNT}/c/new.vhd is unprotected (the target blob"
    )
    first = doc["targets"][0]
    assert first["lag_seconds"] == 180.0 and first["lease"] == "free"
    assert first["source_snapshots"] == {"count": 3, "limit": 500}
    assert first["newest_restore_point"]["snapshot_time"] == "2026-12-03T11:57:00.000000Z"
    with pytest.raises(AssertionError, match="exit_code"):  # a verdict and its exit code go together
        schema.check({**doc, "exit_code": 5})
    running = protected(timedelta(0), run=stopped(timedelta(0), running=True))
    entry = Checked(running, judge(running, NOW, 60), NOW).to_json()["in_progress"]
    assert entry == {
        "snapshot_id": "/sub/snapshots/snap-2",
        "snapshot_name": "snap-2",
        "mode": "diff",
        "checkpoint": 512 * 1024**2,
        "total_bytes": 1024**3,
        "running": True,
        "last_written_at": "2026-12-03T12:00:00.000000Z",
    }


def test_the_summary_counts_what_it_does_not_name() -> None:
    checked = [Checked(Facts(f"t{i}"), judge(Facts(f"t{i}"), NOW, 60), NOW) for i in range(5)]
    text = summary(checked) or ""
    assert text.startswith("5 of 5 targets not fresh: t0 is unprotected") and text.endswith("; and 2 more.")
    assert summary(fleet()[:1]) is None


# ---------------------------------------------------------------- what the reader takes from the target


def info(point_id: str, time: str, name: str) -> PointInfo:
    meta = {"snapshot_time": time, "snapshot_name": name, "snapshot_id": f"/s/{name}"}
    return PointInfo.of(RestorePoint(point_id, meta), State())


def test_the_newest_point_holds_the_newest_snapshot_not_the_last_taken() -> None:
    points = [
        info("2026-12-01T00:00:00.0000000Z", "2026-11-30T23:00:00+00:00", "b"),
        info("2026-12-02T00:00:00.0000000Z", "2026-11-29T23:00:00+00:00", "a"),  # a rollback's point
        info("2026-12-02T01:00:00.0000000Z", "not a time", "x"),
    ]
    newest = newest_point(points)
    assert newest is not None and newest.snapshot_name == "b"
    assert newest.snapshot_time == datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert newest_point(points[2:]) is None


def test_the_total_being_written_round_trips_through_the_metadata() -> None:
    ref = SnapshotRef("/s/snap-2", "u2", "2026-12-03T11:00:00+00:00", "snap-2")
    state = State("/d", "du", None, None, InProgress(ref, None, "full", "first copy", 4096, None, 1024**3))
    assert State.from_metadata(state.to_metadata()) == state
    older = {k: v for k, v in state.to_metadata().items() if k != "inprogress_total_bytes"}
    progress = State.from_metadata(older).in_progress
    assert progress is not None and progress.total_bytes is None


async def test_a_fleet_is_read_through_one_arm_source_at_most_eight_targets_at_once(monkeypatch) -> None:
    in_flight, most, opened = 0, 0, []
    real_open = status.ArmSource.open

    async def counting_open(config):
        opened.append(config)
        return await real_open(config)

    async def fake_read(config, source, job_source=None) -> Facts:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(3):  # let every other task try to start meanwhile
            await asyncio.sleep(0)
        in_flight -= 1
        return Facts(config.target, job_source)

    monkeypatch.setattr(status.ArmSource, "open", counting_open)
    monkeypatch.setattr(status, "read", fake_read)
    jobs = [JobSpec(f"/d/{i}", f"https://a.blob.core.windows.net/ccc/t{i}.vhd") for i in range(100)]
    checked = await status.survey(Config(source="", target="", access_token="t"), jobs, 60, clock=lambda: NOW)
    assert most == status.STATUS_CONCURRENCY == 8 and len(opened) == 1
    assert [c.facts.target for c in checked] == [j.target for j in jobs]  # in the jobs' order
    assert {c.judgement.verdict for c in checked} == {"unprotected"} and checked[0].now == NOW


def test_status_help_names_the_verdicts_the_exit_codes_and_the_variables(capsys) -> None:
    assert cli_main.main(["status", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "4 any target unprotected; else 5 any stale; else 1 any unknown; else 0 every target fresh." in text
    )
    assert "REPLICATOR_MAX_AGE" in text and "REPLICATOR_JOBS" in text and "--source" not in text
    assert "(required)" not in text.split("--target TARGET", 1)[1].split("--json", 1)[0]
    assert cli_main.main(["--help"]) == 0
    assert "status how old each replica is" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------- a VM's prefix and its disks

VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1"
PREFIX = "https://acct.blob.core.windows.net/c/vms"


def vm_prefix(age: timedelta | None, *incomplete: str, vm: str | None = VM) -> Facts:
    """A VM's prefix whose newest complete group was taken `age` ago (None: no complete group)."""
    newest = None if age is None else Protected("20261203T110000Z-1a2b3c4d", f"{VM}/rp", "rp", NOW - age)
    return Facts(PREFIX, vm, newest=newest, groups=GroupFacts(vm, incomplete))


@pytest.mark.parametrize(
    ("facts", "verdict", "says"),
    [
        (
            vm_prefix(timedelta(hours=1)),
            "fresh",
            "the newest complete group 20261203T110000Z-1a2b3c4d: the lag 1h 0m is within",
        ),
        (
            vm_prefix(timedelta(days=2)),
            "stale",
            "the newest complete group 20261203T110000Z-1a2b3c4d: the lag 2d 0h exceeds",
        ),
        (
            vm_prefix(timedelta(hours=1), "20261203T120000Z-99 (missing vm1-data2)"),
            "fresh",
            "the newest complete group 20261203T110000Z-1a2b3c4d: the lag 1h 0m is within the maximum age "
            "1d 0h; incomplete newer 1 group: 20261203T120000Z-99 (missing vm1-data2).",
        ),
        (
            vm_prefix(None, "20261203T120000Z-99 (missing vm1-os)"),
            "unprotected",
            "no complete group of a VM under the prefix; incomplete newer 1 group: 20261203T120000Z-99 "
            "(missing vm1-os): nothing can be restored (replicate the VM: "
            f"replicate --source {VM} --target {PREFIX} --snapshot-now).",
        ),
        (
            vm_prefix(None, vm=None),
            "unprotected",
            "no group of a VM under the prefix: nothing can be restored (replicate the VM: replicate "
            f"--source <VM ID> --target {PREFIX} --snapshot-now).",
        ),
    ],
)
def test_a_vm_prefix_is_judged_by_its_newest_complete_group(facts: Facts, verdict: str, says: str) -> None:
    judgement = judge(facts, NOW, DAY)
    assert judgement.verdict == verdict and judgement.reason.startswith(says), judgement
    assert EXIT_CODES[judgement.verdict] == {"fresh": 0, "stale": 5, "unprotected": 4}[verdict]


def test_a_vm_disk_is_judged_by_its_restore_points_never_by_the_disk_snapshots() -> None:
    facts = protected(timedelta(hours=1), vm_disk=True, source_snapshots=None, newest_snapshot=None)
    fresh = judge(facts, NOW, DAY)
    assert fresh.verdict == "fresh" and "no incremental snapshot" not in fresh.reason
    assert fresh.reason.endswith(f"; {VM_DISK_NOTE}.")
    stale = judge(replace(facts, newest=point(timedelta(days=2))), NOW, DAY)
    assert stale.verdict == "stale" and stale.reason.endswith(f"; {VM_DISK_NOTE}.")
