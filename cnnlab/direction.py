"""Which way a metric improves: 'up' (accuracy, AUC) or 'down' (a loss, an error, a crossentropy).

Reference: Keras 3's own convention (keras/src/callbacks/monitor_callback.py, `_set_monitor_op`): 'loss' goes
down, and a metric object says so itself through its `_direction` ('up' / 'down'); Keras 2's EarlyStopping
guessed from the name ('acc' up, everything else down). One rule here serves the best epoch, `restore_best`,
the measured val_* summary, the verdicts and the `mode` of EarlyStopping-like callbacks alike.
Trap: "is 'loss' in the name" is not that rule: MAE, MSE and a crossentropy *metric* have no 'loss' in their
names and improve downwards; choosing their maximum selects the worst epoch. A run records its directions in
metrics.json (`directions`), so the report reads the run's own rule, not a guess; `train.directions` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UP, DOWN = "up", "down"
# fragments of the names of metrics that improve downwards (Keras's losses and error metrics, by name or alias)
_DOWN_WORDS = (
    "loss",
    "error",
    "crossentropy",
    "hinge",
    "poisson",
    "divergence",
    "logcosh",
    "squared",
    "absolute",
    "perplexity",
)
_DOWN_NAMES = {"mae", "mse", "mape", "msle", "rmse", "kld", "ce"}
_PREFIXES = ("test_", "val_", "train_")


def base_name(name: str) -> str:
    """'val_mae' → 'mae'; the history/metric column a measured key stands for."""
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def of_name(name: str, directions: Mapping[str, str] | None = None) -> str:
    """The direction of metric `name` (with or without a test_/val_/train_ prefix): the run's recorded (or the
    config's) `directions` first, else Keras's names: 'loss', errors and crossentropies down, the rest up."""
    base = base_name(name)
    if directions and base in directions:
        return directions[base]
    low = base.lower()
    return DOWN if low in _DOWN_NAMES or any(w in low for w in _DOWN_WORDS) else UP


def of_metric(metric: Any, name: str) -> str:
    """The direction a Keras metric object declares (`_direction`), else the one its name implies."""
    declared = getattr(metric, "_direction", None)
    return declared if declared in (UP, DOWN) else of_name(name)


def minimised(name: str, directions: Mapping[str, str] | None = None) -> bool:
    return of_name(name, directions) == DOWN


def better(value: float, best: float | None, name: str, directions: Mapping[str, str] | None = None) -> bool:
    """Whether `value` is at least as good as `best` (ties go to the later epoch, as in Kim's code:
    `if val_perf >= best_val_perf`)."""
    if best is None:
        return True
    return value <= best if minimised(name, directions) else value >= best


def mode(name: str, directions: Mapping[str, str] | None = None) -> str:
    """Keras's `mode` argument of EarlyStopping, ModelCheckpoint, ReduceLROnPlateau: 'min' or 'max'."""
    return "min" if minimised(name, directions) else "max"
