"""Keras classes named in configs: look-up, argument checks and construction.

Reference: the Keras 3 API (keras.layers, .optimizers, .losses, .metrics, .callbacks).
Trap: every Keras layer takes **kwargs, so a misspelt argument would only fail deep inside Keras; here only the
explicit parameters of `__init__` (plus a layer's name/dtype/trainable) are accepted, each checked by name.
"""

from __future__ import annotations

import collections.abc
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import pathlib
import re
import typing
from collections.abc import Callable
from typing import Any

from cnnlab.config.schema import ClassSpec, Ctx, convert, describe, join
from cnnlab.errors import one_line, suggest
from cnnlab.store import meta
from cnnlab.store.files import atomic_write, cache_dir

# Classes a config may not name, with the reason the error gives.
REFUSED: dict[str, dict[str, str]] = {
    "layer": {
        "Lambda": "it runs arbitrary Python that a YAML file cannot carry; write a builder in cnnlab/models/stack.py",
        "Layer": "it is the abstract base class",
        "InputLayer": "set model.input_shape instead",
        "Input": "set model.input_shape instead",
        "TFSMLayer": "it wraps a TensorFlow SavedModel; write a builder in cnnlab/models/stack.py",
    },
    "callback": {
        "Callback": "it is the abstract base class",
        "CallbackList": "list callbacks one by one",
        "LambdaCallback": "it runs arbitrary Python that a YAML file cannot carry",
        "History": "the runner records the history itself (history.csv)",
        "ProgbarLogger": "the runner shows progress itself",
        "CSVLogger": "the runner writes history.csv itself",
        "BackupAndRestore": "the runner manages its own backups",
        "RemoteMonitor": "it sends data over the network",
    },
    "optimizer": {"Optimizer": "it is the abstract base class", "LossScaleOptimizer": "use mixed precision instead"},
    "loss": {"Loss": "it is the abstract base class"},
    "metric": {"Metric": "it is the abstract base class"},
}
# Classes that need packages beyond cnnlab's own dependencies: (import names, how to install them).
REQUIRES: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "callback": {"TensorBoard": (("tensorboard", "tensorflow"), "pip install 'cnnlab[tensorboard]'")},
}
# Identifiers `model.compile` resolves itself (they depend on the loss and the label shape).
COMPILE_METRIC_STRINGS = ("accuracy", "acc", "crossentropy", "ce")
_BASE_ARGS = {"layer": {"name", "dtype", "trainable"}}


def _namespace(kind: str) -> tuple[Any, type]:
    import keras

    return {
        "layer": (keras.layers, keras.layers.Layer),
        "optimizer": (keras.optimizers, keras.optimizers.Optimizer),
        "loss": (keras.losses, keras.losses.Loss),
        "metric": (keras.metrics, keras.metrics.Metric),
        "callback": (keras.callbacks, keras.callbacks.Callback),
    }[kind]


def _own(kind: str) -> dict[str, type]:
    """cnnlab's own classes of `kind` a config may name beside Keras's (layers; the Keras 2.0.8 optimizer and
    metric of cnnlab.keras2, the row-lazy Adadelta of cnnlab.row_lazy)."""
    if kind == "layer":
        from cnnlab.models.blocks import LAYERS  # Keras (the registered layers and blocks import it)

        return LAYERS
    if kind in ("optimizer", "metric"):
        from cnnlab.models import keras2, row_lazy  # noqa: F401  Keras (their optimizers subclass Keras's)

        return keras2.OPTIMIZERS if kind == "optimizer" else keras2.METRICS
    return {}


def lookup(kind: str, name: str) -> type | None:
    """The Keras class called `name` in the namespace of `kind` (for layers also cnnlab's own), or None."""
    own = _own(kind)
    if name in own:
        return own[name]
    module, base = _namespace(kind)
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, base) else None


def class_names(kind: str) -> list[str]:
    module, base = _namespace(kind)
    names = [
        n
        for n in dir(module)
        if not n.startswith("_")
        and n not in REFUSED.get(kind, {})
        and isinstance(getattr(module, n), type)
        and issubclass(getattr(module, n), base)
    ]
    names += list(_own(kind))
    if kind == "layer":
        from cnnlab.models.blocks import BLOCKS  # Keras (the registered layers and blocks import it)

        names += list(BLOCKS)
    return sorted(names)


