"""The knob table of docs/architecture.md and the defaults `--help` shows, generated from `KNOBS`.

Why generated: a table written by hand drifts from the code it describes; this one is written into
the doc by scripts/knob_table.py, and tests/unit/test_knob_table.py fails when they differ.
"""

from __future__ import annotations

import dataclasses

from replicator.settings.config import UNITS, Config
from replicator.settings.knobs import KNOBS, Knob, parse_size


def default_text(knob: Knob) -> str | None:
    """'32MiB', '64' or 'required', as `--help` and the docs show it; None for switches and knobs unset
    by default."""
    default = next(f.default for f in dataclasses.fields(Config) if f.name == knob.name)
    if default is dataclasses.MISSING:
        return "required"
    if knob.parse is None or default is None:
        return None
    if knob.parse is parse_size:
        unit = next(u for u in ("TiB", "GiB", "MiB", "KiB", "B") if default % UNITS[u] == 0)
        return f"{default // UNITS[unit]}{unit}"
    return f"{default:g}" if isinstance(default, float) else f"{default}"


def knob_table() -> str:
    """The knob table of docs/architecture.md, in Markdown: flag, variable, default, why, memory."""
    rows = ["| flag | environment | default | why | memory |", "| --- | --- | --- | --- | --- |"]
    for knob in KNOBS:
        flag = f"`{knob.flag}`" if knob.flag else "(environment only)"
        default = default_text(knob) or ("off" if knob.parse is None else "none")
        rows.append(f"| {flag} | `{knob.env}` | {default} | {knob.reason} | {knob.memory} |")
    return "\n".join(rows) + "\n"
