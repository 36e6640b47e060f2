"""Datasets as numpy arrays: the registry, the data-directory rule, and the split every experiment shares.

Reference: lecture 002 / DLwP §5.1 (MNIST as arrays scaled to [0, 1]).
Trap: the validation set is carved out of the *training* set with a seeded permutation, never out of the test
set, so the reported test metric stays untouched by model selection.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cnnlab import digest
from cnnlab.data import cats_dogs, imdb, kim, mnist, snapshot  # noqa: F401 - each registers its datasets where it defines them
from cnnlab.data.arrays import Arrays, Dataset, Splits  # noqa: F401 - the registry's types, also data.Arrays
from cnnlab.paths import data_dir_from_env
from cnnlab.registry import DATASETS  # noqa: F401 - filled by the imports above


def resolve_data_dir(cli_dir: str | None, config_dir: str | None, config_path: Path | None) -> Path | None:
    """--data-dir, else the config's data.data_dir (relative to the config file), else $CNNLAB_DATA_DIR, else None."""
    if cli_dir:
        return Path(cli_dir)
    if config_dir:
        p = Path(config_dir)
        return p if p.is_absolute() or config_path is None else (config_path.parent / p)
    return data_dir_from_env()


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(x):
        return x, y
    idx = np.sort(rng.permutation(len(x))[:n])
    return x[idx], y[idx]


def split(
    arrays: Arrays,
    validation_split: float,
    train_subset: int | None,
    test_subset: int | None,
    seed: int,
    val_subset: int | None = None,
) -> Splits:
    """Seeded subsets of train and test, then the last `validation_split` of the shuffled train set held out;
    a dataset's own validation set is used as it is (subset by `val_subset`)."""
    rng = np.random.default_rng(seed)
    if arrays.x_val is not None:
        x_tr, y_tr = _subset(arrays.x_train, arrays.y_train, train_subset, rng)
        x_va, y_va = _subset(arrays.x_val, arrays.y_val, val_subset, rng)
        x_te, y_te = _subset(arrays.x_test, arrays.y_test, test_subset, rng)
        return Splits(x_tr, y_tr, x_va, y_va, x_te, y_te, arrays.source, arrays.extras, fingerprint(arrays))
    n_train = len(arrays.x_train)
    order = rng.permutation(n_train)
    if train_subset is not None:
        order = order[: min(train_subset, n_train)]
    n_val = int(round(len(order) * validation_split))
    train_idx, val_idx = np.sort(order[: len(order) - n_val]), np.sort(order[len(order) - n_val :])
    test_idx = np.arange(len(arrays.x_test))
    if test_subset is not None and test_subset < len(test_idx):
        test_idx = np.sort(rng.permutation(len(test_idx))[:test_subset])
    x_val = arrays.x_train[val_idx] if n_val else None
    y_val = arrays.y_train[val_idx] if n_val else None
    return Splits(
        arrays.x_train[train_idx],
        arrays.y_train[train_idx],
        x_val,
        y_val,
        arrays.x_test[test_idx],
        arrays.y_test[test_idx],
        arrays.source,
        arrays.extras,
        fingerprint(arrays),
    )


def fingerprint(arrays: Arrays) -> str:
    """SHA-256 (16 hex digits) of a dataset's content as loaded: every array's dtype, shape and bytes, and the
    extras a builder receives (vocabulary, embeddings; not its notes); the same for the same data whatever file
    format or folder it was read from. With the config hash and the code, it decides whether a finished run still stands
    (`reproduce`); the seeded split and subsets are the config's, so they are left out.

    Trap: the hash is of the numbers, not of the files' names or dates: a copy of the data directory on another
    machine gives the same fingerprint, a substituted or damaged file a different one."""
    named = [(name, getattr(arrays, name)) for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")]
    named += [
        (f"extras.{name}", arrays.extras[name])
        for name in sorted(arrays.extras)
        if not isinstance(arrays.extras[name], str)
    ]  # a note on how it was read ("from cache"), not data
    return digest.arrays(named)


def load_arrays(dataset: str, data_dir: Path | None, options) -> Arrays:
    """The dataset as its loader gives it: from the snapshot folder $CNNLAB_SNAPSHOT_DIR when set (a machine
    without the data: cnnlab.data.snapshot), else from the data directory."""
    folder = snapshot.folder_from_env()
    if folder is not None:
        return snapshot.read(folder, dataset, options)
    return DATASETS[dataset].load(data_dir, options)


def load(data_cfg, data_dir: Path | None, seed: int) -> Splits:
    """Load the configured dataset and split it; `data.validation: test` hands the test split over as the
    validation data too (the curves of DLwP notebook 4.4)."""
    arrays = load_arrays(data_cfg.dataset, data_dir, data_cfg.options)
    splits = split(
        arrays, data_cfg.validation_split, data_cfg.train_subset, data_cfg.test_subset, seed, data_cfg.val_subset
    )
    if getattr(data_cfg, "validation", "split") == "test":
        splits = dataclasses.replace(
            splits,
            x_val=splits.x_test,
            y_val=splits.y_test,
            source=f"{splits.source}; validation data: the test set (curves only)",
        )
    return splits
