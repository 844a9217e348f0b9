"""Masks secrets in text before it reaches a log, an exception message or the terminal.

Why: a snapshot SAS URL is a bearer credential for the whole disk, and a storage bearer token or
account key is worse; any of them can surface in an SDK exception, a repr() of request headers or
our own log line. Everything that prints goes through `redact` (the CLI installs
`RedactingFilter` on every log handler).

What is secret, and nothing more, so the output stays useful for debugging:

- the `sig` value of a SAS query string, in any position, also URL-encoded (`%26sig%3D...`, once
  or twice) as when a SAS URL travels inside another URL. The other SAS fields (`sv`, `sr`, `se`,
  `sp`, `si`, `skoid`, `sktid`, ...) name versions, expiry, policies and object IDs: they grant
  nothing without the signature, and they tell an operator which grant a URL came from;
- the credential of an `Authorization`, `Proxy-Authorization` or `x-ms-copy-source-authorization`
  header, and any `Bearer <token>` or `SharedKey <account>:<signature>` wherever it appears;
- `AccountKey=...` in connection strings, JSON/dict/keyword fields named like `access_token`,
  `token`, `refresh_token`, `id_token`, `client_secret`, `account_key`, `password`, and any JSON
  Web Token.

The secret becomes `REDACTED`; names, separators and quotes stay, so `redact` is idempotent.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "REDACTED"

# A value ends at a quote, whitespace, a URL/list separator, a closing bracket or a backslash (the
# start of an escape such as \n or \u0026 in a repr or JSON). `%26` (an encoded `&`, possibly
# re-encoded as %2526) also ends it, since base64 never contains `&`.
_END = r"""&\s'"<>,;)\]}\\#"""
_VALUE = rf"(?:(?!%(?:25)*26)[^{_END}])+"
_FLAGS = re.IGNORECASE

# `sig` where no letter precedes it: after `?`, `&`, `;`, a quote, a space, but also after `%26`
# (an encoded `&`) or `\u0026` (a JSON-escaped one), and after an encoded `?` (`%3F`, `%253F`).
_SAS_SIG = re.compile(
    r"(?P<keep>(?:(?<![A-Za-z_])|(?<=%3F)|(?<=%253F))sig(?:=|%(?:25)?3D))"
    rf"(?P<secret>{_VALUE})",
    _FLAGS,
)
_SCHEMES = r"(?:Bearer|SharedKey|SharedKeyLite|Basic|Digest|Negotiate|Token|PoP)"
_AUTH_HEADER = re.compile(
    r"(?P<keep>(?<![\w-])(?:x-ms-copy-source-authorization|proxy-authorization|authorization)"
    rf"[\"']?\s*[:=]\s*[\"']?(?:{_SCHEMES}\s+)?)(?P<secret>[^\s\"',;}}\]\\]+)",
    _FLAGS,
)
_BEARER = re.compile(r"(?P<keep>(?<![\w-])Bearer\s+)(?P<secret>[A-Za-z0-9\-._~+/=]+)", _FLAGS)
_SHARED_KEY = re.compile(
    r"(?P<keep>(?<![\w-])SharedKey(?:Lite)?\s+[\w-]+:)(?P<secret>[A-Za-z0-9+/=]+)", _FLAGS
)
_ACCOUNT_KEY = re.compile(rf"(?P<keep>(?<![\w-])AccountKey\s*=\s*)(?P<secret>[^{_END}]+)", _FLAGS)
_TOKEN_FIELD = re.compile(
    r"(?P<keep>(?<![\w-])[\"']?(?:access_token|refresh_token|id_token|token|client_secret|account_key|"
    r"accountkey|password)[\"']?\s*[:=]\s*[\"']?)"
    rf"(?P<secret>[^{_END}]+)",
    _FLAGS,
)
_JWT = re.compile(r"(?P<keep>)(?P<secret>\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)")

_RULES = (_SAS_SIG, _AUTH_HEADER, _BEARER, _SHARED_KEY, _ACCOUNT_KEY, _TOKEN_FIELD, _JWT)


def _mask(match: re.Match[str]) -> str:
    return match["keep"] + MASK


def redact(text: str) -> str:
    """`text` with every secret listed in the module docstring replaced by `REDACTED`; idempotent."""
    for rule in _RULES:
        text = rule.sub(_mask, text)
    return text


def redact_url(url: str) -> str:
    """`url` safe to print: secret query values masked, any user:password stripped, the rest kept.

    Why a URL-aware variant: it also catches secrets `redact` could not tell from their shape in a
    query string (a `sig` spelled with an encoded letter, a password in the authority).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    query = "&".join(_redact_param(p) for p in parts.query.split("&")) if parts.query else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def display_url(url: str) -> str:
    """`url` without its query string, fragment and user:password: a name for a resource, not a credential.

    Why, beside `redact_url`: a metric attribute or a label must hold nothing secret and nothing that
    changes between runs (a SAS's expiry `se` would make every run a new time series).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_query(query: str) -> str:
    """A URL query string (a SAS token without its `?`) safe to print, by `redact_url`'s rules."""
    return redact("&".join(_redact_param(p) for p in query.split("&")))


def redacted_repr(obj: Any, *, urls: Collection[str] = (), queries: Collection[str] = ()) -> str:
    """The dataclass repr of `obj` with its secrets masked: for `__repr__` of objects holding a SAS.

    Why: a default dataclass repr prints a target URL with its SAS whole, and reprs end up in
    tracebacks, debuggers and f-strings no log filter sees. Fields named in `urls` pass `redact_url`,
    those in `queries` `redact_query`, every other field `redact`; fields declared `repr=False` stay out.
    """
    shown = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, str) and f.name in urls:
            text = repr(redact_url(value))
        elif isinstance(value, str) and f.name in queries:
            text = repr(redact_query(value))
        else:
            text = redact(repr(value))
        shown.append(f"{f.name}={text}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    if eq and unquote(name).lower() in {"sig", "token", "access_token", "client_secret"}:
        return f"{name}={MASK}"
    return param


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message, arguments, traceback and stack before any handler formats it.

    Install it on every handler (filters on a handler see records from all loggers, filters on a
    logger do not). It formats the message with its arguments itself, so a secret hidden in an
    argument's repr is masked too, and pre-formats the traceback into `exc_text` (clearing
    `exc_info`) so that handlers which render tracebacks themselves (rich) cannot bypass it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # Mismatched arguments: logging would print them raw in its "Logging error" report.
            message = f"{record.msg} (unformattable log arguments: {record.args!r})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
