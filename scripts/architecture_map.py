"""Write the module map of docs/architecture.md from the package itself: one diagram of every folder
and module, with an arrow where one folder imports another, and the table of every module's role
(its docstring's first sentence).

Run `.venv/bin/python scripts/architecture_map.py` after adding, moving or renaming a module, or
changing what a folder imports; tests/unit/test_architecture_map.py fails until the doc holds what
this writes. The map sits between the two marker comments below.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import replicator
from replicator.devtools.doc_sections import Section
from replicator.devtools.imports import (
    folder_graph,
    folders,
    import_graph,
    module_names,
)

ROOT = Path(replicator.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BEGIN = "<!-- module-map: generated from the package by scripts/architecture_map.py; edit docstrings -->\n"
END = "<!-- /module-map -->\n"


def _role(path: Path) -> str:
    """The first sentence of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    return first.replace("|", "\\|")


def _reduced(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the arrows another path already implies (it is acyclic: the test holds it so)."""

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return seen

    return {a: {b for b in bs if not any(b in reach(c) for c in bs - {b})} for a, bs in graph.items()}


def _node(name: str) -> str:
    return name.removeprefix("replicator.").replace(".", "_")


def module_map() -> str:
    """The markdown between the markers: the diagram, then the table."""
    files = module_names(ROOT, "replicator")
    folder = folders(ROOT, "replicator")
    modules = sorted(m for m, p in files.items() if p.name != "__init__.py")
    shown = sorted({folder[m] for m in modules} - {"replicator"})
    lines = ["```mermaid", "flowchart TB"]
    nested = {f: [g for g in shown if g.rsplit(".", 1)[0] == f] for f in shown}
    inner = {g for gs in nested.values() for g in gs}

    def subgraph(f: str, indent: str) -> None:
        lines.append(f'{indent}subgraph {_node(f)}["{f.rsplit(".", 1)[1]}"]')
        leaves = [m.rsplit(".", 1)[1] for m in modules if folder[m] == f]
        if leaves:
            lines.append(f'{indent}  {_node(f)}_m["{" · ".join(leaves)}"]')
        for g in nested[f]:
            subgraph(g, indent + "  ")
        lines.append(f"{indent}end")

    for f in shown:
        if f not in inner:
            subgraph(f, "  ")
    graph = folder_graph(import_graph(ROOT, "replicator"), folder)
    edges = _reduced({f: {g for g in graph[f] if g in shown} for f in shown})
    lines += [f"  {_node(a)} --> {_node(b)}" for a in shown for b in sorted(edges[a])]
    lines += ["```", "", "| module | role |", "| --- | --- |"]
    lines += [f"| `{m.removeprefix('replicator.')}` | {_role(files[m])} |" for m in modules]
    return "\n".join(lines) + "\n"


SECTION = Section(DOC, "module map", BEGIN, END, module_map)


if __name__ == "__main__":
    sys.exit(SECTION.rewrite())
