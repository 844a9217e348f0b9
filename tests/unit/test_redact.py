"""Secrets never survive `redact`, `redact_url` or a log handler carrying `RedactingFilter`; the rest
of the text does, unchanged."""

from __future__ import annotations

import base64
import io
import json
import logging
import string
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.logging import RichHandler

from replicator.core.redact import (
    MASK,
    RedactingFilter,
    redact,
    redact_url,
)

props = settings(max_examples=300, deadline=None, derandomize=True)

KEY = base64.b64encode(bytes(range(64))).decode()
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
BLOB = "https://acct.blob.core.windows.net/replicas/disk1.vhd"
MD_SIG = "Xy7%2BkLm%2FQ9pR4sT6uV8wX0yZ1aB3cD5eF7gH9iJ2kL4%3D"
MD_URL = (
    "https://md-hdd-0xbm1z4xqcfz.z22.blob.storage.azure.net/kqtbxbj0zgxw/abcd"
    f"?sv=2018-03-28&sr=b&si=5b3d8b1c-6f7e-4c4b-9c6a-1f2e3d4c5b6a&sig={MD_SIG}"
)


def account_sas_query() -> str:
    return generate_blob_sas(
        "acct",
        "replicas",
        "disk1.vhd",
        account_key=KEY,
        permission=BlobSasPermissions(read=True),
        expiry=EXPIRY,
    )


def user_delegation_sas_query() -> str:
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = (
        "11111111-2222-3333-4444-555555555555",
        "66666666-7777-8888-9999-000000000000",
    )
    key.signed_start, key.signed_expiry = "2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"
    key.signed_service, key.signed_version, key.value = "b", "2025-01-05", KEY
    return generate_blob_sas(
        "acct", "replicas", "disk1.vhd", user_delegation_key=key, permission="r", expiry=EXPIRY
    )


def sig_of(query: str) -> str:
    return query.split("sig=", 1)[1].split("&", 1)[0]


SDK_QUERIES = [account_sas_query(), user_delegation_sas_query()]


# --- SAS URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", SDK_QUERIES)
def test_sdk_generated_sas_keeps_everything_but_the_signature(query):
    url = f"{BLOB}?{query}"
    sig = sig_of(query)
    expected = url.replace(f"sig={sig}", f"sig={MASK}")
    assert redact(url) == expected
    assert redact_url(url) == expected
    assert "skoid=" in query or "sp=r" in query  # the identifying fields stay readable


def test_managed_disk_sas_masks_only_sig():
    expected = MD_URL.replace(MD_SIG, MASK)
    assert expected.endswith("?sv=2018-03-28&sr=b&si=5b3d8b1c-6f7e-4c4b-9c6a-1f2e3d4c5b6a&sig=REDACTED")
    assert redact(MD_URL) == expected
    assert redact_url(MD_URL) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{url}",
        "copy failed: {url!r}",
        "{{'x-ms-copy-source': '{url}', 'x-ms-range': 'bytes=0-511'}}",
        '{{"accessSAS": "{url}", "securityDataAccessSAS": null}}',
        "HttpResponseError(Operation returned an invalid status 'Forbidden', url={url})",
        '<a href="{url}">',
        "source=({url})",
        "{url}\n  next line",
        "json escapes: {url_json}",
    ],
)
def test_signature_is_masked_inside_reprs_json_and_messages(template):
    for url in (MD_URL, f"{BLOB}?{SDK_QUERIES[0]}", f"{BLOB}?sig={MD_SIG}&sv=2018-03-28&sr=b"):
        text = template.format(url=url, url_json=json.dumps(url).replace("&", "\\u0026"))
        out = redact(text)
        assert sig_of(url) not in out
        assert "sig=" + MASK in out
        assert redact(out) == out


