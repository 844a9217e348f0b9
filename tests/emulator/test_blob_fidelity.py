"""Emulator answers that a client nobody here wrote (or a recording of real Azure) pins: the Range slot
of Shared Key, CRC64 both ways, structured bodies, unaligned Put Page ranges, Put Blob over an existing
blob with If-None-Match: *, and the Content-MD5 answer of Put Page From URL (issue 13)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
from datetime import UTC, datetime, timedelta
from email.utils import formatdate

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobClient, generate_blob_sas
from azure.storage.blob._shared.streams import StructuredMessageEncodeStream, StructuredMessageProperties
from azure.storage.extensions import checksums

from replicator.emulator.blob.crc64 import crc64
from tests.helpers.blob_clients import BlobClients

P = 512
VERSION = "2026-10-06"


@pytest.fixture
def page_blob(blob_clients: BlobClients, unique_name) -> BlobClient:
    account = unique_name("fid")
    blob_clients.key(account).create_container("c")
    blob = blob_clients.key(account).get_blob_client("c", "disk.vhd")
    blob.create_page_blob(16 * P)
    blob.upload_page(bytes(range(256)) * 2 * 4, offset=0, length=4 * P)
    return blob


def raw(blob: BlobClient, env: dict[str, str], method: str, query: str, body: bytes = b"", **headers: str):
    """A bearer-authorized request the SDK would not send as is."""
    return requests.request(
        method,
        blob.url + query,
        data=body,
        headers={
            "Authorization": f"Bearer {env['REPLICATOR_ACCESS_TOKEN']}",
            "x-ms-version": VERSION,
            **headers,
        },
        verify=env["SSL_CERT_FILE"],
        timeout=30,
    )


def b64_crc(data: bytes) -> str:
    return base64.b64encode(checksums.crc64.compute(data, 0).to_bytes(8, "little")).decode()


def test_crc64_is_the_sdks() -> None:
    """The emulator's pure-Python CRC64 agrees with azure-storage-blob's native one (CRC-64/NVME)."""
    assert crc64(b"123456789") == 0xAE8B14860A799888
    for size in (0, 1, 7, 8, 9, 511, 4096 + 3):
        data = os.urandom(size)
        assert crc64(data) == checksums.crc64.compute(data, 0)
        assert crc64(data[3:], crc64(data[:3])) == checksums.crc64.compute(data, 0)


def shared_key_get(blob: BlobClient, env: dict[str, str], signed_range: str):
    """Get Blob with the standard Range header, signed as "Authorize with Shared Key" lays it out,
    with `signed_range` in the Range slot."""
    account = blob.account_name
    date = formatdate(usegmt=True)
    path = blob.url.split("//", 1)[1].split("/", 1)[1]
    slots = ["GET", "", "", "", "", "", "", "", "", "", "", signed_range]
    canonical = f"x-ms-date:{date}\nx-ms-version:{VERSION}\n"
    to_sign = "\n".join(slots) + "\n" + canonical + f"/{account}/{path}"
    key = base64.b64decode(env["REPLICATOR_ACCOUNT_KEY"])
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    return requests.get(
        blob.url,
        headers={
            "Range": "bytes=0-511",
            "x-ms-date": date,
            "x-ms-version": VERSION,
            "Authorization": f"SharedKey {account}:{signature}",
        },
        verify=env["SSL_CERT_FILE"],
        timeout=30,
    )


def test_shared_key_signs_the_range_header(page_blob: BlobClient, emulator_env) -> None:
    signed = shared_key_get(page_blob, emulator_env, "bytes=0-511")
    assert (signed.status_code, signed.content) == (206, (bytes(range(256)) * 2))
    empty_slot = shared_key_get(page_blob, emulator_env, "")
    assert (empty_slot.status_code, empty_slot.headers["x-ms-error-code"]) == (403, "AuthenticationFailed")


def test_put_page_crc64_checked_and_answered(page_blob: BlobClient, emulator_env) -> None:
    data = b"c" * P
    page_blob.upload_page(data, offset=4 * P, length=P, validate_content="crc64")  # the SDK's own header
    assert page_blob.download_blob(offset=4 * P, length=P).readall() == data
    ok = raw(page_blob, emulator_env, "PUT", "?comp=page", data, **{
        "x-ms-page-write": "update", "x-ms-range": f"bytes={5 * P}-{6 * P - 1}",
        "x-ms-content-crc64": b64_crc(data),
    })  # fmt: skip
    assert (ok.status_code, ok.headers["x-ms-content-crc64"]) == (201, b64_crc(data))
    wrong = raw(page_blob, emulator_env, "PUT", "?comp=page", data, **{
        "x-ms-page-write": "update", "x-ms-range": f"bytes=0-{P - 1}", "x-ms-content-crc64": b64_crc(b"x" * P)
    })  # fmt: skip
    assert (wrong.status_code, wrong.headers["x-ms-error-code"]) == (400, "Crc64Mismatch")
    assert page_blob.download_blob(offset=0, length=P).readall() == bytes(range(256)) * 2


def test_get_blob_crc64_of_a_range(page_blob: BlobClient, emulator_env) -> None:
    expected = bytes(range(256)) * 2 * 2
    answer = raw(page_blob, emulator_env, "GET", "", **{
        "x-ms-range": f"bytes=0-{2 * P - 1}", "x-ms-range-get-content-crc64": "true"
    })  # fmt: skip
    assert (answer.status_code, answer.content) == (206, expected)
    assert answer.headers["x-ms-content-crc64"] == b64_crc(expected)
    page_blob.resize_blob(4 * 1024 * 1024 + P)
    beyond = raw(page_blob, emulator_env, "GET", "", **{
        "x-ms-range": f"bytes=0-{4 * 1024 * 1024}", "x-ms-range-get-content-crc64": "true"
    })  # fmt: skip
    assert (beyond.status_code, beyond.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    both = raw(page_blob, emulator_env, "GET", "", **{
        "x-ms-range": "bytes=0-511", "x-ms-range-get-content-crc64": "true",
        "x-ms-range-get-content-md5": "true",
    })  # fmt: skip
    assert (both.status_code, both.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")


def structured(data: bytes) -> bytes:
    """`data` as azure-storage-blob encodes a structured body (one CRC64 per segment and for all)."""
    return StructuredMessageEncodeStream(
        io.BytesIO(data), len(data), StructuredMessageProperties.CRC64
    ).read()


def test_structured_body_decoded_checked_and_echoed(page_blob: BlobClient, emulator_env) -> None:
    data = os.urandom(2 * P)
    headers = {
        "x-ms-page-write": "update",
        "x-ms-range": f"bytes={8 * P}-{10 * P - 1}",
        "x-ms-structured-body": "XSM/1.0; properties=crc64",
        "x-ms-structured-content-length": str(len(data)),
    }
    ok = raw(page_blob, emulator_env, "PUT", "?comp=page", structured(data), **headers)
    assert (ok.status_code, ok.headers["x-ms-structured-body"]) == (201, "XSM/1.0; properties=crc64")
    assert page_blob.download_blob(offset=8 * P, length=2 * P).readall() == data
    corrupt = bytearray(structured(data))
    corrupt[30] ^= 1  # a data byte of the only segment
    bad = raw(page_blob, emulator_env, "PUT", "?comp=page", bytes(corrupt), **headers)
    assert (bad.status_code, bad.headers["x-ms-error-code"]) == (400, "Crc64Mismatch")
    other = raw(page_blob, emulator_env, "PUT", "?comp=page", structured(data), **{
        **headers, "x-ms-structured-body": "XSM/2.0; properties=crc64"
    })  # fmt: skip
    assert (other.status_code, other.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    download = raw(page_blob, emulator_env, "GET", "", **{
        "x-ms-range": "bytes=0-511", "x-ms-structured-body": "XSM/1.0; properties=crc64"
    })  # fmt: skip
    assert (download.status_code, download.headers["x-ms-error-code"]) == (400, "UnsupportedHeader")


def test_unaligned_put_page_is_an_invalid_header_value(page_blob: BlobClient, emulator_env) -> None:
    for name in ("x-ms-range", "Range"):
        answer = raw(page_blob, emulator_env, "PUT", "?comp=page", b"a" * 100, **{
            "x-ms-page-write": "update", name: "bytes=0-99"
        })  # fmt: skip
        assert (answer.status_code, answer.headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
        assert name in answer.text
    with pytest.raises(HttpResponseError) as exc:  # aligned but beyond the blob: 416, as before
        page_blob.upload_page(b"a" * P, offset=16 * P, length=P)
    assert (exc.value.status_code, exc.value.error_code) == (416, "InvalidPageRange")


def test_put_blob_if_none_match_star_on_an_existing_blob(page_blob: BlobClient) -> None:
    with pytest.raises(ResourceExistsError) as exc:
        page_blob.create_page_blob(16 * P, match_condition=MatchConditions.IfMissing)
    assert (exc.value.status_code, exc.value.error_code) == (409, "BlobAlreadyExists")
    assert page_blob.download_blob(offset=0, length=P).readall() == bytes(range(256)) * 2  # untouched


def test_put_page_from_url_answers_the_source_md5(page_blob: BlobClient, emulator_env) -> None:
    sas = generate_blob_sas(
        page_blob.account_name, "c", "disk.vhd", account_key=emulator_env["REPLICATOR_ACCOUNT_KEY"],
        permission="r", expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    source = bytes(range(256)) * 2
    md5 = hashlib.md5(source).digest()
    answer = page_blob.upload_pages_from_url(
        f"{page_blob.url}?{sas}", offset=12 * P, length=P, source_offset=0, source_content_md5=md5
    )
    assert answer["content_md5"] == md5
    assert page_blob.download_blob(offset=12 * P, length=P).readall() == source
    with pytest.raises(HttpResponseError) as exc:
        page_blob.upload_pages_from_url(
            f"{page_blob.url}?{sas}", offset=13 * P, length=P, source_offset=8 * P, source_content_md5=md5
        )
    assert exc.value.error_code == "Md5Mismatch"
