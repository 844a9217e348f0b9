"""plumbing.page_writes: the chunk writes sent without azure-core's pipeline must look, on the wire and
in their failures, exactly like the SDK calls they replaced (BlobClient.upload_pages_from_url,
upload_page, clear_page with retry_total=0): the same headers, the same exception class, status,
error code, message and Retry-After, the same classification by plumbing.retry, and no secret in any
of it. A local server records what each side sends and answers both the same way."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.storage.blob.aio import BlobClient
from hypothesis import given
from hypothesis import strategies as st

from replicator.core import messages
from replicator.core.ranges import Range, to_http_range
from replicator.plumbing import retry
from replicator.plumbing.credentials import REFRESH_WINDOW_SECONDS, CachedToken, ssl_context
from replicator.plumbing.page_writes import API_VERSION, PageWrite, PageWriter, headers, http_date, page_url
from replicator.target.page_blob import STORAGE_SCOPE

SAS = "sv=2024-08-04&sr=b&sp=rw&sig=SECRETSIG"
SOURCE = "https://src.blob.core.windows.net/c/s.vhd?sv=2024-08-04&sig=SOURCESIG"
SOURCE_AUTH = "Bearer SOURCETOKEN"
LEASE = "8b2a3f1e-0000-4000-8000-000000000001"
SECRETS = ("SECRETSIG", "SOURCESIG", "SOURCETOKEN")

# the headers each side computes afresh per request, whose values cannot match
PER_REQUEST = {"x-ms-date", "x-ms-client-request-id", "user-agent"}

pages = st.builds(
    lambda start, pages: Range(start * 512, (start + pages) * 512),
    st.integers(0, 2**34),
    st.integers(1, 8192),
)


def _error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> web.Response:
    body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
    body += "</Error>"
    headers = {"x-ms-error-code": code, "Content-Type": "application/xml", **(extra or {})}
    return web.Response(status=status, body=body.encode(), headers=headers)


ANSWERS: dict[str, Callable[[], web.Response]] = {
    "ok": lambda: web.Response(status=201),
    "busy": lambda: _error(503, "ServerBusy", "Ingress is over the account limit.", {"Retry-After": "7"}),
    "timed out": lambda: _error(500, "OperationTimedOut", "The operation could not be completed."),
    "lease": lambda: _error(412, "LeaseIdMismatchWithBlobOperation", "The lease ID did not match."),
    "missing": lambda: _error(404, "BlobNotFound", "The specified blob does not exist."),
    "source": lambda: _error(404, "CannotVerifyCopySource", "The source cannot be read."),
    "refused": lambda: _error(403, "AuthorizationPermissionMismatch", "This request is not authorized."),
    "signature": lambda: _error(403, "AuthenticationFailed", "Server failed to authenticate the request."),
    "token": lambda: _error(401, "InvalidAuthenticationInfo", "Authentication information is not valid."),
    "snapshots": lambda: _error(409, "SnapshotCountExceeded", "The snapshot count is exceeded."),
    "md5": lambda: _error(400, "Md5Mismatch", "The MD5 value specified did not match."),
    "bare": lambda: web.Response(status=502, reason="Bad Gateway"),
}


@dataclass
class Plane:
    """A blob endpoint answering every request with `answer` and recording what it received."""

    answer: str = "ok"
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (str(request.rel_url), {k.lower(): v for k, v in request.headers.items()}, await request.read())
        )
        return ANSWERS[self.answer]()


@pytest.fixture
async def plane() -> AsyncIterator[tuple[Plane, str]]:
    state = Plane()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    async with TestServer(app) as server:
        yield state, f"http://127.0.0.1:{server.port}/acct/c/b.vhd?{SAS}"


async def _no_token() -> str | None:
    return None


Write = Callable[[], Awaitable[None]]


def _pair(url: str, kind: str) -> tuple[Write, Write]:
    """The SDK's call of `kind` and the same write through PageWriter, on the blob at `url`."""
    dest, data = Range(4096, 4096 + 1024), bytes(range(256)) * 4
    md5 = hashlib.md5(data).digest()
    writes = {
        "copy": (PageWrite(dest, LEASE, SOURCE, Range(0, 1024), SOURCE_AUTH), None),
        "put": (PageWrite(dest, LEASE, md5=md5), data),
        "clear": (PageWrite(dest, LEASE, clear=True), None),
    }
    write, body = writes[kind]

    async def sdk() -> None:
        async with BlobClient.from_blob_url(url) as client:
            lease = {"lease": LEASE, "retry_total": 0}
            if kind == "copy":
                await client.upload_pages_from_url(
                    SOURCE, dest.start, dest.length, 0, source_authorization=SOURCE_AUTH, **lease
                )
            elif kind == "put":
                await client.upload_page(
                    data, dest.start, dest.length, transactional_content_md5=md5, **lease
                )
            else:
                await client.clear_page(dest.start, dest.length, **lease)

    async def ours() -> None:
        writer = PageWriter(_no_token, ssl_context())
        try:
            await writer.send(url, write, body)
        finally:
            await writer.close()

    return sdk, ours


def _query(url: str) -> tuple[str, dict[str, list[str]]]:
    """A URL's path and query parameters (their order means nothing to the service)."""
    parts = urlsplit(url)
    return parts.path, parse_qs(parts.query)


@pytest.mark.parametrize("kind", ["copy", "put", "clear"])
async def test_a_write_sends_what_the_sdk_sends(plane: tuple[Plane, str], kind: str) -> None:
    state, url = plane
    sdk, ours = _pair(url, kind)
    await sdk()
    await ours()
    (sdk_url, sdk_headers, sdk_body), (our_url, our_headers, our_body) = state.seen
    assert _query(our_url) == _query(sdk_url) and our_body == sdk_body
    assert {k: v for k, v in our_headers.items() if k not in PER_REQUEST | {"host"}} == {
        k: v for k, v in sdk_headers.items() if k not in PER_REQUEST | {"host"}
    }
    assert our_headers.keys() >= PER_REQUEST
    assert our_headers["user-agent"].startswith("replicator/")


