"""The Functions drill timer (functions/function_app.py `drill_timer`) invoked with the real
azure.functions TimerRequest against the emulator: a drill of every job's target, one `drill_done`
event each, the result recorded on the target (status shows it), the scratch disks deleted, and a
failed invocation unless every drill passed; a striped target's drill goes the same way."""

from __future__ import annotations

import json
import logging

import pytest
from azure.functions.timer import TimerRequest as HostTimerRequest

from replicator.core.errors import ReplicationError, UserError
from replicator.fleet.jobs import JobSpec, run_job
from replicator.fleet.status import read
from replicator.settings.config import read as read_config
from replicator.source.arm import ArmSource
from tests.e2e.test_striped_restore import striped_point
from tests.e2e.world import MiB, World, pattern
from tests.helpers.functions_app import load_functions
from tests.logs import logged_events


async def test_drill_timer_drills_every_target_and_fails_unless_all_pass(
    world: World, emulator_env, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = world.create_disk("drilled", 1)
    world.write(disk, (0, pattern(6, MiB)))
    world.snapshot(disk)
    replica = world.target_url()
    assert (await run_job(JobSpec(disk.id, replica), command="timer")).status == "replicated"
    never = world.target_url()  # a target nothing was replicated into: its drill cannot run
    timer = load_functions()["drill_timer"]
    scratch = f"{world.rg}-drills"

    with pytest.raises(UserError, match="REPLICATOR_DRILL_RESOURCE_GROUP"):
        await timer(HostTimerRequest(past_due=False))
    monkeypatch.setenv("REPLICATOR_DRILL_RESOURCE_GROUP", scratch)
    monkeypatch.setenv("REPLICATOR_DRILL_LOCATION", world.location)

    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps([{"source": disk.id, "target": replica}]))
    with caplog.at_level(logging.INFO, logger="replicator.events"):
        await timer(HostTimerRequest(past_due=False))
    (done,) = logged_events(caplog.records, "drill_done")
    assert (done["target"], done["result"], done["recorded"]) == (replica, "passed", True)
    assert logged_events(caplog.records, "drills_done")[0]["results"] == {"passed": 1}
    assert list(world.compute.disks.list_by_resource_group(scratch)) == []
    config = read_config({}, {**emulator_env, "REPLICATOR_TARGET": replica}, names=("target",), required=())
    async with await ArmSource.open(config) as source:
        facts = await read(config, source)
    assert facts.last_drill is not None and facts.last_drill.result == "passed"

    caplog.clear()
    jobs = [{"source": disk.id, "target": replica}, {"source": disk.id, "target": never}]
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps(jobs))
    with caplog.at_level(logging.INFO, logger="replicator.events"), pytest.raises(ReplicationError) as failed:
        await timer(HostTimerRequest(past_due=False))
    assert str(failed.value).startswith(f"1 of 2 restore drills did not pass: {never}")
    assert [(e["target"], e["result"]) for e in logged_events(caplog.records, "drill_done")] == [
        (replica, "passed"),
        (never, "failed"),
    ]


async def test_the_drill_timer_drills_a_striped_target_as_any_other(
    world: World, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A source over 8 TiB (its restore point in stripes: tests/e2e/test_striped_restore.py) is drilled
    by the same path: restored by upload, compared with its stripe snapshots, recorded, deleted."""
    made = striped_point(world)
    source = (
        f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}/providers/Microsoft.Compute/disks/big"
    )
    scratch = f"{world.rg}-drills"
    monkeypatch.setenv("REPLICATOR_DRILL_RESOURCE_GROUP", scratch)
    monkeypatch.setenv("REPLICATOR_DRILL_LOCATION", world.location)
    monkeypatch.setenv("REPLICATOR_JOBS", json.dumps([{"source": source, "target": made.url}]))
    with caplog.at_level(logging.INFO, logger="replicator.events"):
        await load_functions()["drill_timer"](HostTimerRequest(past_due=False))
    (done,) = logged_events(caplog.records, "drill_done")
    assert (done["target"], done["result"], done["recorded"]) == (made.url, "passed", True)
    assert done["restore_point"]["id"] == made.point and done["scratch_disk_deleted"]
    assert done["comparison"]["first_mismatch"] is None and done["comparison"]["bytes_compared"] > 0
    assert list(world.compute.disks.list_by_resource_group(scratch)) == []
