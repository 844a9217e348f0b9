"""One log stream through the real CLI: JSON lines only off a terminal, with a progress record every
--progress-seconds; human lines and the bar (binary units) on a terminal; the tool's decisions at
`--log-level debug`, the SDKs' requests only at `wire`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import Any

from replicator.fleet.jobs import JobSpec, run_job
from tests.e2e.world import MiB, World, pattern
from tests.helpers.cli_runs import Run, cli_process, finish, on_terminal
from tests.logs import events, records


def _replicated(world: World, replicate: Any, *writes: tuple[int, bytes | int]) -> tuple[Any, str, str]:
    """A disk with one restore point on a new target, then `writes` and a second snapshot."""
    disk = world.create_disk("data", 1)
    world.write(disk, (512, pattern(1, 4096)), (20 * MiB, pattern(2, 8192)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    assert replicate("--source", disk.id, "--target", url).code == 0
    world.write(disk, *writes)
    return disk, s1, url


def test_off_a_terminal_every_line_is_json_with_a_progress_record_every_period(
    world: World, emulator_env: dict[str, str], replicate
) -> None:
    """Held by the lease, the run can only wait: its records say so until the test lets it go. Then the
    copy is paced by --max-bandwidth (12 MiB at 2 MiB/s: at least 4 s between the first chunk and the
    last), so records at 0.2 s show bytes done, the total, the rate and the ETA mid-copy."""
    disk, _, url = _replicated(world, replicate, (0, pattern(3, 12 * MiB)))
    s2 = world.snapshot(disk)
    args = ("--source", disk.id, "--target", url, "--json", "--lease-wait", "120")
    with world.held_lease(url):
        proc = cli_process(emulator_env, *args, "--progress-seconds", "0.2", "--max-bandwidth", "2MiB")
        assert proc.stderr is not None
        seen: list[str] = []
        while not any('"progress"' in line for line in seen):
            line = proc.stderr.readline()
            assert line, f"the run ended while the lease was held: {''.join(seen)}"
            seen.append(line)
    run = finish(proc)
    run = Run(run.code, run.out, "".join(seen) + run.err)
    assert run.code == 0, run.err

    lines = records(run.err)  # every line one JSON object with time, level and event
    waiting = events("".join(seen), "progress")[0]
    assert waiting["message"].startswith("working: resolving ") and "snapshot" not in waiting
    assert any(r["event"] == "log" and r["level"] == "warning" and "is held" in r["message"] for r in lines)
    names = [r["event"] for r in lines]
    start, done = names.index("snapshot_start"), names.index("snapshot_done")
    mid = [
        r
        for r in lines[start:done]
        if r["event"] == "progress" and r["total_final"] and 0 < r["bytes_done"] < r["bytes_total"]
    ]
    assert mid, f"no progress record mid-copy: {run.err}"
    record = mid[0]
    assert (record["snapshot"], record["index"], record["total"]) == (s2, 1, 1)
    assert record["bytes_total"] == 12 * MiB and record["bytes_per_second"] > 0
    assert record["eta_seconds"] >= 0 and record["message"].endswith(" left")
    assert record["message"].startswith(f"[1/1] {s2.rsplit('/', 1)[1]}: ") and " MiB/s" in record["message"]
    [entry] = run.doc["snapshots"]
    world.assert_restore_point_equals(url, entry["restore_point"], s2)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_on_a_terminal_the_lines_are_human_and_the_rate_binary(
    world: World, emulator_env: dict[str, str]
) -> None:
    """stderr on a pseudo-terminal: human lines and the bar, never a JSON line; the bar's rate in MiB/s."""
    disk = world.create_disk("data", 1)
    world.write(disk, (0, pattern(4, 8 * MiB)))
    s1 = world.snapshot(disk)
    url = world.target_url()
    done = on_terminal(emulator_env, "--source", disk.id, "--target", url, "--max-bandwidth", "4MiB")
    assert done.code == 0, done.err
    text = ANSI.sub("", done.err)
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    name = s1.rsplit("/", 1)[1]
    assert f"[1/1] {name}: full copy (the target has no restore point)" in lines, lines
    [summary] = [line for line in lines if line.startswith(f"{name}: restore point ")]
    assert "requests, 0 retries" in summary and "cleared" not in summary and "zeroed" not in summary
    assert not any(line.startswith("{") for line in lines), lines
    assert "MiB/s" in text and not re.search(r"\d MB/s", text)  # the bar's rate, in binary units


