"""One sentence for what the Azure SDK raises before any answer arrives, and the clipping every echo uses.

The SDK reports a missing credential as a ClientAuthenticationError without a response (and a 2.5 KB
multi-line text), and an untrusted TLS certificate as a bare ServiceRequestError whose cause is buried
in `inner_exception`. A first-time user needs the fix, not the chain: these helpers turn both into one
sentence naming the endpoint and what to do. They never echo a credential (the text passes redact).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError

from replicator.redact import redact

ECHO_LIMIT = 200
"""Longest piece of user input an error message repeats: enough to recognise it, never a wall of text."""

SIGN_IN = (
    "sign in with `az login`, use a managed identity, set REPLICATOR_ACCESS_TOKEN, or put a SAS in the URL"
)
CA_FIX = "point SSL_CERT_FILE (or REQUESTS_CA_BUNDLE) at the CA bundle that signed it"


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters (marked with '...'), so a huge input is never echoed whole."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its SDK `inner_exception`s, causes and contexts (bounded: each seen once)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [getattr(item, "inner_exception", None), item.__cause__, item.__context__]


def is_certificate_failure(exc: BaseException) -> bool:
    """Whether TLS certificate verification is what failed (aiohttp and requests both keep the cause)."""
    for item in _chain(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(item) or "certificate verify failed" in str(item):
            return True
    return False


def is_missing_credential(exc: BaseException) -> bool:
    """A credential that produced no token (no login, no managed identity): nothing was sent yet."""
    return isinstance(exc, ClientAuthenticationError) and exc.response is None


def missing_credential(endpoint: str) -> str:
    """The sentence for a run without any Azure credential."""
    return f"No Azure credential was found for {endpoint}: {SIGN_IN}."


def unreachable(
    what: str, endpoint: str, exc: BaseException, fix: str = "check the URL and the network"
) -> str:
    """The sentence for a request that got no answer: a certificate failure says so and names the fix."""
    if is_certificate_failure(exc):
        return (
            f"The {what} {endpoint} presented a TLS certificate that could not be verified "
            f"(certificate verification failed): {CA_FIX}."
        )
    inner = getattr(exc, "inner_exception", None) or exc
    cause = clip(redact(str(inner)).splitlines()[0] if str(inner) else type(inner).__name__, 120)
    return f"Cannot reach the {what} {endpoint} ({cause}); {fix}."


def no_answer(exc: BaseException) -> bool:
    """Whether `exc` is the SDK's "no usable answer" family that `unreachable` describes."""
    return isinstance(exc, ServiceRequestError | ServiceResponseError)
