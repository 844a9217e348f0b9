"""A signal ends a run the clean way: `timeout`, `systemctl stop` and `docker stop` send SIGTERM, Ctrl-C
sends SIGINT; either way no SAS stays granted, the lease is released, the checkpoint is kept, the exit
code is 128 + the signal, and a rerun completes byte-equal from the checkpoint."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.world import World
from tests.helpers.cli_runs import cli_process, finish
from tests.helpers.replication import metadata, scattered, wait_for_checkpoint
from tests.logs import events, records

SLOW = ("--max-bandwidth", "2MiB", "--concurrency", "2", "--checkpoint-seconds", "0.2")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_cleans_up_and_rerun_completes(
    world: World, emulator_env: dict[str, str], sig: signal.Signals, code: int
) -> None:
    disk = scattered(world)
    s1 = world.snapshot(disk)
    url = world.target_url()
    args = ("--source", disk.id, "--target", url, "--json")
    proc = cli_process(emulator_env, *args, *SLOW)
    checkpoint = wait_for_checkpoint(world, url, proc)
    assert checkpoint > 0, "the run never saved a checkpoint"
    proc.send_signal(sig)
    stopped = finish(proc, timeout=60)

    assert stopped.code == code, stopped.err
    assert stopped.doc["status"] == "interrupted" and stopped.doc["exit_code"] == code
    last = records(stopped.err)[-1]
    assert (last["event"], last["level"], last["status"]) == ("exit", "warning", "interrupted"), stopped.err
    assert last["message"].startswith(f"replicate: interrupted: stopped by {sig.name}."), stopped.err
    world.assert_sas_free(s1)
    with world.target(url) as blob:
        assert blob.get_blob_properties().lease.state == "available"
    meta = metadata(world, url)
    assert meta["inprogress_snapshot_id"] == s1 and int(meta["inprogress_checkpoint"]) >= checkpoint
    assert world.restore_points(url) == []

    rerun = finish(cli_process(emulator_env, *args), timeout=120)
    assert rerun.code == 0, rerun.err
    [entry] = rerun.doc["snapshots"]
    assert entry["resumed_from"] >= checkpoint
    # A full copy into a target that holds data clears the source's holes there: said as what it is.
    [done] = events(rerun.err, "snapshot_done")
    assert (
        done["cleared_bytes"] > 0
        and "zeroed where the source is empty (the target held data)" in done["message"]
    )
    world.assert_restore_point_equals(url, entry["restore_point"], s1)
    world.assert_sas_free(s1)