def test_url_encoded_sas_inside_another_url_is_masked():
    inner = f"{BLOB}?{SDK_QUERIES[0]}"
    once = "https://portal.example/redirect?to=" + quote(inner, safe="")
    twice = "https://outer.example/?u=" + quote(once, safe="")
    for text in (once, twice):
        out = redact(text)
        assert "3DREDACTED" in out
        encoded_sig = quote(sig_of(inner), safe="")
        assert encoded_sig not in out and quote(encoded_sig, safe="") not in out
        assert redact(out) == out


def test_redact_url_strips_credentials_and_encoded_parameter_names():
    assert redact_url("https://user:pa55@host.example/c/b?%73ig=abc%3D&sv=1") == (
        f"https://host.example/c/b?%73ig={MASK}&sv=1"
    )
    assert redact_url(BLOB) == BLOB
    assert redact_url("https://[::1/broken?sig=abc") == f"https://[::1/broken?sig={MASK}"


# --- headers, keys and tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{'Authorization': 'Bearer eyJ0eXAi.eyJhdWQi.c2lnbmF0', 'x-ms-version': '2025'}",
            f"{{'Authorization': 'Bearer {MASK}', 'x-ms-version': '2025'}}",
        ),
        (
            "x-ms-copy-source-authorization: Bearer abc.def-ghi_jkl~mno+pqr/stu=",
            f"x-ms-copy-source-authorization: Bearer {MASK}",
        ),
        (
            "Authorization: SharedKey acct:kX9pZ2RhY2Fi/YWJj+ZGVm=",
            f"Authorization: SharedKey {MASK}",
        ),
        (
            "signed with SharedKeyLite acct:kX9pZ2RhY2Fi/YWJj+ZGVm= at 12:00",
            f"signed with SharedKeyLite acct:{MASK} at 12:00",
        ),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net",
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={MASK};EndpointSuffix=core.windows.net",
        ),
        (
            '{"token_type": "Bearer", "expires_in": 3599, "access_token": "opaque-token-0123456789"}',
            f'{{"token_type": "Bearer", "expires_in": 3599, "access_token": "{MASK}"}}',
        ),
        (
            '{"token": "s3cr3t-value", "expiresOn": 1700000000}',
            f'{{"token": "{MASK}", "expiresOn": 1700000000}}',
        ),
        (
            "AccessToken(token='tok-abc-123', expires_on=1700000000)",
            f"AccessToken(token='{MASK}', expires_on=1700000000)",
        ),
        ("client_secret=abc~DEF.123&scope=x", f"client_secret={MASK}&scope=x"),
        ("raw jwt eyJhbGciOi.eyJzdWIiOi.SflKxwRJSMeKKF2QT4fwpM in text", f"raw jwt {MASK} in text"),
    ],
)
def test_credentials_are_masked(text, expected):
    assert redact(text) == expected
    assert redact(expected) == expected


def test_text_without_secrets_is_unchanged():
    text = (
        "AuthorizationPermissionMismatch: This request is not authorized to perform this operation. "
        "x-ms-range: bytes=0-4194303, signature did not match, DefaultAzureCredential failed to get a token."
    )
    assert redact(text) == text


# --- properties ------------------------------------------------------------------------------------

TOKEN_ALPHABET = string.ascii_letters + string.digits + "+/"
tokens = st.text(TOKEN_ALPHABET, min_size=16, max_size=64).map(lambda t: t + "=" * (-len(t) % 4))
filler = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)

# Each template names where the secret goes ({t}) and whether it is URL-encoded there.
TEMPLATES = [
    (" {url}?sv=2018-03-28&sr=b&si=abc&sig={t}", True),
    (" {url}?sig={t}&sv=2018-03-28&sr=b", True),
    (" {{'x-ms-copy-source': '{url}?sp=r&sig={t}'}}", True),
    (" Authorization: Bearer {t}", False),
    (" {{'x-ms-copy-source-authorization': 'Bearer {t}'}}", False),
    (" Authorization: SharedKey acct:{t}", False),
    (" SharedKey acct:{t}", False),
    (" AccountName=a;AccountKey={t};EndpointSuffix=core.windows.net", False),
    (' {{"access_token": "{t}"}}', False),
    (" token={t}", False),
]