@pytest.mark.parametrize("answer", sorted(set(ANSWERS) - {"ok"}))
@pytest.mark.parametrize("kind", ["copy", "put", "clear"])
async def test_a_refused_write_raises_what_the_sdk_raises(
    plane: tuple[Plane, str], kind: str, answer: str
) -> None:
    state, url = plane
    state.answer = answer
    sdk, ours = _pair(url, kind)
    with pytest.raises(HttpResponseError) as theirs:
        await sdk()
    with pytest.raises(HttpResponseError) as mine:
        await ours()
    a, b = theirs.value, mine.value
    assert type(b) is type(a)
    assert (b.status_code, b.error_code, b.reason, str(b)) == (a.status_code, a.error_code, a.reason, str(a))
    assert b.response.headers.get("Retry-After") == a.response.headers.get("Retry-After")
    assert messages.describe(b) == messages.describe(a)
    assert messages.error_code(b) == messages.error_code(a)
    assert (retry.is_transient(b), retry.is_throttled(b), retry.account_limit(b), retry.retry_after(b)) == (
        retry.is_transient(a),
        retry.is_throttled(a),
        retry.account_limit(a),
        retry.retry_after(a),
    )
    for shown in (str(b), repr(b), messages.describe(b)):
        assert not any(secret in shown for secret in SECRETS)


async def test_no_answer_is_the_sdks_transient_service_request_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/acct/c/b.vhd?{SAS}"
    for write in _pair(url, "copy"):
        with pytest.raises(ServiceRequestError) as failed:
            await write()
        assert type(failed.value) is ServiceRequestError and retry.is_transient(failed.value)
        assert not any(secret in messages.describe(failed.value) for secret in SECRETS)


async def test_a_bearer_token_is_never_sent_over_plain_http(plane: tuple[Plane, str]) -> None:
    state, url = plane

    async def token() -> str | None:
        return "Bearer TOKEN"

    writer = PageWriter(token, ssl_context())
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        await writer.send(url, PageWrite(Range(0, 512), clear=True))
    await writer.close()
    assert state.seen == []


async def test_the_version_is_the_sdks() -> None:
    async with BlobClient("https://a.blob.core.windows.net", "c", "b") as client:
        assert client.api_version == API_VERSION


@given(dest=pages, lease=st.none() | st.just(LEASE), kind=st.sampled_from(["copy", "put", "clear"]))
def test_headers_name_the_range_the_body_and_only_what_the_write_needs(
    dest: Range, lease: str | None, kind: str
) -> None:
    md5 = hashlib.md5(b"x").digest()
    write = {
        "copy": PageWrite(dest, lease, SOURCE, Range(512, 512 + dest.length), SOURCE_AUTH),
        "put": PageWrite(dest, lease, md5=md5),
        "clear": PageWrite(dest, lease, clear=True),
    }[kind]
    sent = headers(write, date="Thu, 03 Dec 2026 19:00:00 GMT", request_id="id", authorization=None)
    assert sent["x-ms-range"] == to_http_range(dest)
    assert sent["x-ms-page-write"] == ("clear" if kind == "clear" else "update")
    assert int(sent["Content-Length"]) == (dest.length if kind == "put" else 0)
    assert sent.get("x-ms-lease-id") == lease
    assert "Authorization" not in sent
    assert ("x-ms-copy-source" in sent) == ("x-ms-source-range" in sent) == (kind == "copy")
    assert sent.get("x-ms-copy-source-authorization") == (SOURCE_AUTH if kind == "copy" else None)
    assert sent.get("Content-MD5") == (base64.b64encode(md5).decode() if kind == "put" else None)
    assert ("Content-Type" in sent) == (kind == "put")
    with_token = headers(write, date="d", request_id="id", authorization="Bearer T")
    assert with_token.pop("Authorization") == "Bearer T" and with_token.keys() == sent.keys()


@given(st.floats(0, 2**33))
def test_the_date_is_rfc_1123_gmt(now: float) -> None:
    shown = http_date(now)
    assert shown.endswith(" GMT") and int(parsedate_to_datetime(shown).timestamp()) == int(now)


def test_the_page_url_keeps_the_sas_query() -> None:
    assert page_url("https://a/c/b?sv=1&sig=s") == "https://a/c/b?sv=1&sig=s&comp=page"
    assert page_url("https://a/c/b") == "https://a/c/b?comp=page"


class _CountingCredential:
    """A token credential that counts its fetches; each token lives `lifetime` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.fetched = lifetime, 0

    async def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
        self.fetched += 1
        await asyncio.sleep(0)  # let the other waiters queue on the lock
        return AccessTokenInfo(f"token-{self.fetched}", int(time.time() + self.lifetime))


async def test_the_targets_token_is_fetched_once_for_every_write_until_it_nears_expiry() -> None:
    credential = _CountingCredential(3600)
    token = CachedToken(credential, STORAGE_SCOPE)  # type: ignore[arg-type]
    assert set(await asyncio.gather(*(token.get() for _ in range(50)))) == {"token-1"}
    assert credential.fetched == 1
    credential.lifetime = REFRESH_WINDOW_SECONDS - 1  # the next token is one about to expire
    token._token = None
    assert await token.get() == "token-2" and await token.get() == "token-3"
    assert "token" not in repr(token).replace("CachedToken", "")
