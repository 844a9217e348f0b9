"""Write the knob table of docs/architecture.md from replicator.settings.knobs.KNOBS.

Run `.venv/bin/python scripts/knob_table.py` after changing a knob; tests/unit/test_knob_table.py fails
until the doc holds what this writes. The table sits between the two marker comments below.
"""

from __future__ import annotations

import sys
from pathlib import Path

from replicator.settings.knob_table import knob_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BEGIN = "<!-- knob-table: generated from settings.knobs.KNOBS by scripts/knob_table.py; edit KNOBS -->\n"
END = "<!-- /knob-table -->\n"


def with_table(doc: str) -> str:
    """`doc` with the text between the markers replaced by the current table."""
    head, begin, rest = doc.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{DOC.name} lacks the knob-table markers {BEGIN.strip()} ... {END.strip()}")
    return f"{head}{BEGIN}{knob_table()}{END}{tail}"


def main() -> int:
    doc = DOC.read_text(encoding="utf-8")
    new = with_table(doc)
    if new != doc:
        DOC.write_text(new, encoding="utf-8")
    print(f"{DOC}: knob table {'rewritten' if new != doc else 'already current'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