@props
@given(
    token=tokens,
    template=st.sampled_from(TEMPLATES),
    encode=st.booleans(),
    nest=st.booleans(),
    prefix=filler,
    suffix=filler,
)
def test_random_secrets_in_random_text_never_survive(token, template, encode, nest, prefix, suffix):
    fmt, encodable = template
    secret = quote(token, safe="") if encode and encodable else token
    body = fmt.format(url=BLOB, t=secret)
    if nest and encodable:
        body = " https://outer.example/?to=" + quote(body.strip(), safe="")
    text = prefix + body + suffix
    windows = {token[i : i + 8] for i in range(len(token) - 7)}
    rest = prefix + "\0" + fmt.format(url=BLOB, t="") + "\0" + suffix + "\0" + MASK
    assume(not any(w in rest for w in windows))
    out = redact(text)
    leaked = [w for w in windows if w in out]
    assert not leaked, out
    assert redact(out) == out


@props
@given(text=st.text(max_size=200))
def test_redact_is_idempotent_and_leaves_innocent_text_alone(text):
    out = redact(text)
    assert redact(out) == out
    triggers = ("sig", "bearer", "sharedkey", "authorization", "accountkey", "account_key", "token")
    triggers += ("client_secret", "password", "eyj")
    if not any(t in text.lower() for t in triggers):
        assert out == text


# --- logging -----------------------------------------------------------------------------------------


@pytest.fixture
def log() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test_redact.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def test_filter_masks_message_and_arguments(log):
    logger, stream = log
    sig = sig_of(MD_URL)
    logger.info("granted %s for %r", MD_URL, {"Authorization": "Bearer tok-123456"})
    logger.warning("headers %(h)r", {"h": {"x-ms-copy-source-authorization": "Bearer tok-abcdef"}})
    logger.error("too few args %s %s", MD_URL)
    out = stream.getvalue()
    assert sig not in out and "tok-123456" not in out and "tok-abcdef" not in out
    assert out.count("sig=REDACTED") == 2
    assert "Bearer REDACTED" in out and "unformattable" in out


def test_filter_masks_tracebacks_and_stacks(log):
    logger, stream = log
    try:
        raise RuntimeError(f"Put Page From URL failed for {MD_URL}")
    except RuntimeError:
        logger.exception("copy failed")
    logger.info("here: %s", MD_URL, stack_info=True)
    out = stream.getvalue()
    assert "RuntimeError: Put Page From URL failed for" in out and "Traceback" in out
    assert sig_of(MD_URL) not in out


def test_filter_holds_for_rich_tracebacks():
    buffer = io.StringIO()
    handler = RichHandler(console=Console(file=buffer, width=300), rich_tracebacks=True, show_time=False)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact.rich")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"copy source {MD_URL} refused")
        except ValueError:
            logger.exception("failed with %s", MD_URL)
    finally:
        logger.removeHandler(handler)
    out = buffer.getvalue()
    assert "refused" in out and "sig=REDACTED" in out
    assert "Xy7" not in out


FRAGMENTS = [
    *("sig", "Sig", "=", "%3D", "%253D", "%26", "%2526", "&", "?", "%3F", "\\u0026", "%25", "REDACTED"),
    *("Bearer", "Basic", "SharedKey", "acct:", "Authorization", "x-ms-copy-source-authorization"),
    *("token", "access_token", "AccountKey", "eyJ", ".", "abc", "0", "+", "/", "-", "_"),
    *(" ", ":", "'", '"', "{", "}", ",", ";", "\n"),
]


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(text=st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join))
def test_redact_is_idempotent_on_adversarial_fragment_soup(text):
    """Rules must not uncover or create matches for each other: the output of one pass is stable."""
    out = redact(text)
    assert redact(out) == out
