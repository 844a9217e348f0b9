"""One HTTP connection pool per process (per event loop and TLS context), shared by every client.

Why: each Azure SDK client owns a transport, and azure-core's aiohttp transport opens a session (a
connection pool) per transport. A fleet worker running eight replications at once had sixteen
pools of up to 100 connections, and every TLS connection holds a 256 KiB read buffer (asyncio's SSL
protocol): about 800 connections and 400 MiB of RSS in the 8-disk stream-mode benchmark. Sharing
one session bounds the connections of the whole process (`CONNECTIONS`) and lets runs that write to
the same storage account reuse each other's connections. No limit per host: the runs of a fleet
worker usually write to one target account, and a limit of 100 per host held eight runs to 100
requests in flight together (8-disk fleet at 60 ms: 7.4 s; without it 5.6 s).

The session is reference-counted: each transport acquires it when its client opens and releases it
when its client closes; the last release closes it. Keyed by event loop (aiohttp sessions belong to
one) and by TLS context (one per CA bundle, see replicator.plumbing.credentials).

Request bodies go to the connection in pieces of `BODY_PIECE` bytes: asyncio's TLS layer encrypts
each write whole into an OpenSSL memory buffer that keeps its largest size for the life of the
connection, so a 4 MiB Put Page written at once leaves about 4 MiB behind on every pooled connection
that ever carried one (about 400 MiB over a pool of 100; measured with memray on the 8-disk
stream-mode benchmark, and by writing 4 MiB through 100 `ssl.MemoryBIO`s).

Proxies: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (and proxy credentials in `.netrc`) are honoured, but
looked up once per host and transport: aiohttp's `trust_env` looks them up on every request in a
worker thread (an environment scan and a `.netrc` stat), which was a third of the process's CPU in
the 8-disk fleet benchmark (py-spy; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.payload import BytesPayload
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpResponse, HttpRequest
from yarl import URL

# Largest piece of a request body handed to the TLS layer at once (see the module docstring): what
# the memory buffer of a connection keeps. 64 KiB: the 8-disk stream fleet peaked at 272 MiB of RSS
# with 192 connections (256 KiB: 313 MiB).
BODY_PIECE = 64 * 1024
# Connections of the whole process, shared by its runs: the memory bound (each TLS connection holds
# a 256 KiB read buffer and up to BODY_PIECE of written data); 3 runs at --concurrency 64 never queue.
CONNECTIONS = 192


@dataclass
class _Shared:
    session: aiohttp.ClientSession
    users: int = 0


_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ssl.SSLContext, _Shared]] = (
    weakref.WeakKeyDictionary()
)


def _new_session(context: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=CONNECTIONS),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,  # proxies come from Proxies.for_url, once per host
    )


def acquire(context: ssl.SSLContext) -> aiohttp.ClientSession:
    """The running loop's session for this TLS context, created on first use; pair with `release`."""
    per_loop = _SESSIONS.setdefault(asyncio.get_running_loop(), {})
    shared = per_loop.get(context)
    if shared is None:
        shared = per_loop[context] = _Shared(_new_session(context))
    shared.users += 1
    return shared.session


async def release(context: ssl.SSLContext, session: aiohttp.ClientSession) -> None:
    """One user fewer; the last one closes the session (and its connections)."""
    per_loop = _SESSIONS.get(asyncio.get_running_loop(), {})
    shared = per_loop.get(context)
    if shared is None or shared.session is not session:
        await session.close()  # not ours any more (cannot happen with acquire/release paired)
        return
    shared.users -= 1
    if shared.users == 0:
        del per_loop[context]
        await session.close()


class PiecewiseBytes(BytesPayload):
    """A bytes body written in pieces of at most `BODY_PIECE`, each waiting for the connection to drain."""

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), BODY_PIECE):
            await writer.write(view[start : start + BODY_PIECE])


def body(data: bytes | bytearray) -> bytes | bytearray | PiecewiseBytes:
    """A request body as the shared session sends it: in pieces when it is larger than one."""
    return PiecewiseBytes(data) if len(data) > BODY_PIECE else data


class Proxies:
    """The environment's proxy (and its `.netrc` credentials) per origin, looked up once each."""

    def __init__(self) -> None:
        self._cache: dict[URL, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def for_url(self, url: str | URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The proxy and its credentials for this URL's origin, (None, None) for none."""
        origin = URL(url).origin()
        if origin not in self._cache:
            try:
                self._cache[origin] = get_env_proxy_for_url(origin)
            except LookupError:  # no proxy configured for this scheme, or NO_PROXY names the host
                self._cache[origin] = (None, None)
        return self._cache[origin]


class SharedSessionTransport(AioHttpTransport):
    """azure-core's aiohttp transport on the process's shared session, with per-host proxy lookup."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._ssl_context = context
        self._proxies = Proxies()

    async def open(self) -> None:
        if self.session is None and not self._has_been_opened:
            self.session = acquire(self._ssl_context)
        await super().open()

    async def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await release(self._ssl_context, session)

    def _get_request_data(self, request: HttpRequest) -> Any:
        data = super()._get_request_data(request)
        return body(data) if isinstance(data, bytes | bytearray) else data

    async def send(self, request: HttpRequest, **config: Any) -> AsyncHttpResponse:
        if "proxy" not in config and "proxies" not in config:
            config["proxy"], config["proxy_auth"] = self._proxies.for_url(request.url)
        return await super().send(request, **config)
