"""The emulator's own fixed-VHD footer writer and reader (Microsoft VHD specification, 2006).

Azure exports a 512-byte-sector managed disk as a fixed VHD: the disk's bytes followed by a 512-byte
footer. The emulator writes that footer itself so that a replica can be checked for it; it shares
no code with the replicator. All fields are big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

FOOTER_SIZE = 512
COOKIE = b"conectix"
FEATURES_RESERVED = 0x00000002  # "always set" bit of the Features field
FORMAT_VERSION = 0x00010000
FIXED_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF  # fixed disks have no dynamic header
DISK_TYPE_FIXED = 2
CREATOR_APP = b"rpem"  # "replicator emulator"; Azure writes its own tag here, readers ignore it
CREATOR_VERSION = 0x00010000
CREATOR_HOST_OS = b"Wi2k"
VHD_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # the Timestamp field counts seconds from here
MAX_CHS_SECTORS = 65535 * 16 * 255  # geometry saturates here (about 127 GiB)

# cookie, features, version, data offset, timestamp, creator app, creator version, creator host OS,
# original size, current size, cylinders, heads, sectors/track, disk type, checksum, unique id,
# saved state; the remaining 427 bytes are zero.
_LAYOUT = struct.Struct(">8sIIQI4sI4sQQHBBII16sB")
_CHECKSUM_OFFSET = 64


@dataclass(frozen=True)
class VhdFooter:
    current_size: int
    original_size: int
    timestamp: int
    unique_id: bytes
    geometry: tuple[int, int, int]
    disk_type: int
    checksum: int


def geometry(size: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) as the VHD specification's appendix computes them."""
    total = min(size // 512, MAX_CHS_SECTORS)
    if total >= 65535 * 16 * 63:
        sectors, heads = 255, 16
        cyl_times_heads = total // sectors
    else:
        sectors = 17
        cyl_times_heads = total // sectors
        heads = max((cyl_times_heads + 1023) // 1024, 4)
        if cyl_times_heads >= heads * 1024 or heads > 16:
            sectors, heads = 31, 16
            cyl_times_heads = total // sectors
        if cyl_times_heads >= heads * 1024:
            sectors, heads = 63, 16
            cyl_times_heads = total // sectors
    return cyl_times_heads // heads, heads, sectors


def timestamp(when: datetime) -> int:
    return max(0, int((when - VHD_EPOCH).total_seconds())) & 0xFFFFFFFF


def _checksum(footer: bytes) -> int:
    """One's complement of the byte sum, the checksum field itself counted as zero."""
    total = sum(footer[:_CHECKSUM_OFFSET]) + sum(footer[_CHECKSUM_OFFSET + 4 :])
    return ~total & 0xFFFFFFFF


def build_footer(current_size: int, *, original_size: int, created: datetime, unique_id: bytes) -> bytes:
    """The 512-byte footer of a fixed VHD whose data part is `current_size` bytes."""
    if len(unique_id) != 16:
        raise ValueError("a VHD unique id is 16 bytes")
    cylinders, heads, sectors = geometry(current_size)
    fields = _LAYOUT.pack(
        COOKIE,
        FEATURES_RESERVED,
        FORMAT_VERSION,
        FIXED_DATA_OFFSET,
        timestamp(created),
        CREATOR_APP,
        CREATOR_VERSION,
        CREATOR_HOST_OS,
        original_size,
        current_size,
        cylinders,
        heads,
        sectors,
        DISK_TYPE_FIXED,
        0,
        unique_id,
        0,
    )
    footer = bytearray(fields.ljust(FOOTER_SIZE, b"\0"))
    struct.pack_into(">I", footer, _CHECKSUM_OFFSET, _checksum(footer))
    return bytes(footer)


def parse_footer(footer: bytes) -> VhdFooter:
    """Reads a footer back, refusing a wrong size, cookie or checksum (used by tests and checks)."""
    if len(footer) != FOOTER_SIZE:
        raise ValueError(f"a VHD footer is {FOOTER_SIZE} bytes, not {len(footer)}")
    (cookie, _, _, _, stamp, _, _, _, original, current, cyl, heads, sectors, disk_type, checksum, uid, _) = (
        _LAYOUT.unpack_from(footer)
    )
    if cookie != COOKIE:
        raise ValueError("not a VHD footer: cookie is not 'conectix'")
    if checksum != _checksum(footer):
        raise ValueError("VHD footer checksum mismatch")
    return VhdFooter(
        current_size=current,
        original_size=original,
        timestamp=stamp,
        unique_id=uid,
        geometry=(cyl, heads, sectors),
        disk_type=disk_type,
        checksum=checksum,
    )
