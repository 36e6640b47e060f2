"""The package's import graph: no cycle among module-level imports, and nothing below the command line imports
it (the batch, the worker's parent side and the calculators take their paths from cnnlab.paths)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnnlab"


def _graph(lazy: bool) -> dict[str, set[str]]:
    """module → the cnnlab modules it imports (module level only, or also inside functions)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        nodes = ast.walk(tree) if lazy else tree.body
        found = set()
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnlab"):
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cnnlab")}
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_module_level_imports_have_no_cycle():
    assert _cycles(_graph(lazy=False)) == []


def test_nothing_imports_the_command_line_but_its_entry_points():
    importers = {m for m, deps in _graph(lazy=True).items() if "cnnlab.cli" in deps}
    assert importers == {"cnnlab.__main__", "cnnlab.worker"}  # the two ways a process starts the CLI
    assert not any("cnnlab.cli" in comp for comp in _cycles(_graph(lazy=True)))


def test_the_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
