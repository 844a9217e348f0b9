"""Chunk writes of a page blob (Put Page From URL, Put Page, Put Page clear) as plain aiohttp requests.

Why not `BlobClient.upload_pages_from_url` and friends: azure-core's pipeline around each request (the
generated request builder, then content validation, redirect, storage retry, bearer token, response
hook and logging policies) and its aiohttp transport wrapper were about nine tenths of the tool's CPU
per request in the premium P30 benchmark (py-spy, docs/benchmarks.md "Where the CPU goes"), and a
run sends millions of these three requests and few of any other. So they go straight to the process's
shared session (plumbing.http_pool: its connections, its per-host proxy lookup, its piecewise bodies),
with their headers built by one pure function (`headers`); every other call stays on the SDK.

What is kept of the SDK's path, on purpose:

- The same x-ms-version as the SDK's clients (`API_VERSION`, read from azure-storage-blob), the same
  x-ms-date and x-ms-client-request-id, the same socket timeouts (azure-core's connection and read
  timeouts: `SOCKET_TIMEOUT`); the caller's deadline (--request-timeout) wraps the call as before.
- The same exceptions: an answer other than 201 goes through the SDK's own mapping (azure-core's
  `map_error` with the generated operation's error map, then azure-storage-blob's
  `process_storage_error`) on azure-core's own response wrapper, so status_code, error_code, the
  message and `exc.response.headers` (Retry-After) read as they did (only the deserialized
  `exc.model`, which nothing here reads, is not built); a failure before any answer
  becomes azure-core's ServiceRequestError / ServiceResponseError (and its timeout subclasses) exactly
  as its aiohttp transport maps it.
- No retry here: the caller's loop (plumbing.retry) owns it, as it did with `retry_total=0`.
- A bearer token is never sent over plain HTTP (azure-core's bearer policy refuses it the same way).

Azure's references for what is sent: "Put Page" (x-ms-range 512-aligned, at most 4 MiB to update, up
to the blob's size to clear, Content-MD5 checked) and "Put Page From URL" (x-ms-copy-source,
x-ms-source-range of the same length, x-ms-copy-source-authorization: Bearer only), both at
learn.microsoft.com/rest/api/storageservices/; "Versioning for Azure Storage" (a request with an
Entra ID token needs x-ms-version 2017-11-09 or later: the SDK's version is far later).

Secrets: the URL's SAS, the bearer token and the copy source's URL and authorization travel only in
the request; none is logged or put in an exception's message (the service's own message is, as before).
"""

from __future__ import annotations

import base64
import functools
import platform
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

import aiohttp
from azure.core.configuration import ConnectionConfiguration
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.core.rest._aiohttp import RestAioHttpTransportResponse
from azure.storage.blob._shared.constants import X_MS_VERSION
from azure.storage.blob._shared.response_handlers import process_storage_error

from replicator.core.messages import error_code
from replicator.core.ranges import Range, to_http_range
from replicator.plumbing import http_pool

API_VERSION = X_MS_VERSION
"""The x-ms-version the SDK's blob clients send (its newest supported version): one version per run."""

COPY_SOURCE_REFUSED = "CannotVerifyCopySource"
"""Put Page From URL's error code when the service could not read the copy source (its SAS or token)."""


def copy_source_refused(exc: HttpResponseError) -> bool:
    """Put Page From URL's 401/403 for the copy source (its SAS or token), not for the target's credential
    (a refusal of that is a 403 of another code)."""
    return error_code(exc) == COPY_SOURCE_REFUSED and exc.status_code in (401, 403)


_DEFAULTS = ConnectionConfiguration()
SOCKET_TIMEOUT = aiohttp.ClientTimeout(sock_connect=_DEFAULTS.timeout, sock_read=_DEFAULTS.read_timeout)
"""azure-core's aiohttp transport's per-request timeouts (its ConnectionConfiguration defaults, 300 s
each): what the SDK clients' writes had, since they run on http_pool.SharedSessionTransport, built
without arguments (azure-storage-blob's own 20 s / 60 s apply only to a transport it builds itself)."""

ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}
"""The generated page-blob operations' error map (azure-storage-blob _generated, `upload_pages*`,
`clear_pages`), before process_storage_error refines it by the error code."""

Authorize = Callable[[], Awaitable[str | None]]
"""The `Authorization` header of the next request (`Bearer <token>`), or None for a SAS URL."""


def _user_agent() -> str:
    try:
        ours = version("replicator")
    except PackageNotFoundError:  # run from a source tree without installing
        ours = "0"
    return f"replicator/{ours} aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"


USER_AGENT = _user_agent()


