"""Keras classes named in configs: look-up, argument checks and construction.

Reference: the Keras 3 API (keras.layers, .optimizers, .losses, .metrics, .callbacks).
Trap: every Keras layer takes **kwargs, so a misspelt argument would only fail deep inside Keras; here only the
explicit parameters of `__init__` (plus a layer's name/dtype/trainable) are accepted, each checked by name.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Callable

from cnnlab.errors import one_line, suggest

if typing.TYPE_CHECKING:
    from cnnlab.config import ClassSpec, Ctx

# Classes a config may not name, with the reason the error gives.
REFUSED: dict[str, dict[str, str]] = {
    "layer": {
        "Lambda": "it runs arbitrary Python that a YAML file cannot carry; write a builder in cnnlab/models.py",
        "Layer": "it is the abstract base class",
        "InputLayer": "set model.input_shape instead",
        "Input": "set model.input_shape instead",
        "TFSMLayer": "it wraps a TensorFlow SavedModel; write a builder in cnnlab/models.py",
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
    metric of cnnlab.keras2)."""
    if kind == "layer":
        from cnnlab.blocks import LAYERS

        return LAYERS
    if kind in ("optimizer", "metric"):
        from cnnlab import keras2

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
    names = [n for n in dir(module) if not n.startswith("_") and n not in REFUSED.get(kind, {})
             and isinstance(getattr(module, n), type) and issubclass(getattr(module, n), base)]
    names += list(_own(kind))
    if kind == "layer":
        from cnnlab.blocks import BLOCKS

        names += list(BLOCKS)
    return sorted(names)


def accepted_args(kind: str, cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()
    named = [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named + sorted(_BASE_ARGS.get(kind, set()) - set(named))


def check(kind: str, spec: "ClassSpec", ctx: "Ctx", path: str) -> None:
    """Raise a ConfigError at `path` unless `spec` names a usable Keras class with valid arguments."""
    make(kind, spec, ctx, path)


def make(kind: str, spec: "ClassSpec", ctx: "Ctx | None" = None, path: str = "") -> Any:
    """Build the Keras object for `spec`; identifiers that `compile` resolves (e.g. 'accuracy') stay strings."""
    from cnnlab.config import Ctx, join

    ctx = ctx or Ctx("<config>")
    if spec.name in REFUSED.get(kind, {}):
        ctx.error(path, f"{kind} '{spec.name}' is not allowed here: {REFUSED[kind][spec.name]}")
    if spec.name in REQUIRES.get(kind, {}):
        import importlib.util

        packages, install = REQUIRES[kind][spec.name]
        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            ctx.error(path, f"{kind} '{spec.name}' needs {' and '.join(missing)}, not installed here: {install}")
    if kind == "layer":
        from cnnlab.blocks import BLOCKS

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
        ctx.error(path, f"unknown {kind} '{spec.name}'{suggest(spec.name, names)}; "
                  f"expected a class of keras.{_namespace(kind)[0].__name__.split('.')[-1]}"
                  + (" or one of its string identifiers" if kind != "layer" and kind != "callback" else ""))
    allowed = accepted_args(kind, cls)
    for arg in spec.kwargs:
        if arg not in allowed:
            ctx.error(join(path, f"{spec.name}.{arg}"),
                      f"unknown argument '{arg}' of {spec.name}{suggest(arg, allowed)}; allowed: {', '.join(allowed)}")
    try:
        return cls(**spec.kwargs)
    except Exception as exc:  # Keras validates values in __init__: report them as config errors
        ctx.error(join(path, spec.name), f"Keras refused the arguments {dict(spec.kwargs)}: {one_line(exc)}")


def metric_name(spec: "ClassSpec") -> str:
    """The name Keras logs a metric under ('accuracy', 'auc', or the `name` argument)."""
    obj = make("metric", spec)
    return obj if isinstance(obj, str) else obj.name


def check_builder_params(builder: Callable, params: typing.Mapping[str, Any], ctx: "Ctx", path: str) -> None:
    """Check a builder's keyword parameters by name and by their type annotations."""
    from cnnlab.config import convert, join

    sig = inspect.signature(builder)
    hints = typing.get_type_hints(builder)
    # input_shape comes from model.input_shape and data from the dataset (vocabulary, vectors): not parameters
    accepted = [n for n in sig.parameters if n not in ("input_shape", "data") and not n.startswith("_")]
    for name, value in params.items():
        if name not in accepted:
            ctx.error(join(path, name), f"unknown parameter '{name}' of {builder.__name__}"
                      f"{suggest(name, accepted)}; allowed: {', '.join(accepted)}")
        if name in hints:
            convert(hints[name], value, ctx, join(path, name))
    for name in accepted:
        if sig.parameters[name].default is inspect.Parameter.empty and name not in params:
            ctx.error(join(path, name), f"missing required parameter '{name}' of {builder.__name__}")
