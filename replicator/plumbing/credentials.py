"""Credentials, TLS and HTTP transports shared by every Azure client the replicator builds.

Both sides (ARM + snapshot data plane in replicator.source, the target page blob in
replicator.target) build their async SDK clients with `transport_kwargs()`, so certificate handling
lives in one place:

- Credentials: a static bearer token (`REPLICATOR_ACCESS_TOKEN`, or `Config.access_token`) when one
  is given, for the emulator and for callers that mint their own token; otherwise
  `DefaultAzureCredential` (managed identity in Functions, the Azure CLI login by hand).
- TLS: azure-core's `requests` transport honours `REQUESTS_CA_BUNDLE`/`SSL_CERT_FILE` by itself, but
  the aiohttp transport does not (aiohttp builds its default context once, at import). Passing
  `connection_verify=<path>` would make azure-core build a new `SSLContext` per request, and aiohttp
  keys its connection pool by that object, so every request would open a new TLS connection. Hence
  a transport (replicator.plumbing.http_pool) whose connector carries one context built from the CA file.
- Plain HTTP only with `allow_http` (Azurite); a bearer token is never sent over plain HTTP, which
  azure-core's authentication policies enforce anyway, so an `http://` ARM endpoint is refused.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential

from replicator.core.errors import UserError
from replicator.core.messages import clip
from replicator.core.redact import redact_url
from replicator.plumbing import recovery
from replicator.plumbing.http_pool import SharedSessionTransport
from replicator.plumbing.urlcheck import check_common

ACCESS_TOKEN_ENV = "REPLICATOR_ACCESS_TOKEN"
CA_FILE_ENVS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")

# A static token has no known expiry; report one hour ahead so azure-core never tries to refresh it early.
_STATIC_TOKEN_LIFETIME_SECONDS = 3600

REFRESH_WINDOW_SECONDS = 300
"""Fetch a new token this long before the cached one expires, as azure-core's bearer policy
(DEFAULT_REFRESH_WINDOW_SECONDS) and AzCopy's source policy (minimumTokenValidDuration) do: no request
of a long run ever carries a token that expires on its way."""


class HttpSettings(Protocol):
    """The part of `replicator.settings.config.Config` the builders here read."""

    allow_http: bool
    access_token: str | None


def _static_token(token: str) -> AccessToken:
    return AccessToken(token, int(time.time()) + _STATIC_TOKEN_LIFETIME_SECONDS)


class StaticTokenCredential(TokenCredential):
    """A bearer token given from outside (emulator, another cloud's tooling); same token for every scope."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return _static_token(self._token)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token = _static_token(self._token)
        return AccessTokenInfo(token.token, token.expires_on)

    def __repr__(self) -> str:  # never show the token
        return "StaticTokenCredential(<token>)"


class AsyncStaticTokenCredential(AsyncTokenCredential):
    """Async twin of StaticTokenCredential, for the aio SDK clients."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return _static_token(self._token)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token = _static_token(self._token)
        return AccessTokenInfo(token.token, token.expires_on)

    async def close(self) -> None:
        """Nothing to release; present because AsyncTokenCredential users call it."""

    def __repr__(self) -> str:
        return "AsyncStaticTokenCredential(<token>)"


class CachedToken:
    """A credential's token for one scope, cached and refreshed before it expires (REFRESH_WINDOW_SECONDS,
    or the identity platform's `refresh_on`), fetched once under a lock for every request that waits on
    it: what azure-core's bearer policy does for an SDK client, for the requests sent without one (the
    chunk writes of plumbing.page_writes, the disk token of source.disk_auth)."""

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self._credential = credential
        self.scope = scope
        self._token: AccessToken | AccessTokenInfo | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(cached={self._token is not None})"

    def _stale(self) -> bool:
        token, now = self._token, time.time()
        if token is None or token.expires_on - now < REFRESH_WINDOW_SECONDS:
            return True
        refresh_on = getattr(token, "refresh_on", None)  # the identity platform's own advice, if any
        return refresh_on is not None and refresh_on <= now

    async def get(self) -> str:
        """The token (fetched once for every request that waits on it)."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    self._token = await self._fetch()
        assert self._token is not None
        return self._token.token

    async def _fetch(self) -> AccessToken | AccessTokenInfo:
        if hasattr(self._credential, "get_token_info"):
            return await self._credential.get_token_info(self.scope)
        return await self._credential.get_token(self.scope)


def _token_from(settings: HttpSettings | None) -> str | None:
    token = settings.access_token if settings is not None else None
    return token or os.environ.get(ACCESS_TOKEN_ENV) or None


def async_credential(settings: HttpSettings | None = None) -> AsyncTokenCredential:
    """The credential of the async clients; the caller closes it (`await cred.close()`)."""
    token = _token_from(settings)
    if token:
        return AsyncStaticTokenCredential(token)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


def sync_credential(settings: HttpSettings | None = None) -> TokenCredential:
    """The credential of synchronous clients (restore tooling, tests)."""
    token = _token_from(settings)
    if token:
        return StaticTokenCredential(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def ca_file() -> str | None:
    """The CA bundle named by SSL_CERT_FILE or REQUESTS_CA_BUNDLE, if any (first one set wins)."""
    for name in CA_FILE_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


@functools.lru_cache(maxsize=8)
def _ssl_context_for(path: str | None, _mtime_ns: int) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as err:
        raise UserError(
            f"Cannot load the CA bundle {path} (from SSL_CERT_FILE/REQUESTS_CA_BUNDLE): {err}."
        ) from None


def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for the current CA bundle; cached, rebuilt when the file changes."""
    path = ca_file()
    mtime = os.stat(path).st_mtime_ns if path and os.path.exists(path) else 0
    return _ssl_context_for(path, mtime)


def transport_kwargs() -> dict[str, Any]:
    """Keyword arguments for any azure-core async client (ARM or storage): a transport on the
    process's shared connection pool (replicator.plumbing.http_pool) with our TLS context.

    Call it once per client: a transport belongs to the client that closes it.
    """
    return {"transport": SharedSessionTransport(ssl_context())}


def check_url(url: str, what: str, *, allow_http: bool) -> None:
    """UserError unless `url` is an absolute https URL (or http with `allow_http`); `what` names it."""
    check_common(url, f"The {what}")
    parts = urlsplit(url)
    shown = clip(redact_url(url))
    if parts.scheme == "http" and not allow_http:
        raise UserError(
            f"The {what} {shown} uses plain HTTP; use https, or --allow-http for a local emulator."
        )
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UserError(f"The {what} {shown!r} is not an absolute https URL.")


def check_arm_endpoint(endpoint: str, *, allow_http: bool) -> str:
    """The ARM base URL without a trailing '/'; UserError if it is not https (bearer tokens need TLS)."""
    check_url(endpoint, "ARM endpoint", allow_http=allow_http)
    if urlsplit(endpoint).scheme != "https":
        raise UserError(
            f"The ARM endpoint {endpoint} uses plain HTTP, but bearer tokens are only sent over https; "
            "--allow-http applies to storage emulators only."
        )
    return endpoint.rstrip("/")


def arm_scope(endpoint: str) -> str:
    """The token scope of an ARM endpoint (`https://management.azure.com/.default` for public Azure)."""
    return f"{endpoint.rstrip('/')}/.default"


def client_kwargs() -> dict[str, Any]:
    """Transport (pooled TLS with the configured CA) and retry policy of every storage client we build:
    the target's and the source's SAS reads (source.reader, --verify), hence here and not in target."""
    return {**transport_kwargs(), "retry_policy": recovery.storage_retry(recovery.CONTROL_RETRIES)}
