import time
from tests.e2e.world import GiB, MiB, pattern

def test_smoke(world, replicate, monkeypatch):
    import replicator.source, azure.storage.blob.aio as aio
    monkeypatch.setattr(replicator.source, 'ExponentialRetry', aio.ExponentialRetry)
    disk = world.create_disk("d1", 1)
    world.write(disk, (3 * MiB + 512, pattern(1, 5 * MiB)), (700 * MiB, pattern(2, 4096)))
    snap = world.snapshot(disk)
    url = world.target_url()
    r = replicate("--source", disk.id, "--target", url, "--json")
    print(r.err)
    assert r.code == 0, r.err
    rp = r.doc["snapshots"][0]["restore_point"]
    t = time.monotonic()
    world.assert_restore_point_equals(url, rp, snap); world.assert_restore_point_equals(url, rp, snap, full=True)
    print("compare", time.monotonic() - t)