def test_debug_shows_the_decisions_and_wire_the_sdk_requests(world: World, replicate) -> None:
    disk, s1, url = _replicated(world, replicate, (8 * MiB, pattern(5, 4096)), (20 * MiB, 8192))
    s2 = world.snapshot(disk)
    debug = replicate("--source", disk.id, "--target", url, "--log-level", "debug", "--max-bandwidth", "50MB")
    assert debug.code == 0, debug.err
    lines = records(debug.err)
    assert lines[0]["event"] == "size_read" and lines[0]["message"].startswith(
        "--max-bandwidth 50MB = 47.7 MiB/s"
    )
    names = {r["event"] for r in lines}
    decisions = {"base_chosen", "sas_granted", "list_window", "lease_acquired", "lease_released"}
    assert decisions <= names, names
    [base] = events(debug.err, "base_chosen")
    assert (base["snapshot"], base["base_snapshot"], base["mode"]) == (s2, s1, "diff")
    assert all(r["level"] == "debug" for r in lines if r["event"] in decisions)
    assert not any(r["logger"].startswith("azure") for r in lines)  # no wire dump at debug
    [done] = events(debug.err, "snapshot_done")
    assert "8.0 KiB cleared (trimmed on the source since the base)" in done["message"]

    wire = replicate(
        "--source", disk.id, "--target", url, "--log-level", "wire"
    )  # nothing new, still requests
    assert wire.code == 0, wire.err
    sdk = [r for r in records(wire.err) if r["logger"].startswith("azure.core")]
    assert sdk and any("Request URL" in r["message"] for r in sdk)  # the fixture checked them for secrets


def test_every_subcommand_writes_the_same_stream(world: World, replicate) -> None:
    disk, _, url = _replicated(world, replicate, (8 * MiB, pattern(6, 4096)))
    world.snapshot(disk)
    assert replicate("--source", disk.id, "--target", url).code == 0
    pruned = replicate("prune", "--target", url, "--keep", "1", "--dry-run", "--log-level", "debug")
    assert pruned.code == 0, pruned.err
    [count] = events(pruned.err, "pruned")
    assert count["message"] == "would delete 1 restore point" and count["count"] == 1
    refused = replicate(
        "restore", "--target", url, "--point", "nope", "--resource-group", "rg", "--disk-name", "d"
    )
    [line] = records(refused.err)
    assert (line["event"], line["status"], line["exit_code"]) == ("exit", "bad input", 2)
    assert line["message"].startswith("replicate restore: error: ")


async def test_a_fleet_job_logs_progress_records_for_the_functions_host(
    world: World, emulator_env: dict[str, str]
) -> None:
    """What the Functions host forwards to Application Insights: a job held by a lease logs `progress`
    records (with the job's run_id) until the test releases it, then its snapshot."""
    disk = world.create_disk("data", 1)
    world.write(disk, (0, pattern(7, MiB)))
    world.snapshot(disk)
    url = world.target_url()
    env = {**os.environ, "REPLICATOR_LEASE_WAIT": "60", "REPLICATOR_PROGRESS_SECONDS": "0.1"}
    assert (
        await run_job(JobSpec(disk.id, url), env, command="queue")
    ).exit_code == 0  # the target exists: it can be leased
    world.write(disk, (8 * MiB, pattern(8, MiB)))
    s2 = world.snapshot(disk)
    seen: list[dict] = []
    progressed = asyncio.Event()

    class Host(logging.Handler):  # the Functions host's handler: the record's message is the JSON
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(json.loads(record.getMessage()))
            if seen[-1]["event"] == "progress":
                progressed.set()

    host, events_logger = Host(), logging.getLogger("replicator.events")
    events_logger.addHandler(host)
    level = logging.getLogger("replicator").level
    logging.getLogger("replicator").setLevel(logging.INFO)
    try:
        with world.held_lease(url):
            job = asyncio.create_task(run_job(JobSpec(disk.id, url), env, run_id="r-1", command="queue"))
            waiting = asyncio.create_task(progressed.wait())
            await asyncio.wait({job, waiting}, return_when=asyncio.FIRST_COMPLETED)
            assert progressed.is_set(), "the job ended while the lease was held"
        outcome = await job
    finally:
        events_logger.removeHandler(host)
        logging.getLogger("replicator").setLevel(level)
    assert (outcome.status, outcome.exit_code) == ("replicated", 0), outcome.error
    waiting = next(r for r in seen if r["event"] == "progress")
    assert (waiting["run_id"], waiting["disk"]) == ("r-1", disk.id)
    assert waiting["step"].startswith("resolving ") and "snapshot" not in waiting
    [done] = [r for r in seen if r["event"] == "snapshot_done"]
    assert (done["snapshot"], done["run_id"]) == (s2, "r-1")
