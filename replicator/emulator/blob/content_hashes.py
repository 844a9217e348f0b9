"""Transactional content hashes of a write: Content-MD5, x-ms-content-crc64, structured bodies.

Azure checks the hash a client sends with a write (Put Page, Put Blob; the source hash of Put Page
From URL) and answers with the one it computed; a structured body (structured_body.py) carries
CRC64s inside the body instead, and the answer echoes its header, which azure-storage-blob checks.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

from replicator.emulator.blob import crc64, structured_body
from replicator.emulator.errors import blob as blob_errors


def md5(data: bytes) -> str:
    """The Content-MD5 header value of `data`."""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def checked_body(headers: Mapping[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
    """A write's data (its structured body decoded), every hash sent checked; and the answer's headers."""
    answer: dict[str, str] = {}
    structured = headers.get(structured_body.HEADER)
    if structured is not None:
        if structured != structured_body.V1_CRC64:
            raise blob_errors.invalid_header_value(
                f"{structured_body.HEADER} must be {structured_body.V1_CRC64}."
            )
        body = structured_body.decode(body, headers.get(structured_body.CONTENT_LENGTH))
        answer[structured_body.HEADER] = structured
    return body, {**answer, **check(body, headers.get("Content-MD5"), headers.get("x-ms-content-crc64"))}


def check(data: bytes, sent_md5: str | None, sent_crc64: str | None) -> dict[str, str]:
    """Check the MD5 or CRC64 a client sent for `data` (not both: 400); the answer header with it."""
    if sent_md5 is not None and sent_crc64 is not None:
        raise blob_errors.invalid_header_value("An MD5 and a CRC64 of the same content cannot both be sent.")
    if sent_md5 is not None:
        if md5(data) != sent_md5:
            raise blob_errors.md5_mismatch()
        return {"Content-MD5": sent_md5}
    if sent_crc64 is not None:
        if crc64.header_value(data) != sent_crc64:
            raise blob_errors.crc64_mismatch()
        return {"x-ms-content-crc64": sent_crc64}
    return {}
