"""One redacted line about any exception, one sentence for what the Azure SDK raises before any answer
arrives, and the clipping every echo uses.

`describe` is the only code that turns an exception into text for an error, a log line or a JSON
field (status, the service's error code, the reason phrase; never a response body). `error_code`,
`service_message` and `service_answer` are the parts for sentences that quote the service's refusal
(the source's ARM and storage errors, the target's permission sentences).

The SDK reports a missing credential as a ClientAuthenticationError without a response (and a 2.5 KB
multi-line text), and an untrusted TLS certificate as a bare ServiceRequestError whose cause is buried
in `inner_exception`. A first-time user needs the fix, not the chain: these helpers turn both into one
sentence naming the endpoint and what to do. They never echo a credential (the text passes redact).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from replicator.core.redact import redact

ECHO_LIMIT = 200
"""Longest piece of user input an error message repeats: enough to recognise it, never a wall of text."""

DESCRIBE_LIMIT = 300
"""Longest description of an exception: a status, an error code and a reason fit; a wall of text does not."""

SIGN_IN = (
    "sign in with `az login`, use a managed identity, set REPLICATOR_ACCESS_TOKEN, or put a SAS in the URL"
)
CA_FIX = "point SSL_CERT_FILE (or REQUESTS_CA_BUNDLE) at the CA bundle that signed it"


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters (marked with '...'), so a huge input is never echoed whole."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def describe(exc: BaseException, limit: int = DESCRIBE_LIMIT) -> str:
    """One redacted line about `exc`: "403 AuthorizationFailure Forbidden" for a service answer (status,
    error code, reason), else "TypeName: first line of its text". Clipped to `limit`."""
    if isinstance(exc, HttpResponseError) and exc.status_code:
        parts = [str(exc.status_code), error_code(exc), exc.reason]
        return clip(redact(" ".join(p for p in parts if p)), limit)
    if isinstance(exc, HttpResponseError):  # no answer (a credential that produced no token): its text
        return cause(exc, limit)
    line = _first_line(exc)
    return clip(f"{type(exc).__name__}: {line}" if line else type(exc).__name__, limit)


def cause(exc: BaseException, limit: int = DESCRIBE_LIMIT) -> str:
    """The first line of `exc`'s text, redacted and clipped (its type's name when it has no text): for a
    sentence that already says what kind of failure it was."""
    return clip(_first_line(exc) or type(exc).__name__, limit)


def _first_line(exc: BaseException) -> str:
    lines = redact(str(exc)).splitlines()  # redact the whole text first: a secret may span lines
    return lines[0].strip() if lines else ""


def error_code(exc: BaseException) -> str:
    """The service's error code in an answer ("" when none).

    Storage errors carry it as `error_code` (from x-ms-error-code; an enum in some SDK versions), ARM
    errors in their parsed JSON error (`error.code`). For 404/409 the generated storage operations
    raise before deserializing the answer, so the header, then the XML body's <Code>, come last.
    """
    code = getattr(exc, "error_code", None)  # absent when the error was built without a response
    code = getattr(code, "value", code) or getattr(getattr(exc, "error", None), "code", None)
    response = getattr(exc, "response", None)
    if not code and response is not None:
        code = response.headers.get("x-ms-error-code") or _body_field(exc, "Code")
    return str(code or "")


def service_message(exc: BaseException) -> str:
    """The service's own explanation in an answer (ARM's error message, storage's <Message>), else the
    reason phrase; its first line, redacted; "" when there is none. Not clipped: is_family_sas_limit and
    is_resize_refusal search all of it (Azure's messages are one short line)."""
    message = (
        getattr(getattr(exc, "error", None), "message", None)
        or _body_field(exc, "Message")
        or getattr(getattr(exc, "model", None), "message", None)
        or getattr(exc, "reason", None)
        or ""
    )
    lines = redact(message).splitlines()
    return lines[0].strip() if lines else ""


def service_answer(exc: HttpResponseError) -> str:
    """The service's refusal as a sentence quotes it (ARM's, storage's): "code: message", the error
    code (else the status) and the service's message (else "no message")."""
    return f"{error_code(exc) or exc.status_code or ''}: {service_message(exc) or 'no message'}"


def _body_field(exc: BaseException, name: str) -> str | None:
    """A field of a storage error body (`<Error><Code>..</Code><Message>..</Message></Error>`): read
    for its code and message only, never echoed whole."""
    response = getattr(exc, "response", None)
    try:
        body = response.text() if response is not None else ""
    except Exception:  # a body we cannot decode simply has no such field
        return None
    match = re.search(rf"<{name}>(.*?)</{name}>", body or "", re.DOTALL)
    return match.group(1).strip() if match else None


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
    return f"Cannot reach the {what} {endpoint} ({cause(inner, 120)}); {fix}."


def no_answer(exc: BaseException) -> bool:
    """Whether `exc` is the SDK's "no usable answer" family that `unreachable` describes."""
    return isinstance(exc, ServiceRequestError | ServiceResponseError)
