"""docs/architecture.md's knob table is the one `knobs.KNOBS` generates: a knob changed in the code
and not in the doc (or the other way round) fails here, with the command that fixes it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from replicator.core.ranges import LIST_PREFETCH
from replicator.settings.knob_table import knob_table
from replicator.settings.knobs import KNOBS

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "knob_table.py"


def _script() -> ModuleType:
    """scripts/knob_table.py, the command that writes the table (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("knob_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_knob_table_is_generated_from_knobs() -> None:
    script = _script()
    doc = script.DOC.read_text(encoding="utf-8")
    assert script.with_table(doc) == doc, (
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
        _script().with_table("# Architecture\n")
