"""The package's import graph: no cycle at all, not even through the imports inside functions (which run later,
but still tie two modules together), and nothing below the command line imports it (the batch, the worker's
parent side and the calculators take their paths from cnnlab.paths)."""

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
        nodes = _executed(tree) if lazy else tree.body
        found = set()
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnlab"):
                # `from cnnlab.data import sst` depends on the submodule; `from cnnlab.data import DATASETS` on
                # the package
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(names)
                found |= subs if len(subs) == len(node.names) else {node.module} | subs
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cnnlab")}
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def _executed(tree):
    """Every node of `tree` but those under `if TYPE_CHECKING:` (annotations only: never imported at run time)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def function_level_imports() -> int:
    """The imports of cnnlab modules and others written inside functions (each defers a heavy or optional
    dependency, or a module above the caller)."""
    count = 0
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count += sum(
                    isinstance(n, (ast.Import, ast.ImportFrom))
                    for n in node.body
                    for n in ast.walk(n)
                    if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
    return count


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


def test_no_cycle_even_through_imports_inside_functions():
    """The schema primitives live in cnnlab.schema, below the datasets, builders and Keras checks that use them;
    the config loader above them asks them for its cross-checks; the loaders import cnnlab.data.arrays, not the
    package that registers them; Kim's tokenisers are cnnlab.data.text, shared with word2vec."""
    assert _cycles(_graph(lazy=True)) == []


def test_nothing_imports_the_command_line_but_its_entry_points():
    importers = {m for m, deps in _graph(lazy=True).items() if "cnnlab.cli" in deps}
    assert importers == {"cnnlab.__main__", "cnnlab.worker"}  # the two ways a process starts the CLI
    assert not any("cnnlab.cli" in comp for comp in _cycles(_graph(lazy=True)))


def test_the_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
