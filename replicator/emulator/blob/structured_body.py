"""Structured message bodies (`x-ms-structured-body: XSM/1.0; properties=crc64`): decode and check.

Azure's "Structured body format" page: a 13-byte header (uint8 version 1, uint64 message length,
uint16 flags, uint16 segment count), then per segment a uint16 number (from 1), a uint64 data
length, the data and, with the CRC64 flag, the segment data's CRC64; then, with the flag, the
whole data's CRC64. All little-endian. azure-storage-blob sends it for `validate_content="crc64"`
on streamed uploads, and checks that the answer echoes the header.
"""

from __future__ import annotations

import struct

from replicator.emulator.blob.crc64 import LENGTH, crc64
from replicator.emulator.errors import blob as blob_errors

HEADER = "x-ms-structured-body"
CONTENT_LENGTH = "x-ms-structured-content-length"
V1_CRC64 = "XSM/1.0; properties=crc64"
_FLAG_CRC64 = 1
_MESSAGE_HEADER = struct.Struct("<BQHH")
_SEGMENT_HEADER = struct.Struct("<HQ")


def decode(body: bytes, content_length: str | None) -> bytes:
    """The data a structured body carries, every CRC64 in it checked (Crc64Mismatch otherwise)."""
    if content_length is None:
        raise blob_errors.missing_required_header(f"{CONTENT_LENGTH} is required with {HEADER}.")
    try:
        version, length, flags, segments = _MESSAGE_HEADER.unpack_from(body)
    except struct.error:
        raise _malformed("it is shorter than its header") from None
    if version != 1 or flags & ~_FLAG_CRC64:
        raise blob_errors.invalid_header_value("Only structured message version 1 with crc64 is supported.")
    if length != len(body):
        raise _malformed("its message length does not match the body's length")
    with_crc = bool(flags & _FLAG_CRC64)
    pos, parts, whole = _MESSAGE_HEADER.size, [], 0
    for expected in range(1, segments + 1):
        try:
            number, size = _SEGMENT_HEADER.unpack_from(body, pos)
        except struct.error:
            raise _malformed("a segment header is cut short") from None
        pos += _SEGMENT_HEADER.size
        data = body[pos : pos + size]
        pos += size
        if number != expected or len(data) != size:
            raise _malformed(f"segment {expected} is missing or cut short")
        if with_crc:
            segment_crc = crc64(data)
            _check(body, pos, segment_crc)
            whole = crc64(data, whole)
            pos += LENGTH
        parts.append(data)
    if with_crc:
        _check(body, pos, whole)
        pos += LENGTH
    if pos != len(body):
        raise _malformed("bytes follow its trailer")
    data = b"".join(parts)
    if str(len(data)) != content_length.strip():
        raise blob_errors.invalid_header_value(
            f"{CONTENT_LENGTH} does not match the length of the data in the structured body."
        )
    return data


def _check(body: bytes, pos: int, computed: int) -> None:
    sent = body[pos : pos + LENGTH]
    if len(sent) != LENGTH:
        raise _malformed("a CRC64 is cut short")
    if int.from_bytes(sent, "little") != computed:
        raise blob_errors.crc64_mismatch()


def _malformed(why: str) -> blob_errors.BlobError:
    return blob_errors.invalid_input(f"The structured body is malformed: {why}.")
