"""The process-wide connection pool: clients of one event loop share one session, the last one to
close closes it, and the proxy of each host is looked up once (replicator.plumbing.http_pool)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from yarl import URL

from replicator.plumbing import http_pool
from replicator.plumbing.credentials import ssl_context, transport_kwargs


async def test_clients_of_one_loop_share_one_session_closed_by_the_last() -> None:
    first, second = transport_kwargs()["transport"], transport_kwargs()["transport"]
    await first.open()
    await second.open()
    await first.open()  # azure-core opens on every request: still one user
    session = first.session
    assert session is second.session and not session.closed
    await first.close()
    assert not session.closed  # the second client still uses it
    await second.close()
    assert session.closed
    third = transport_kwargs()["transport"]
    await third.open()
    assert third.session is not session and not third.session.closed  # a new pool after the last close
    await third.close()


async def test_a_closed_transport_cannot_be_reopened() -> None:
    transport = transport_kwargs()["transport"]
    await transport.open()
    await transport.close()
    with pytest.raises(ValueError, match="already been closed"):
        await transport.open()


def test_each_event_loop_has_its_own_session() -> None:
    async def opened() -> tuple[object, object]:
        transport = transport_kwargs()["transport"]
        await transport.open()
        session = transport.session
        await transport.close()
        return session, asyncio.get_running_loop()

    (one, _), (two, _) = asyncio.run(opened()), asyncio.run(opened())
    assert one is not two


async def test_the_connection_pool_is_bounded_per_process() -> None:
    session = http_pool.acquire(ssl_context())
    try:
        assert session.connector is not None
        assert session.connector.limit == http_pool.CONNECTIONS
        assert session.connector.limit_per_host == 0  # runs of a fleet share one target account
    finally:
        await http_pool.release(ssl_context(), session)


def test_proxy_of_a_host_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    proxies = http_pool.Proxies()
    proxy, auth = proxies.for_url("https://acct.blob.core.windows.net/c/b.vhd?sv=x")
    assert (proxy, auth) == (URL("http://proxy.example:3128"), None)
    assert proxies.for_url("https://internal.example/c/b") == (None, None)
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:1")
    # cached per origin: the environment is not read again for a host already seen
    assert proxies.for_url("https://acct.blob.core.windows.net/other")[0] == URL("http://proxy.example:3128")


class _Writer:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    async def write(self, chunk: bytes | memoryview) -> None:
        self.pieces.append(bytes(chunk))


@pytest.mark.parametrize("size", [1, http_pool.BODY_PIECE, 4 * 1024 * 1024 + 512])
async def test_large_bodies_are_written_in_bounded_pieces_in_order(size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    writer = _Writer()
    await http_pool.PiecewiseBytes(body).write(writer)  # type: ignore[arg-type]
    assert b"".join(writer.pieces) == body
    assert max(len(p) for p in writer.pieces) <= http_pool.BODY_PIECE
    limited = _Writer()
    await http_pool.PiecewiseBytes(body).write_with_length(limited, size - 1)  # type: ignore[arg-type]
    assert b"".join(limited.pieces) == body[: size - 1]


def test_only_bodies_larger_than_a_piece_are_split() -> None:
    transport = http_pool.SharedSessionTransport(ssl_context())
    small, large = b"a" * http_pool.BODY_PIECE, b"b" * (http_pool.BODY_PIECE + 1)
    assert transport._get_request_data(SimpleNamespace(files=None, data=small)) is small
    split = transport._get_request_data(SimpleNamespace(files=None, data=large))
    assert isinstance(split, http_pool.PiecewiseBytes)
