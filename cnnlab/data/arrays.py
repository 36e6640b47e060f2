"""What a dataset loader returns and what a model sees: arrays with where they came from.

Reference: lecture 002 / DLwP §5.1 (MNIST as arrays scaled to [0, 1]); issue 14 (the loaders import this module,
not the data package that registers them, so that no import goes in a circle).
Trap: `Arrays.extras` carries what a builder needs from the data (vocabulary, embeddings); its notes (strings)
describe how it was read and are left out of the data fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Arrays:
    """A dataset's arrays as loaded, with where they came from; x_val/y_val when it has its own validation set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    # Data-derived facts a model builder may need, e.g. {"vocabulary": [...], "embeddings": (V, d) array}.
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays as the model sees them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    extras: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # of the dataset as loaded, before the split (`fingerprint`)

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.x_train),
            "val": 0 if self.x_val is None else len(self.x_val),
            "test": len(self.x_test),
        }


@dataclass(frozen=True)
class Dataset:
    """A registry entry (cnnlab.registry.DATASETS, registered by the module that defines the loader): the loader,
    the dataclass of its `data.options`, and a one-line description."""

    load: Callable[[Path | None, Any], Arrays]
    options: type
    description: str
    has_validation: bool = False  # ships its own validation split (then data.validation_split must stay 0)
    cross_validation: bool = False  # no test split: the reference scored it over k folds (data.options.fold/folds)
    class_names: tuple[str, ...] | None = None  # label i's name, for pictures and captions ("cat", not 0)
