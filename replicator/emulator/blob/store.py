"""The emulator's own layered, sparse, copy-on-write page store (shares no code with replicator.core.ranges).

Model, kept deliberately simple so that it is obviously right:

- A *layer* holds *extents* `[start, end)`: either data (an offset into the append-only data file)
  or a cleared tombstone (`data_off IS NULL`). Extents of one layer never overlap: a write or clear
  trims and splits the older extents of the same layer first.
- A layer has a parent; a *version* of a blob is (top layer, size) and reads walk the chain top-down:
  the topmost extent covering a byte wins; no extent at all reads as zeros.
- A snapshot freezes the blob's top layer and puts a new empty layer on top, so a snapshot costs
  space proportional to what was written since the previous one.
- The data file is append-only and extents never change the bytes they point at, so a server-side
  copy (Put Page From URL) writes extents that point at the source's bytes instead of copying them.
- Valid ranges are the data pieces visible from a top layer; the diff between a version and an
  ancestor layer is every piece (data or tombstone) visible in the layers above the ancestor.

Everything is computed by one lazy sweep over per-layer SQL cursors in offset order, so a listing
window of an idle 8 TiB blob costs a few index seeks and a big write is one row, never per-page rows.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

PAGE = 512
# Reads are served in pieces of at most this many bytes so that a whole-blob GET streams.
READ_CHUNK = 4 * 1024 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (id INTEGER PRIMARY KEY, parent INTEGER, frozen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS extents (
    layer INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, data_off INTEGER,
    PRIMARY KEY (layer, start)
) WITHOUT ROWID;
"""

# The extents of layer ?1 that overlap `[?2, ?3)`, in offset order. Extents of a layer never overlap,
# so they are the one that starts at or before ?2 (if it reaches past it) and those starting inside:
# a seek on the primary key from that one's start. The plain `"end" > ?2 AND start < ?3` walks every
# extent before ?3 (or, by an index on `end`, after ?2): O(extents) per call, which made this sweep the
# emulator's biggest cost per Put Page From URL from a source of 21,000 extents (docs/benchmarks.md).
OVERLAPPING = """
SELECT start, "end", data_off FROM extents
WHERE layer = ?1 AND start < ?3 AND "end" > ?2
  AND start >= coalesce((SELECT max(start) FROM extents WHERE layer = ?1 AND start <= ?2), ?2)
ORDER BY start
"""


class Extent(NamedTuple):
    """One `extents` row: `[start, end)` of a layer, its bytes at `data_off` (None: cleared)."""

    start: int
    end: int
    data_off: int | None


def _extent(_cursor: sqlite3.Cursor, row: tuple[int, int, int | None]) -> Extent:
    """A cursor row factory: extents are read by field name, not by position."""
    return Extent(*row)


@dataclass(frozen=True)
class Piece:
    """A maximal run `[start, end)` seen from a top layer: `data_off` None and `cleared` False is a hole."""

    start: int
    end: int
    data_off: int | None
    cleared: bool

    @property
    def is_data(self) -> bool:
        return self.data_off is not None


