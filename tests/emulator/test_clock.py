"""The emulator's ARM clock control (emulator/middleware/clock.py): resources created while it is set
back carry a `timeCreated` in the past; wall time again once it is set to 0; only with the token."""

from __future__ import annotations

import urllib.error
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.world import World

DAY = 86400


def test_snapshots_created_while_the_clock_is_set_back_are_dated_in_the_past(
    emulator_env: dict[str, str],
) -> None:
    world = World(emulator_env)
    try:
        disk = world.create_disk("clocked", 1)
        with world.dated_back(2 * DAY):
            assert world.clock_control() == {"offset_seconds": -2 * DAY}
            old = world.snapshot(disk)
        new = world.snapshot(disk)
        assert world.clock_control() == {"offset_seconds": 0}
        now = datetime.now(UTC)
        old_time = world.compute.snapshots.get(world.rg, old.rsplit("/", 1)[1]).time_created
        new_time = world.compute.snapshots.get(world.rg, new.rsplit("/", 1)[1]).time_created
        assert abs(now - timedelta(days=2) - old_time) < timedelta(minutes=1)
        assert abs(now - new_time) < timedelta(minutes=1)
        with world.read_snapshot(old):  # a grant made at wall time still works on it
            pass
    finally:
        world.close()


@pytest.mark.parametrize("body", [{"offset_seconds": "soon"}, {"offset": 5}, {"offset_seconds": True}, [1]])
def test_a_bad_body_is_refused_and_changes_nothing(emulator_env: dict[str, str], body: object) -> None:
    world = World(emulator_env)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            world.clock_control(body)  # type: ignore[arg-type]
        assert refused.value.code == 400
        assert world.clock_control() == {"offset_seconds": 0}
    finally:
        world.close()


def test_the_control_needs_the_emulators_token(emulator_env: dict[str, str]) -> None:
    world = World({**emulator_env, "REPLICATOR_ACCESS_TOKEN": "not-the-token"})
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            world.clock_control({"offset_seconds": -DAY})
        assert refused.value.code == 401
    finally:
        world.close()
