"""The replicator's own check of a fixed-VHD footer (Microsoft Virtual Hard Disk Image Format, 2006).

Why: Azure exports a 512-byte-sector managed disk as a fixed VHD, the disk's bytes followed by a
512-byte footer, and imports a disk only from such a blob. A restore point whose footer is damaged
would fail (or worse, import with a wrong size) only after a disk was requested; checking it first
turns that into one clear refusal. The emulator writes footers with its own code
(replicator/emulator/arm/vhd.py); this module shares nothing with it, so each checks the other.

Only the fields a restore depends on are read: the cookie, the checksum, the current size (the
data part must be exactly the blob minus the footer) and the disk type (fixed). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

FOOTER_SIZE = 512
"""A VHD footer is one 512-byte sector at the very end of the blob."""
COOKIE = b"conectix"
"""Bytes 0-7 of every VHD footer (the creator's original company name)."""
DISK_TYPE_FIXED = 2
"""Disk Type field value of a fixed disk; Azure imports only fixed VHDs."""

# Offsets of the big-endian fields used here (VHD specification, "Hard Disk Footer Format").
_CURRENT_SIZE = slice(48, 56)
_DISK_TYPE = slice(60, 64)
_CHECKSUM = slice(64, 68)


class FooterError(ValueError):
    """The footer is not a valid fixed-VHD footer for the blob it ends; the message says why."""


@dataclass(frozen=True)
class Footer:
    current_size: int
    disk_type: int


def checksum(footer: bytes) -> int:
    """One's complement of the sum of all footer bytes, the checksum field counted as zero."""
    total = sum(footer) - sum(footer[_CHECKSUM])
    return ~total & 0xFFFFFFFF


def check_footer(footer: bytes, blob_size: int) -> Footer:
    """The footer of a fixed VHD of `blob_size` bytes (footer included); FooterError if damaged."""
    if len(footer) != FOOTER_SIZE:
        raise FooterError(f"the footer is {len(footer)} bytes, not {FOOTER_SIZE}")
    if footer[:8] != COOKIE:
        raise FooterError("the footer's cookie is not 'conectix'")
    stored = int.from_bytes(footer[_CHECKSUM], "big")
    if stored != checksum(footer):
        raise FooterError(
            f"the footer's checksum {stored:#010x} does not match its bytes ({checksum(footer):#010x})"
        )
    parsed = Footer(int.from_bytes(footer[_CURRENT_SIZE], "big"), int.from_bytes(footer[_DISK_TYPE], "big"))
    if parsed.disk_type != DISK_TYPE_FIXED:
        raise FooterError(
            f"the footer names disk type {parsed.disk_type}, not a fixed disk ({DISK_TYPE_FIXED})"
        )
    if parsed.current_size != blob_size - FOOTER_SIZE:
        raise FooterError(
            f"the footer says the disk is {parsed.current_size} bytes, but the blob holds "
            f"{blob_size - FOOTER_SIZE} bytes before the footer"
        )
    return parsed
