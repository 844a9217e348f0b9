"""The Functions status timer (functions/function_app.py `status_timer`) invoked with the real
azure.functions TimerRequest against the emulator: one `target_status` event per target, a
`status_done` event, and a failed invocation unless every target is fresh."""

from __future__ import annotations

import json
import logging

import pytest
from azure.functions.timer import TimerRequest as HostTimerRequest

from replicator.core.errors import ReplicationError, UserError
from replicator.fleet.jobs import JobSpec, run_job
from tests.e2e.world import MiB, World, pattern
from tests.helpers.functions_app import load_functions
from tests.logs import logged_events


async def test_status_timer_logs_each_target_and_fails_unless_all_are_fresh(
    world: World, emulator_env, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = world.create_disk("timed", 1)
    world.write(disk, (0, pattern(5, MiB)))
    snap = world.snapshot(disk)
    fresh = world.target_url()
    assert (await run_job(JobSpec(disk.id, fresh), command="timer")).status == "replicated"
    bare = world.create_disk("untimed", 1)
    missing = world.target_url()
    monkeypatch.setenv("REPLICATOR_MAX_AGE", "1h")
    timer = load_functions()["status_timer"]

    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps([{"source": disk.id, "target": fresh}]))
    with caplog.at_level(logging.INFO, logger="replicator.events"):
        await timer(HostTimerRequest(past_due=False))
    (only,) = logged_events(caplog.records, "target_status")
    assert (only["target"], only["verdict"], only["max_age_seconds"]) == (fresh, "fresh", 3600)
    assert only["newest_restore_point"]["snapshot_id"] == snap and only["lag_seconds"] < 600
    assert logged_events(caplog.records, "status_done") == [
        {"event": "status_done", "targets": 1, "status": "fresh", "verdicts": {"fresh": 1}}
    ]

    caplog.clear()
    jobs = [{"source": disk.id, "target": fresh}, {"source": bare.id, "target": missing}]
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps(jobs))
    with caplog.at_level(logging.INFO, logger="replicator.events"), pytest.raises(ReplicationError) as failed:
        await timer(HostTimerRequest(past_due=False))
    assert str(failed.value).startswith(f"1 of 2 targets not fresh: {missing} is unprotected")
    records = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "target_status"]
    assert [(r.fields["verdict"], r.levelno) for r in records] == [
        ("fresh", logging.INFO),
        ("unprotected", logging.WARNING),
    ]
    assert logged_events(caplog.records, "status_done")[0]["status"] == "unprotected"

    monkeypatch.delenv("REPLICATOR_MAX_AGE")
    with pytest.raises(UserError, match="--max-age is required"):
        await timer(HostTimerRequest(past_due=False))
