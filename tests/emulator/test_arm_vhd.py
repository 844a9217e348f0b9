"""The emulator's fixed-VHD footer: layout, geometry and checksum per the VHD specification."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime

import pytest

from replicator.emulator.arm import vhd

GIB = 1 << 30


@pytest.mark.parametrize(
    ("size", "chs"),
    [
        (10 * 1024 * 1024, (301, 4, 17)),  # small disk: 17 sectors per track, at least 4 heads
        (GIB, (2080, 16, 63)),  # the 1 GiB geometry Hyper-V writes
        (200 * GIB, (65535, 16, 255)),  # saturated above ~127 GiB
    ],
)
def test_geometry(size: int, chs: tuple[int, int, int]) -> None:
    assert vhd.geometry(size) == chs


def test_footer_fields_are_big_endian_at_spec_offsets() -> None:
    uid = uuid.uuid4().bytes
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    footer = vhd.build_footer(2 * GIB, original_size=GIB, created=created, unique_id=uid)
    assert len(footer) == 512
    assert footer[0:8] == b"conectix"
    assert struct.unpack(">I", footer[8:12])[0] == 2
    assert struct.unpack(">I", footer[12:16])[0] == 0x00010000
    assert footer[16:24] == b"\xff" * 8
    assert struct.unpack(">I", footer[24:28])[0] == int(
        (created - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds()
    )
    assert struct.unpack(">QQ", footer[40:56]) == (GIB, 2 * GIB)
    assert struct.unpack(">HBB", footer[56:60]) == vhd.geometry(2 * GIB)
    assert struct.unpack(">I", footer[60:64])[0] == 2
    assert footer[68:84] == uid
    assert footer[85:] == bytes(427)
    zeroed = footer[:64] + bytes(4) + footer[68:]
    assert struct.unpack(">I", footer[64:68])[0] == (~sum(zeroed)) & 0xFFFFFFFF


def test_parse_round_trip_and_rejections() -> None:
    uid = uuid.uuid4().bytes
    footer = vhd.build_footer(GIB, original_size=GIB, created=datetime.now(UTC), unique_id=uid)
    parsed = vhd.parse_footer(footer)
    assert (parsed.current_size, parsed.disk_type, parsed.unique_id) == (GIB, 2, uid)
    corrupt = bytearray(footer)
    corrupt[48] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        vhd.parse_footer(bytes(corrupt))
    with pytest.raises(ValueError, match="cookie"):
        vhd.parse_footer(b"x" * 512)
    with pytest.raises(ValueError):
        vhd.build_footer(GIB, original_size=GIB, created=datetime.now(UTC), unique_id=b"short")
