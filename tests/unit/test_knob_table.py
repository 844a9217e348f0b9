"""docs/architecture.md's knob table is the one `knobs.KNOBS` generates: a knob changed in the code
and not in the doc (or the other way round) fails here, with the command that fixes it."""

from __future__ import annotations

from types import ModuleType

import pytest

from replicator.core.ranges import LIST_PREFETCH
from replicator.settings.knob_table import knob_table
from replicator.settings.knobs import KNOBS
from tests.helpers.by_path import load


def _script() -> ModuleType:
    return load("scripts/knob_table.py")


def test_the_docs_knob_table_is_generated_from_knobs() -> None:
    section = _script().SECTION
    doc = section.doc.read_text(encoding="utf-8")
    assert section.replaced(doc) == doc, (
        "docs/architecture.md's knob table differs from replicator.settings.knobs.KNOBS; "
        "run `.venv/bin/python scripts/knob_table.py` to rewrite it"
    )


def test_the_table_has_a_row_per_knob_with_its_default() -> None:
    rows = knob_table().splitlines()[2:]
    assert len(rows) == len(KNOBS)
    for start in (
        "| `--source` | `REPLICATOR_SOURCE` | required |",
        "| `--max-in-flight` | `REPLICATOR_MAX_IN_FLIGHT` | 32MiB |",
        "| `--checkpoint-seconds` | `REPLICATOR_CHECKPOINT_SECONDS` | 5 |",
        "| (environment only) | `REPLICATOR_ACCESS_TOKEN` | none |",
        "| `--plan` | `REPLICATOR_PLAN` | off |",
    ):
        assert sum(r.startswith(start) for r in rows) == 1, start


def test_the_list_window_text_states_the_listings_in_flight() -> None:
    """The knob's text is derived from the constant the lister uses, so they cannot drift apart."""
    [row] = [r for r in knob_table().splitlines() if r.startswith("| `--list-window`")]
    assert f"{LIST_PREFETCH} windows are listed at once" in row
    assert f"up to {LIST_PREFETCH} answers held" in row


def test_a_doc_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="knob-table markers"):
        _script().SECTION.replaced("# Architecture\n")