class PageStore:
    """Layers and extents in SQLite, page bytes appended to one data file; both in the data dir."""

    def __init__(self, db: sqlite3.Connection, data_path: Path) -> None:
        self._db = db
        self._db.executescript(SCHEMA)
        self._data = open(data_path, "a+b")  # noqa: SIM115 - lives as long as the store
        self._parents: dict[int, int | None] = {}

    def close(self) -> None:
        self._data.close()

    # -- layers ---------------------------------------------------------------------------------
    def new_layer(self, parent: int | None) -> int:
        cur = self._db.execute("INSERT INTO layers (parent, frozen) VALUES (?, 0)", (parent,))
        assert cur.lastrowid is not None
        self._parents[cur.lastrowid] = parent
        return cur.lastrowid

    def freeze(self, layer: int) -> None:
        self._db.execute("UPDATE layers SET frozen = 1 WHERE id = ?", (layer,))

    def is_frozen(self, layer: int) -> bool:
        (frozen,) = self._db.execute("SELECT frozen FROM layers WHERE id = ?", (layer,)).fetchone() or (0,)
        return bool(frozen)

    def chain(self, top: int) -> list[int]:
        """Layers from `top` down to the root (layer parents never change, so they are cached)."""
        out: list[int] = []
        layer: int | None = top
        while layer is not None:
            out.append(layer)
            if layer not in self._parents:
                (parent,) = self._db.execute(
                    "SELECT parent FROM layers WHERE id = ?", (layer,)
                ).fetchone() or (None,)
                self._parents[layer] = parent
            layer = self._parents[layer]
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _carve(self, layer: int, start: int, end: int) -> None:
        """Remove `[start, end)` from the layer's extents, keeping the parts of them outside it."""
        rows = self._db.execute(OVERLAPPING, (layer, start, end)).fetchall()
        for s, e, off in rows:
            self._db.execute("DELETE FROM extents WHERE layer = ? AND start = ?", (layer, s))
            if s < start:
                self._insert(layer, s, start, off)
            if e > end:
                self._insert(layer, end, e, None if off is None else off + (end - s))

    def _insert(self, layer: int, start: int, end: int, data_off: int | None) -> None:
        self._db.execute(
            'INSERT INTO extents (layer, start, "end", data_off) VALUES (?, ?, ?, ?)',
            (layer, start, end, data_off),
        )

    def _append(self, data: bytes) -> int:
        self._data.seek(0, os.SEEK_END)
        data_off = self._data.tell()
        self._data.write(data)
        self._data.flush()
        return data_off

    def write(self, layer: int, offset: int, data: bytes) -> None:
        if not data:
            return
        data_off = self._append(data)
        self._carve(layer, offset, offset + len(data))
        self._insert(layer, offset, offset + len(data), data_off)

    def copy(self, source_top: int, source_offset: int, layer: int, offset: int, length: int) -> None:
        """Write the source version's `[source_offset, +length)` at `offset` of `layer`, by reference.

        Data pieces become extents pointing at the bytes the source already has (immutable: the data
        file is append-only), so a server-side copy costs rows, not bytes; holes and cleared pages of
        the source are written as zeros, because the copied range becomes valid in the target.
        """
        if length <= 0:
            return
        pieces = list(self.pieces(self.chain(source_top), source_offset, source_offset + length))
        self._carve(layer, offset, offset + length)
        shift = offset - source_offset
        for piece in pieces:
            data_off = piece.data_off
            if data_off is None:
                data_off = self._append(bytes(piece.end - piece.start))
            self._insert(layer, piece.start + shift, piece.end + shift, data_off)

    def clear(self, layer: int, offset: int, length: int) -> None:
        if length <= 0:
            return
        self._carve(layer, offset, offset + length)
        self._insert(layer, offset, offset + length, None)

    # -- reads ----------------------------------------------------------------------------------
    def pieces(self, layers: list[int], start: int, end: int) -> Iterator[Piece]:
        """Sweep `[start, end)` in offset order over `layers` (topmost first); topmost extent wins.

        Holes (no extent in any of the layers) are yielded too, so callers see a full tiling.
        Lazy: one SQL cursor per layer, advanced only as far as the sweep goes.
        """
        cursors = [self._db.cursor() for _ in layers]
        for cursor, layer in zip(cursors, layers, strict=True):
            cursor.row_factory = _extent
            cursor.execute(OVERLAPPING, (layer, start, end))
        heads: list[Extent | None] = [c.fetchone() for c in cursors]
        pos = start
        while pos < end:
            piece_end = end
            winner: Extent | None = None
            for i, cur in enumerate(cursors):
                head = heads[i]
                while head is not None and head.end <= pos:
                    head = heads[i] = cur.fetchone()
                if head is None:
                    continue
                if head.start <= pos:
                    winner = head
                    piece_end = min(piece_end, head.end)
                    break  # lower layers are hidden here; only higher layers' next starts cut the piece
                piece_end = min(piece_end, head.start)
            if winner is None:
                yield Piece(pos, piece_end, None, False)
            elif winner.data_off is None:
                yield Piece(pos, piece_end, None, True)
            else:
                yield Piece(pos, piece_end, winner.data_off + (pos - winner.start), False)
            pos = piece_end

    def read(self, top: int, offset: int, length: int) -> bytes:
        """Bytes `[offset, offset + length)` of the version whose top layer is `top` (holes are zeros)."""
        out = bytearray()
        for piece in self.pieces(self.chain(top), offset, offset + length):
            n = piece.end - piece.start
            if piece.data_off is None:
                out += bytes(n)
            else:
                self._data.seek(piece.data_off)
                out += self._data.read(n)
        return bytes(out)

    def valid_ranges(self, top: int, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Maximal data runs visible from `top` within `[start, end)`."""
        pieces = self.pieces(self.chain(top), start, end)
        for run_start, run_end, _ in _merge((p.start, p.end, True) for p in pieces if p.is_data):
            yield run_start, run_end

    def diff(self, top: int, base: int, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
        """Pieces written (True) or cleared (False) in the layers of `top`'s chain above `base`.

        The caller checks that `base` is in the chain (see `is_ancestor`).
        """
        chain = self.chain(top)
        layers = chain[: chain.index(base)]
        yield from _merge(
            (p.start, p.end, p.is_data) for p in self.pieces(layers, start, end) if p.is_data or p.cleared
        )

    def is_ancestor(self, base: int, top: int) -> bool:
        return base in self.chain(top)


def _merge(runs: Iterator[tuple[int, int, bool]]) -> Iterator[tuple[int, int, bool]]:
    """Join adjacent runs of the same kind (pieces are split wherever a layer's extent ends)."""
    current: tuple[int, int, bool] | None = None
    for start, end, kind in runs:
        if current is not None and current[1] == start and current[2] == kind:
            current = (current[0], end, kind)
            continue
        if current is not None:
            yield current
        current = (start, end, kind)
    if current is not None:
        yield current
