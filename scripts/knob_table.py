"""Write the knob table of docs/architecture.md from replicator.settings.knobs.KNOBS.

Run `.venv/bin/python scripts/knob_table.py` after changing a knob; tests/unit/test_knob_table.py fails
until the doc holds what this writes. The table sits between the two marker comments below.
"""

from __future__ import annotations

import sys
from pathlib import Path

from replicator.devtools.doc_sections import Section
from replicator.settings.knob_table import knob_table

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BEGIN = "<!-- knob-table: generated from settings.knobs.KNOBS by scripts/knob_table.py; edit KNOBS -->\n"
END = "<!-- /knob-table -->\n"


SECTION = Section(DOC, "knob-table", BEGIN, END, knob_table)


if __name__ == "__main__":
    sys.exit(SECTION.rewrite())
