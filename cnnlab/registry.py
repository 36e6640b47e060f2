"""Registries: named datasets, model builders, layers, blocks, optimizers and metrics, each registered where it
is defined, looked up with a suggestion of the nearest name.

Reference: timm's `register_model` (timm/models/_registry.py) and big_vision's registry: the definition
registers itself, so adding a builder is one decorated function, never an edit to a central dict.
Trap: a registry is filled when the module defining its entries is imported; the packages that own them
(`cnnlab.data`, `cnnlab.models`, `cnnlab.blocks`, `cnnlab.keras2`) import their modules, so look names up
through those packages' re-exports, not this module alone. A second entry under one name is a bug in cnnlab
(ValueError), not a user mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

from cnnlab.errors import CnnlabError, suggest

T = TypeVar("T")


class Registry(MutableMapping[str, T], Generic[T]):
    """Name → entry. `register` refuses a second entry under one name; item assignment and deletion replace
    freely (a test's temporary dataset, monkeypatch.setitem)."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind, self.plural = kind, plural or f"{kind}s"
        self._entries: dict[str, T] = {}

    def register(self, name: str | Callable | None = None, entry: Any = None):
        """`REG.register("mnist", entry)` stores `entry`; `@REG.register` and `@REG.register("name")` store the
        decorated function or class under its own name or `name`. Returns the entry (the decorator: unchanged)."""
        if entry is not None:
            return self._add(name, entry)
        if callable(name):  # @REG.register without parentheses
            return self._add(name.__name__, name)

        def decorate(obj):
            return self._add(name or obj.__name__, obj)

        return decorate

    def _add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def lookup(self, name: str, ctx=None, path: str = "") -> T:
        """The entry named `name`; else a one-line error with the nearest name and the known ones, through the
        config's `ctx.error(path, ...)` when given (naming the file and key), else as a CnnlabError."""
        if name in self._entries:
            return self._entries[name]
        known = ", ".join(self.names())
        message = f"unknown {self.kind} '{name}'{suggest(name, self._entries)}; known {self.plural}: {known}"
        if ctx is not None:
            ctx.error(path, message)
        raise CnnlabError(message)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __setitem__(self, name: str, entry: T) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


DATASETS: Registry = Registry("dataset")  # cnnlab.data.arrays.Dataset entries, registered in cnnlab/data/*.py
MODELS: Registry = Registry("builder")  # functions (input_shape, **params[, data]) -> keras.Model
LAYERS: Registry = Registry("layer")  # cnnlab's Keras layer classes usable in a config's layer stack
BLOCKS: Registry = Registry("block")  # functions building a pretrained sub-model on the stack (VGG16)
OPTIMIZERS: Registry = Registry("optimizer")  # cnnlab's optimizer classes beside Keras's (RMSpropKeras2)
METRICS: Registry = Registry("metric")  # cnnlab's metric classes beside Keras's (BinaryAccuracyKeras2)
