"""docs/architecture.md's module map is the one the package generates: a module added, moved or
renamed, or a new import between folders, without the doc following fails here, with the command that
fixes it."""

from __future__ import annotations

from types import ModuleType

import pytest

from replicator.devtools.imports import module_names
from tests.helpers.by_path import load


def _script() -> ModuleType:
    return load("scripts/architecture_map.py")


def test_the_docs_module_map_is_generated_from_the_package() -> None:
    section = _script().SECTION
    doc = section.doc.read_text(encoding="utf-8")
    assert section.replaced(doc) == doc, (
        "docs/architecture.md's module map differs from the package; "
        "run `.venv/bin/python scripts/architecture_map.py` to rewrite it"
    )


def test_every_module_is_in_the_diagram_and_the_table() -> None:
    script = _script()
    text = script.module_map()
    diagram, table = text.split("```\n", 1)[0], text.split("```\n", 1)[1]
    modules = [m for m, p in module_names(script.ROOT, "replicator").items() if p.name != "__init__.py"]
    assert len(modules) > 75
    for module in modules:
        folder, leaf = module.removeprefix("replicator.").rsplit(".", 1)
        assert f"| `{folder}.{leaf}` |" in table, module
        node = f"{folder.replace('.', '_')}_m["
        box = next(line for line in diagram.splitlines() if line.strip().startswith(node))
        assert leaf in box.split('"')[1].split(" · "), module


def test_a_doc_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="module map markers"):
        _script().SECTION.replaced("# Architecture\n")