@dataclass(frozen=True)
class PageWrite:
    """One chunk write: `dest` of the blob gets the bytes of `source` at `source_url` (Put Page From
    URL), or `md5`-checked `length(dest)` bytes of a body (Put Page), or zeros (`clear`)."""

    dest: Range
    lease_id: str | None = None
    source_url: str | None = None
    source: Range | None = None
    source_authorization: str | None = None
    md5: bytes | None = None
    clear: bool = False

    @property
    def body_length(self) -> int:
        """The bytes the request carries: the range for a Put Page, none for the other two."""
        return 0 if self.clear or self.source_url is not None else self.dest.length


def headers(write: PageWrite, *, date: str, request_id: str, authorization: str | None) -> dict[str, str]:
    """The request headers of `write` (Azure's "Put Page" and "Put Page From URL" references), pure:
    `date` is an RFC 1123 time (`http_date`), `authorization` the bearer header or None (SAS)."""
    sent = {
        "x-ms-version": API_VERSION,
        "x-ms-date": date,
        "x-ms-client-request-id": request_id,
        "User-Agent": USER_AGENT,
        "Accept": "application/xml",
        "x-ms-range": to_http_range(write.dest),
        "x-ms-page-write": "clear" if write.clear else "update",
        "Content-Length": str(write.body_length),
    }
    if write.source_url is not None:
        assert write.source is not None and write.source.length == write.dest.length
        sent["x-ms-copy-source"] = write.source_url
        sent["x-ms-source-range"] = to_http_range(write.source)
        if write.source_authorization is not None:
            sent["x-ms-copy-source-authorization"] = write.source_authorization
    elif write.md5 is not None:
        sent["Content-MD5"] = base64.b64encode(write.md5).decode()
    if write.body_length:
        sent["Content-Type"] = "application/octet-stream"
    if write.lease_id is not None:
        sent["x-ms-lease-id"] = write.lease_id
    if authorization is not None:
        sent["Authorization"] = authorization
    return sent


def page_url(blob_url: str) -> str:
    """The URL of a blob's Put Page requests: its own (SAS query included) with `comp=page`."""
    return f"{blob_url}{'&' if '?' in blob_url else '?'}comp=page"


def http_date(now: float) -> str:
    """`now` (seconds since the epoch) as the RFC 1123 date x-ms-date carries."""
    return _http_date(int(now))


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    """Formatted once per second (the header's precision), not once per request."""
    return formatdate(second, usegmt=True)


class PageWriter:
    """Sends the chunk writes of any number of blobs of one credential on the shared session.

    `authorize` gives each request's Authorization (plumbing.credentials.CachedToken's bearer for a
    token; None for a SAS, which the blob URL carries). Open on first use; `close` releases the session.
    """

    def __init__(self, authorize: Authorize, context: ssl.SSLContext) -> None:
        self._authorize = authorize
        self._context = context
        self._session: aiohttp.ClientSession | None = None
        self._proxies = http_pool.Proxies()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await http_pool.release(self._context, session)

    async def send(self, blob_url: str, write: PageWrite, data: bytes | None = None) -> None:
        """Send `write` to the blob at `blob_url` (`data`: a Put Page's body); returns on 201, raises the
        SDK's exception for any other answer (see the module docstring)."""
        if self._session is None:
            self._session = http_pool.acquire(self._context)
        authorization = await self._authorize()
        if authorization is not None and not blob_url.lower().startswith("https"):
            raise ServiceRequestError(
                "Bearer token authentication is not permitted for non-TLS protected (non-https) URLs."
            )
        sent = headers(
            write, date=http_date(time.time()), request_id=str(uuid.uuid1()), authorization=authorization
        )
        url = page_url(blob_url)
        proxy, proxy_auth = self._proxies.for_url(url)
        try:
            async with self._session.put(
                url,
                headers=sent,
                data=http_pool.body(data) if data else None,
                timeout=SOCKET_TIMEOUT,
                allow_redirects=False,
                proxy=proxy,
                proxy_auth=proxy_auth,
                skip_auto_headers=() if data else ("Content-Type",),
            ) as answer:
                if answer.status != 201:
                    await _raise(HttpRequest("PUT", url, headers=sent), answer)
        # azure-core's aiohttp transport's mapping of a failure before an answer (its `send`), in its order
        except aiohttp.ClientResponseError as err:
            raise ServiceResponseError(err, error=err) from err
        except aiohttp.ConnectionTimeoutError as err:
            raise ServiceRequestTimeoutError(err, error=err) from err
        except TimeoutError as err:
            raise ServiceResponseTimeoutError(err, error=err) from err
        except aiohttp.ClientError as err:
            raise ServiceRequestError(err, error=err) from err


async def _raise(request: HttpRequest, answer: aiohttp.ClientResponse) -> NoReturn:
    """The SDK's exception for a page write's answer other than 201, on azure-core's response wrapper."""
    response = RestAioHttpTransportResponse(request=request, internal_response=answer, decompress=False)
    await response.read()
    try:
        map_error(status_code=response.status_code, response=response, error_map=ERROR_MAP)
        raise HttpResponseError(response=response)
    except HttpResponseError as error:
        process_storage_error(error)
