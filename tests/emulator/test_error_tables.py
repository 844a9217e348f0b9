"""The error tables and their callers agree: a template field a caller forgets, or a keyword it
misspells, would otherwise surface only as a KeyError on the rare path that raises that error."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import replicator.emulator
from replicator.emulator.errors import arm as arm_errors
from replicator.emulator.errors import blob as blob_errors
from replicator.emulator.errors.coded import ErrorCode

EMULATOR = Path(replicator.emulator.__file__).parent
TABLES = {"arm_errors": arm_errors, "blob_errors": blob_errors}  # how the emulator's modules name each table


def template_fields(row: ErrorCode) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(row.template) if field}


def table_calls() -> list[tuple[str, int, str, ErrorCode, ast.Call]]:
    """Every call of a table row in the emulator's modules: `err.<row>(...)`, `errors.<row>(...)`, or
    `<row>(...)` inside the table's own module."""
    found = []
    for path in sorted(EMULATOR.rglob("*.py")):
        own = next((table for table in TABLES.values() if table.__file__ == str(path)), None)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func, table, name = node.func, own, ""
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                table, name = TABLES.get(func.value.id), func.attr
            elif isinstance(func, ast.Name):
                name = func.id
            row = getattr(table, name, None)
            if isinstance(row, ErrorCode):
                found.append((str(path.relative_to(EMULATOR)), node.lineno, name, row, node))
    return found


def test_every_row_is_raised_somewhere() -> None:
    rows = {
        (t.__name__, name) for t in TABLES.values() for name, v in vars(t).items() if isinstance(v, ErrorCode)
    }
    called = {(row.error.__module__, name) for _, _, name, row, _ in table_calls()}
    assert len(rows) > 50 and rows - called == set(), f"rows no code raises: {sorted(rows - called)}"


def problems(where: str, line: int, name: str, row: ErrorCode, call: ast.Call) -> list[str]:
    given = {keyword.arg for keyword in call.keywords}
    if call.args:  # a message of the caller's own replaces the template
        ok = len(call.args) == 1 and given <= {"target", "status"}
        return [] if ok else [f"{where}:{line} {name}: one message, then only target= or status="]
    needed = template_fields(row) - {"target"}
    out = []
    if given - {"target"} != needed:
        out.append(f"{where}:{line} {name} fills {sorted(given)}, its template needs {sorted(needed)}")
    if "target" in template_fields(row) and row.target is None and "target" not in given:
        out.append(f"{where}:{line} {name} needs target=")
    return out


def test_each_call_fills_its_template() -> None:
    found = [problem for call in table_calls() for problem in problems(*call)]
    assert found == []
