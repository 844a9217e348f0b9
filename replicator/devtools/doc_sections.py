"""Sections of the docs that the code writes: a table or a diagram between two marker comments,
rewritten by a script and checked by a test, so the doc cannot drift from what it describes.

scripts/knob_table.py (the knobs, from settings) and scripts/architecture_map.py (the module map,
from the package) are the two writers; each test compares `replaced(doc)` with the doc as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Section:
    """One generated section of `doc`: the lines between `begin` and `end`, written by `write()`."""

    doc: Path
    name: str
    begin: str
    end: str
    write: Callable[[], str]

    def replaced(self, text: str) -> str:
        """`text` with what stands between the markers replaced by what `write()` says now."""
        head, begin, rest = text.partition(self.begin)
        _, end, tail = rest.partition(self.end)
        if not begin or not end:
            markers = f"{self.begin.strip()} ... {self.end.strip()}"
            raise ValueError(f"{self.doc.name} lacks the {self.name} markers {markers}")
        return f"{head}{self.begin}{self.write()}{self.end}{tail}"

    def rewrite(self) -> int:
        """The script's whole job: rewrite the doc if it differs, say which, exit 0."""
        text = self.doc.read_text(encoding="utf-8")
        new = self.replaced(text)
        if new != text:
            self.doc.write_text(new, encoding="utf-8")
        print(f"{self.doc}: {self.name} {'rewritten' if new != text else 'already current'}")
        return 0
