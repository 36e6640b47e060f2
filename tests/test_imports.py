"""The package's import graph: no cycle at all, not even through the imports inside functions (which run later,
but still tie two modules together), and nothing below the command line imports it (the batch, its Ray
engine and the calculators take their paths from cnnlab.paths)."""

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
    assert importers == {"cnnlab.__main__"}  # `python -m cnnlab`; reproduce's Ray actors run cnnlab.train directly
    assert not any("cnnlab.cli" in comp for comp in _cycles(_graph(lazy=True)))


def test_the_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


# The layers, lowest first (issue 14's rule, module by module: a package such as config/ holds its schema at the
# bottom and its experiment loader above the datasets and builders it cross-checks). A module may import its own
# layer and the layers below, never one above; a new module must be placed here.
LAYERS = [
    (
        "base",
        "errors paths digest direction registry quiet config.schema store.files store.meta store.results "
        "report.plots report.tables train.precision lectures.autodiff lectures.arith data.arrays data.text data.sst "
        "batch config lectures models report store train",  # the sub-packages' __init__: a docstring only
    ),
    (
        "datasets and model parts",
        "data data.* models.augment models.keras2 models.blocks models.text_models models.params",
    ),
    ("Keras names", "config.keras_specs"),
    ("layer stacks", "models.stack"),
    ("experiments", "config.experiment"),
    ("training", "train.*"),
    ("report and lectures", "report.* lectures.*"),
    ("batch", "batch.*"),
    ("entry points", "cli __main__"),
]


def _layer_of(module: str) -> int:
    """The index in LAYERS of a module (without its 'cnnlab.'): an exact name wins over a pattern."""
    import fnmatch

    exact = [i for i, (_, names) in enumerate(LAYERS) if module in names.split()]
    if exact:
        return max(exact)
    found = [i for i, (_, names) in enumerate(LAYERS) if any(fnmatch.fnmatch(module, n) for n in names.split())]
    return min(found) if found else -1


def test_every_import_points_down_the_layers():
    graph = _graph(lazy=True)
    modules = {m[len("cnnlab.") :] for m in graph if m != "cnnlab"}
    assert [m for m in sorted(modules) if _layer_of(m) < 0] == []  # every module has its place
    upward = sorted(
        f"{a[7:]} ({LAYERS[_layer_of(a[7:])][0]}) -> {b[7:]} ({LAYERS[_layer_of(b[7:])][0]})"
        for a, deps in graph.items()
        if a[7:] in modules
        for b in deps
        if b[7:] in modules and _layer_of(b[7:]) > _layer_of(a[7:])
    )
    assert upward == []


def test_the_layer_rule_catches_an_upward_import():
    assert _layer_of("train.runner") > _layer_of("models.stack") > _layer_of("config.keras_specs")
    assert _layer_of("cli") == len(LAYERS) - 1 and _layer_of("batch.ray_engine") == len(LAYERS) - 2
    assert _layer_of("data.sst") == 0 and _layer_of("data.kim") == 1 and _layer_of("no.such") == -1


def test_no_standard_library_import_hides_inside_a_function():
    """Issue 14's rule, for the part it is absolute: a function-level import must defer something (a heavy or
    optional package, or the config/training stack the command line loads only for the commands that need it);
    the standard library's modules are never that, so they sit at the top of their module."""
    import sys

    std = set(sys.stdlib_module_names) - {"__future__"}
    hidden = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import):
                        mods = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom) and node.level == 0:
                        mods = [node.module]
                    else:
                        continue
                    hidden += [f"{path.relative_to(PACKAGE)}:{node.lineno} {m}" for m in mods if m.split(".")[0] in std]
    assert hidden == []
