"""No import cycles anywhere in the `replicator` package: a module never imports (directly or
through others) one that imports it back, and neither does a folder: the folders are layers
(docs/architecture.md, "Layout").

Every import statement of a module counts, wherever it stands: at the top, under `if TYPE_CHECKING:`
or inside a function. An import moved into a function or behind TYPE_CHECKING still ties the two
modules together; it only hides the cycle from the interpreter.
"""

from __future__ import annotations

from pathlib import Path

import replicator
from replicator.devtools.imports import (
    cycles,
    folder_graph,
    folders,
    import_graph,
)

ROOT = Path(replicator.__file__).parent
GRAPH = import_graph(ROOT, "replicator")


def test_no_import_cycles_between_modules() -> None:
    assert len(GRAPH) > 90 and "replicator.engine.pipeline" in GRAPH
    assert cycles(GRAPH) == []


def test_no_import_cycles_between_folders() -> None:
    """The folders are layers: no folder imports one that imports it back, even through other modules."""
    graph = folder_graph(GRAPH, folders(ROOT, "replicator"))
    assert {"replicator.core", "replicator.emulator", "replicator.emulator.blob"} <= set(graph)
    assert cycles(graph) == []


def test_a_cycle_between_folders_is_found(tmp_path: Path) -> None:
    """Two folders whose modules import each other's, with no cycle between the modules themselves."""
    for folder, files in {
        "low": {"a.py": "from pkg.high import c\n", "b.py": ""},
        "high": {"c.py": "", "d.py": "from pkg.low import b\n"},
    }.items():
        (tmp_path / "pkg" / folder).mkdir(parents=True)
        for name, text in {"__init__.py": "", **files}.items():
            (tmp_path / "pkg" / folder / name).write_text(text)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    graph = import_graph(tmp_path / "pkg", "pkg")
    assert cycles(graph) == []
    assert cycles(folder_graph(graph, folders(tmp_path / "pkg", "pkg"))) == [["pkg.high", "pkg.low"]]


def test_cycles_hidden_in_functions_and_type_checking_are_found(tmp_path: Path) -> None:
    """The checker itself: the three ways a cycle hides, and a clean chain that is none."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        "c.py": "def f():\n    from . import d\n",
        "d.py": "import pkg.c\n",
        "e.py": "from pkg.f import thing\n",
        "f.py": "import os\n",
    }
    for file, text in files.items():
        (pkg / file).write_text(text)
    assert cycles(import_graph(pkg, "pkg")) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
