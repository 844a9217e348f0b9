"""The import graph of a package, read from its source: who imports whom, and the cycles in it.

Every import statement of a module counts, wherever it stands: at the top, under `if TYPE_CHECKING:`
or inside a function. An import moved into a function or behind TYPE_CHECKING still ties the two
modules together; it only hides the cycle from the interpreter. tests/unit/test_import_cycles.py holds
the package to no cycles, between modules and between its folders; scripts/architecture_map.py draws
the folders' graph in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path


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


def folders(root: Path, package: str) -> dict[str, str]:
    """Module -> the folder (package) it lives in, for every module below `root`; a package is its own
    folder. `replicator.engine.pipeline` -> `replicator.engine`, `replicator.emulator.routes.blob` ->
    `replicator.emulator.blob`."""
    return {
        name: name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for name, path in module_names(root, package).items()
    }


def folder_graph(graph: dict[str, set[str]], folder: Mapping[str, str]) -> dict[str, set[str]]:
    """The module graph with each module replaced by its folder; imports within a folder left out.

    A folder's `__init__` imports nothing here, so a parent folder and its subfolders are separate
    nodes: `emulator` (its app, server, context) may import `emulator.blob`, never the other way round
    as well."""
    out: dict[str, set[str]] = {folder[m]: set() for m in graph}
    for module, imports in graph.items():
        out[folder[module]].update(folder[i] for i in imports if folder[i] != folder[module])
    return out
