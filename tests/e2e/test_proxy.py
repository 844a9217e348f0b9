"""Behind an HTTPS proxy: every request of a run (ARM and both data planes) goes through
`HTTPS_PROXY`, unless `NO_PROXY` names the host. The transport looks the proxy up once per host
(replicator.plumbing.credentials), so this checks that the lookup still reaches every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.world import World, pattern
from tests.helpers.cli_runs import Run


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on a free loopback port, in its own thread; counts tunnels per host."""

    def __init__(self) -> None:
        self.tunnels: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tunnels = asyncio.all_tasks(self._loop)
        for task in tunnels:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tunnels, return_exceptions=True))
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, authority, _ = head.split("\r\n", 1)[0].split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        self.tunnels[authority] += 1
        host, port = authority.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, RuntimeError):
        writer.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy() as p:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{p.port}")
        yield p


def _replicate_one(world: World, replicate: Callable[..., Run]) -> None:
    disk = world.create_disk("proxied", 1)
    world.write(disk, (4096, pattern(3, 64 * 1024)), (512 * 1024, pattern(4, 4096)))
    snapshot_id = world.snapshot(disk)
    url = world.target_url()
    run = replicate("--source", disk.id, "--target", url, "--json")
    assert run.code == 0, run.err
    world.assert_restore_point_equals(url, run.doc["snapshots"][0]["restore_point"], snapshot_id)
    world.assert_sas_free(snapshot_id)


def test_every_request_of_a_run_goes_through_the_proxy(
    world: World, replicate: Callable[..., Run], proxy: ConnectProxy
) -> None:
    _replicate_one(world, replicate)
    emulator = world.env["REPLICATOR_BLOB_ENDPOINT"].split("://", 1)[1].split("/", 1)[0]
    assert set(proxy.tunnels) == {emulator}
    # ARM, source snapshot and target each open connections of their own: several tunnels at least
    assert proxy.tunnels[emulator] >= 3


def test_no_proxy_bypasses_the_proxy(
    world: World, replicate: Callable[..., Run], proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    _replicate_one(world, replicate)
    assert not proxy.tunnels
