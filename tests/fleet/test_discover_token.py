"""`discover` takes the ARM token from the same mapping as the ARM endpoint (the app settings)."""

from __future__ import annotations

import pytest

from replicator.fleet.jobs import discover
from tests.e2e.world import World


async def test_discover_reads_the_token_from_env_not_os_environ(
    world: World, emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = world.create_disk("tagged", 1)
    world.compute.disks.begin_update(
        world.rg, "tagged", {"tags": {"replicator-target": "https://t/c/"}}
    ).result()
    monkeypatch.setenv("REPLICATOR_ACCESS_TOKEN", "not-the-token")  # os.environ must not be consulted
    jobs = await discover(
        f"/subscriptions/{world.subscription}/resourceGroups/{world.rg}", "replicator-target", emulator_env
    )
    assert [(j.source, j.target) for j in jobs] == [(disk.id, "https://t/c/tagged.vhd")]
