"""The config schema's primitives: validating plain YAML data against type-annotated frozen dataclasses.

Reference: nanoGPT's configurator (unknown keys refused); issue 14 (the layered package: the schema at the
bottom, so that datasets, builders and the Keras checks use it without importing the config loader above them).
Trap: every error is raised through `Ctx.error` with the key path (`model.layers[3].Conv2D.filters`), never
a bare exception: `convert` is the one place that turns a YAML value into its frozen form or a one-line error.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from cnnlab.errors import ConfigError, suggest

# --------------------------------------------------------------------------------------------------
# Generic validation of plain YAML data against type-annotated frozen dataclasses
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ctx:
    """Where a value came from, for error messages."""

    file: str

    def error(self, path: str, message: str) -> typing.NoReturn:
        raise ConfigError(self.file, path, message)


# Whether validation also checks Keras names and arguments (the second layer: imports Keras, and with it the
# backend, seconds on a small CPU); off for the schema layer that `load` runs first and `cnnlab list` alone.
_KERAS_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("cnnlab_keras_checks", default=True)


def keras_checks() -> bool:
    return _KERAS_CHECKS.get()


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """A short, quoted rendering of a received value with its YAML type."""
    kind = {
        dict: "mapping",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


INT64 = 2**63  # integers a config may hold lie in [-2**63, 2**63): NumPy's int64, what every backend takes

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def convert(tp: Any, value: Any, ctx: Ctx, path: str) -> Any:
    """Check `value` against the annotation `tp` and return it in its frozen form."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        parse = getattr(tp, "parse", None)
        return parse(value, ctx, path) if parse else from_mapping(tp, value, ctx, path)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(options[0], value, ctx, path)
        for option in options:  # first that fits
            try:
                return convert(option, value, ctx, path)
            except ConfigError:
                continue
        ctx.error(path, f"expected {' or '.join(map(_type_name, options))}, received {describe(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            ctx.error(
                path,
                f"expected one of {', '.join(map(str, allowed))}, received {describe(value)}"
                + (suggest(value, map(str, allowed)) if isinstance(value, str) else ""),
            )
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            ctx.error(path, f"expected a list, received {describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, ctx, join(path, i)) for i, v in enumerate(value))
        if len(value) != len(args):
            ctx.error(path, f"expected a list of {len(args)} items, received {describe(value)}")
        return tuple(convert(a, v, ctx, join(path, i)) for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, dict):
            ctx.error(path, f"expected a mapping, received {describe(value)}")
        val_tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                ctx.error(path, f"keys must be strings, received {describe(k)}")
            out[k] = convert(val_tp, v, ctx, join(path, k))
        return types.MappingProxyType(out)
    if tp is bool:
        if not isinstance(value, bool):
            ctx.error(path, f"expected true or false, received {describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.error(path, f"expected an integer, received {describe(value)}")
        if not -INT64 <= value < INT64:  # NumPy and every backend hold counts in 64 bits: OverflowError beyond
            ctx.error(path, f"expected an integer of at most 19 digits, received {describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(path, f"expected a number, received {describe(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer of over 308 digits
            ctx.error(path, f"expected a number, received {describe(value)}, beyond a float's range")
    if tp is str:
        if not isinstance(value, str):
            ctx.error(path, f"expected a string, received {describe(value)}")
        return value
    raise TypeError(f"cnnlab bug: no converter for annotation {tp!r}")


def _type_name(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if dataclasses.is_dataclass(tp):
        return getattr(tp, "KIND", "a mapping")
    if typing.get_origin(tp) is tuple:
        return "a list"
    return "a mapping" if typing.get_origin(tp) in (dict, Mapping) else str(tp)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints, once per class: it re-evaluates every string annotation on each call, and a
    config has a few thousand values to convert."""
    return typing.get_type_hints(cls)


def from_mapping(cls: type, value: Any, ctx: Ctx, path: str) -> Any:
    """Build dataclass `cls` from a YAML mapping: unknown keys refused, required keys demanded."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    allowed = ", ".join(fields)
    if not isinstance(value, dict):
        ctx.error(path, f"expected a mapping with keys {allowed}; received {describe(value)}")
    hints = _type_hints(cls)
    for key in value:
        if key not in fields:
            ctx.error(join(path, str(key)), f"unknown key '{key}'{suggest(str(key), fields)}; allowed keys: {allowed}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = convert(hints[name], value[name], ctx, join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            ctx.error(join(path, name), f"missing required key '{name}'")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check:
        check(ctx, path)
    return obj


def to_plain(obj: Any) -> Any:
    """The YAML-ready form of a frozen config object (inverse of `convert`)."""
    to_yaml = getattr(obj, "to_yaml", None)
    if to_yaml:
        return to_yaml()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    return obj


@dataclass(frozen=True)
class ClassSpec:
    """A Keras class with its arguments: `Name` or `{Name: {arg: value}}` (layers, optimizers, losses, ...)."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))
    KIND: typing.ClassVar[str] = "a class name or {ClassName: {arguments}}"

    @classmethod
    def parse(cls, value: Any, ctx: Ctx, path: str) -> ClassSpec:
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and len(value) == 1:
            ((name, kwargs),) = value.items()
            if not isinstance(name, str):
                ctx.error(path, f"expected a class name, received {describe(name)}")
            if kwargs is None:
                kwargs = {}
            if not isinstance(kwargs, dict):
                ctx.error(join(path, name), f"expected a mapping of arguments, received {describe(kwargs)}")
            return cls(name, convert(Mapping[str, Any], kwargs, ctx, join(path, name)))
        ctx.error(path, f"expected {cls.KIND}, received {describe(value)}")

    def to_yaml(self) -> Any:
        return {self.name: to_plain(dict(self.kwargs))} if self.kwargs else self.name
