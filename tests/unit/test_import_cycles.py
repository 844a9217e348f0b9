"""No import cycles anywhere in the `replicator` package: a module never imports (directly or
through others) one that imports it back.

Every import statement of a module counts, wherever it stands: at the top, under `if TYPE_CHECKING:`
or inside a function. An import moved into a function or behind TYPE_CHECKING still ties the two
modules together; it only hides the cycle from the interpreter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import replicator

COVERED = ["replicator"]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file for every module below `root` (the directory of `package`)."""
    names = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that `name` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return (out & modules) - {name}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    files = module_names(root, package)
    return {name: imported(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", COVERED)
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(Path(replicator.__file__).parent, "replicator")
    assert any(name.startswith(package + ".") for name in graph), f"no modules found for {package}"
    inside = [c for c in cycles(graph) if any(m == package or m.startswith(package + ".") for m in c)]
    assert inside == [], f"import cycles through {package}: {inside}"


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