def accepted_args(kind: str, cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    named = [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named + sorted(_BASE_ARGS.get(kind, set()) - set(named))


# ---------------------------------------------------------------------------------------------- the signature index
# What a config check needs to know of Keras and of cnnlab's own classes and builders, read from their
# signatures once per Keras version, backend and cnnlab source, and kept in .cache/keras_signatures/: a check
# then imports neither Keras nor TensorFlow (0.3 s instead of 4-8 s). Values are Keras's to judge when the run
# builds the objects (`make`), which reports them as the same one-line config errors.
INDEX_VERSION = 3
_OWN_SOURCES = (
    "config/keras_specs.py",
    "models/blocks.py",
    "models/keras2.py",
    "models/row_lazy.py",
    "models/augment.py",
)
_INDEX: dict | None = None


def _hint_text(tp) -> str:
    """An annotation as text that `_hint` evaluates back: 'int', 'tuple[int, ...]', "Literal['a', 'b']"."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return repr(tp).replace("typing.", "").replace("collections.abc.", "").replace("pathlib.", "")


def _hint(text: str):

    names = {
        "int": int,
        "float": float,
        "str": str,
        "bool": bool,
        "tuple": tuple,
        "list": list,
        "dict": dict,
        "None": None,
        "NoneType": type(None),
        "Literal": typing.Literal,
        "Any": Any,
        "Optional": typing.Optional,
        "Union": typing.Union,
        "Mapping": collections.abc.Mapping,
        "Path": pathlib.Path,
    }
    return eval(text, {"__builtins__": {}}, names)  # noqa: S307 - text written by _hint_text from cnnlab's own code


def _builder_entry(builder: Callable) -> dict:
    sig = inspect.signature(builder)
    hints = typing.get_type_hints(builder)
    # input_shape comes from model.input_shape and data from the dataset (vocabulary, vectors): not parameters
    params = {n: p for n, p in sig.parameters.items() if n not in ("input_shape", "data") and not n.startswith("_")}
    return {
        "name": builder.__name__,
        "params": list(params),
        "required": [n for n, p in params.items() if p.default is inspect.Parameter.empty],
        "hints": {n: _hint_text(hints[n]) for n in params if n in hints},
    }


def _class_entry(kind: str, cls: type) -> dict:
    params = inspect.signature(cls.__init__).parameters
    entry = {
        "args": accepted_args(kind, cls),
        "required": [
            n
            for n, p in params.items()
            if n != "self"
            and p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ],
    }
    default = params.get("name")
    if kind == "metric" and default is not None and isinstance(default.default, str):
        entry["logged"] = default.default  # the name Keras logs it under when the config gives none
    return entry


def build_index() -> dict:
    """Read every config-nameable class's and builder's signature from Keras and cnnlab (imports Keras)."""
    import keras

    from cnnlab.models.blocks import BLOCKS  # Keras (the registered layers and blocks import it)

    out = {
        "version": INDEX_VERSION,
        "keras": keras.__version__,
        "classes": {},
        "identifiers": {},
        "blocks": {n: _builder_entry(b) for n, b in BLOCKS.items()},
    }
    for kind in REFUSED:
        module, base = _namespace(kind)
        classes = {n: getattr(module, n) for n in dir(module) if not n.startswith("_")}
        classes = {n: c for n, c in classes.items() if isinstance(c, type) and issubclass(c, base)}
        classes |= _own(kind)
        out["classes"][kind] = {n: _class_entry(kind, c) for n, c in sorted(classes.items())}
        ids = []
        if kind in ("optimizer", "loss", "metric"):
            try:  # Keras's own table of names get() resolves ('mse', 'rmsprop'); a private module, so optional
                table = list(importlib.import_module(f"keras.src.{_MODULES[kind]}").ALL_OBJECTS_DICT)
            except (ImportError, AttributeError):
                table = []
            snake = [re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower() for n in classes]
            names = {*dir(module), *table, *(c.lower() for c in classes), *snake} - set(classes)
            ids = _resolvable(module, names)
        out["identifiers"][kind] = ids
    for family in NAMED_ARGUMENTS.values():  # the strings a layer argument names: 'relu', 'he_normal', 'l2'
        module = getattr(keras, family)
        out["identifiers"][family] = _resolvable(module, dir(module))
    return out


def _resolvable(module, names) -> list[str]:
    """The public `names` that `module.get` resolves (Keras's string identifiers), sorted."""
    found = []
    for n in sorted(names):
        try:
            if not n.startswith("_") and module.get(n) is not None:
                found.append(n)
        except Exception:  # noqa: BLE001 - get() of a helper's name fails in many ways: not an identifier
            pass
    return found


# Layer arguments whose string value Keras resolves by name, and the namespace that resolves it.
NAMED_ARGUMENTS = {
    "activation": "activations",
    "initializer": "initializers",
    "regularizer": "regularizers",
    "constraint": "constraints",
}


def _named_family(arg: str) -> str | None:
    """'activations' for activation / recurrent_activation, 'initializers' for kernel_initializer, ..."""
    for suffix, family in NAMED_ARGUMENTS.items():
        if arg == suffix or arg.endswith(f"_{suffix}"):
            return family
    return None


def _index_file():
    own = "".join(meta._digest(meta.PACKAGE / rel) or "-" for rel in _OWN_SOURCES)

    key = hashlib.sha256(f"{INDEX_VERSION}|{own}".encode()).hexdigest()[:12]
    return cache_dir("keras_signatures", f"keras-{meta._version('keras')}-{meta.configured_backend()}-{key}.json")


def index() -> dict:
    """The signature index: from .cache/keras_signatures/ when it is there and whole, else built and stored."""
    global _INDEX
    if _INDEX is not None:
        return _INDEX

    path = _index_file()
    try:
        found = json.loads(path.read_text())
        if (
            isinstance(found, dict)
            and found.get("version") == INDEX_VERSION
            and {"classes", "identifiers", "blocks"} <= set(found)
        ):
            _INDEX = found
            return found
    except (OSError, ValueError):
        pass
    _INDEX = build_index()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(_INDEX, sort_keys=True))
    except OSError:
        pass  # a cache: the next check reads the signatures again
    return _INDEX


def check_builder(kind: str, name: str, params: typing.Mapping[str, Any], ctx: Ctx, path: str) -> None:
    """check_builder_params by the index (a stack block's, whose module imports Keras)."""
    entry = index()[kind][name]
    _check_params(entry, {k: _hint(t) for k, t in entry["hints"].items()}, params, ctx, path)


def check(kind: str, spec: ClassSpec, ctx: Ctx, path: str) -> None:
    """Raise a ConfigError at `path` unless `spec` names a class (or string identifier) of `kind` that a config
    may use, with argument names its signature accepts and every required one given: by the signature index,
    building nothing and importing no Keras. Trap: the values are checked when the run builds the object."""

    _refuse(kind, spec, ctx, path)
    idx = index()
    if kind == "layer" and spec.name in idx["blocks"]:
        check_builder("blocks", spec.name, spec.kwargs, ctx, join(path, spec.name))
        return
    entry = idx["classes"][kind].get(spec.name)
    if entry is None:
        if not spec.kwargs and (
            spec.name in idx["identifiers"].get(kind, ()) or (kind == "metric" and spec.name in COMPILE_METRIC_STRINGS)
        ):
            return
        names = sorted(
            [*idx["classes"][kind], *(idx["blocks"] if kind == "layer" else ()), *idx["identifiers"].get(kind, ())]
        )
        names = [n for n in names if n not in REFUSED.get(kind, {})]
        ctx.error(
            path,
            f"unknown {kind} '{spec.name}'{suggest(spec.name, names)}; "
            f"expected a class of keras.{_MODULES[kind]}"
            + (" or one of its string identifiers" if kind not in ("layer", "callback") else ""),
        )
    for arg in spec.kwargs:
        if arg not in entry["args"]:
            ctx.error(
                join(path, f"{spec.name}.{arg}"),
                f"unknown argument '{arg}' of {spec.name}"
                f"{suggest(arg, entry['args'])}; allowed: {', '.join(entry['args'])}",
            )
    for arg, value in spec.kwargs.items():
        family = _named_family(arg)
        if family and isinstance(value, str) and value not in idx["identifiers"].get(family, [value]):
            known = idx["identifiers"][family]
            ctx.error(
                join(path, f"{spec.name}.{arg}"),
                f"unknown {family[:-1]} '{value}'{suggest(value, known)}; "
                f"known: {', '.join(n for n in known if n.islower())}",
            )
    if kind == "optimizer" and "learning_rate" in spec.kwargs:
        _check_learning_rate(spec.kwargs["learning_rate"], ctx, join(path, f"{spec.name}.learning_rate"))
    missing = [a for a in entry["required"] if a not in spec.kwargs]
    if missing:
        ctx.error(
            join(path, spec.name),
            f"missing required argument{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(a) for a in missing)} of {spec.name}",
        )


def _check_learning_rate(rate: Any, ctx: Ctx, path: str) -> None:
    """A positive, finite number (an integer is taken as a float: `make` converts it). Trap: Keras 3 refuses an
    integer rate ('should be float') only when the run builds the optimizer, and takes a negative or NaN one."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
        ctx.error(path, f"expected a positive number, received {describe(rate)}")
    try:
        finite = math.isfinite(rate)
    except OverflowError:  # an integer beyond a float's range
        finite = False
    if not finite:
        ctx.error(path, f"expected a finite number, received {describe(rate)}")


_MODULES = {
    "layer": "layers",
    "optimizer": "optimizers",
    "loss": "losses",
    "metric": "metrics",
    "callback": "callbacks",
}


def _refuse(kind: str, spec: ClassSpec, ctx: Ctx, path: str) -> None:
    """The classes no config may name, and those whose extra package is missing."""
    if spec.name in REFUSED.get(kind, {}):
        ctx.error(path, f"{kind} '{spec.name}' is not allowed here: {REFUSED[kind][spec.name]}")
    if spec.name in REQUIRES.get(kind, {}):
        packages, install = REQUIRES[kind][spec.name]
        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            ctx.error(path, f"{kind} '{spec.name}' needs {' and '.join(missing)}, not installed here: {install}")


def make(kind: str, spec: ClassSpec, ctx: Ctx | None = None, path: str = "") -> Any:
    """Build the Keras object for `spec`; identifiers that `compile` resolves (e.g. 'accuracy') stay strings."""

    ctx = ctx or Ctx("<config>")
    _refuse(kind, spec, ctx, path)
    if kind == "layer":
        from cnnlab.models.blocks import BLOCKS  # Keras (the registered layers and blocks import it)

        if spec.name in BLOCKS:  # built later, on the previous layer's output shape (models.build_stack)
            check_builder_params(BLOCKS[spec.name], spec.kwargs, ctx, join(path, spec.name))
            return None
    cls = lookup(kind, spec.name)
    if cls is None:
        if not spec.kwargs and kind in ("optimizer", "loss", "metric"):
            if kind == "metric" and spec.name in COMPILE_METRIC_STRINGS:
                return spec.name
            module, _ = _namespace(kind)
            try:
                obj = module.get(spec.name)
            except (ValueError, TypeError):
                obj = None
            if obj is not None:
                return spec.name if kind in ("loss", "metric") else obj
        names = class_names(kind)
        ctx.error(
            path,
            f"unknown {kind} '{spec.name}'{suggest(spec.name, names)}; "
            f"expected a class of keras.{_namespace(kind)[0].__name__.split('.')[-1]}"
            + (" or one of its string identifiers" if kind != "layer" and kind != "callback" else ""),
        )
    allowed = accepted_args(kind, cls)
    for arg in spec.kwargs:
        if arg not in allowed:
            ctx.error(
                join(path, f"{spec.name}.{arg}"),
                f"unknown argument '{arg}' of {spec.name}{suggest(arg, allowed)}; allowed: {', '.join(allowed)}",
            )
    kwargs = dict(spec.kwargs)
    if kind == "optimizer" and type(kwargs.get("learning_rate")) is int:  # `learning_rate: 1`: YAML's integer
        kwargs["learning_rate"] = float(kwargs["learning_rate"])
    try:
        return cls(**kwargs)
    except Exception as exc:  # Keras validates values in __init__: report them as config errors
        ctx.error(join(path, spec.name), f"Keras refused the arguments {dict(spec.kwargs)}: {one_line(exc)}")


def metric_name(spec: ClassSpec) -> str:
    """The name Keras logs a metric under ('accuracy', 'auc', or the `name` argument): from the index when it
    knows, else by building the metric."""
    entry = index()["classes"]["metric"].get(spec.name)
    if entry is None and not spec.kwargs:
        return spec.name  # a string identifier: logged under itself
    if entry is not None and isinstance(spec.kwargs.get("name"), str):
        return spec.kwargs["name"]
    if entry is not None and "logged" in entry and not spec.kwargs:
        return entry["logged"]
    obj = make("metric", spec)
    return obj if isinstance(obj, str) else obj.name


def check_builder_params(builder: Callable, params: typing.Mapping[str, Any], ctx: Ctx, path: str) -> None:
    """Check a builder's keyword parameters by name and by their type annotations."""
    _check_params(_builder_entry(builder), typing.get_type_hints(builder), params, ctx, path)


def _check_params(entry: dict, hints: dict, params: typing.Mapping[str, Any], ctx: Ctx, path: str) -> None:
    """A builder's parameters against its entry (`_builder_entry`: accepted and required names) and annotations:
    an unknown one with a suggestion, a value of the wrong type, a required one missing."""
    accepted = entry["params"]
    for key, value in params.items():
        if key not in accepted:
            ctx.error(
                join(path, key),
                f"unknown parameter '{key}' of {entry['name']}{suggest(key, accepted)}; allowed: {', '.join(accepted)}",
            )
        if key in hints:
            convert(hints[key], value, ctx, join(path, key))
    for key in entry["required"]:
        if key not in params:
            ctx.error(join(path, key), f"missing required parameter '{key}' of {entry['name']}")
