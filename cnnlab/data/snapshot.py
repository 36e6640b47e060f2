"""Datasets frozen as loaded: a loader's arrays written once, then read back on a machine without the data.

Reference: issue 18 (the GPU bundle: "compact caches that fit — MNIST, the tokenised IMDB arrays, Kim's sets with
their vocabulary-restricted vector matrices"); the device machine has no `../shared/data`, no word-vector package
and 64 MiB of working tree a call. A snapshot folder holds `snapshots.json` (one entry per dataset and
`data.options`) and `arrays/<sha>.npz`, each array once however many entries share it (Kim's ten MR folds share
their vocabulary and vector matrix). `CNNLAB_SNAPSHOT_DIR` makes `cnnlab.data.load_arrays` read from it instead of
the data directory.
Trap: a snapshot must load as the *same data*: the run's data fingerprint hashes every array's dtype, shape and
bytes and every other extra by its repr (a list stays a list, an int an int), so `write` reads its entry back and
refuses one whose fingerprint differs from the loader's; a missing entry is an error, never a silent fallback to
other data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import digest
from cnnlab.data.arrays import Arrays
from cnnlab.errors import DataError
from cnnlab.store.files import _replace_whole, atomic_write

ENV = "CNNLAB_SNAPSHOT_DIR"
MANIFEST = "snapshots.json"
FIELDS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
VERSION = 1


def folder_from_env() -> Path | None:
    """$CNNLAB_SNAPSHOT_DIR as a path (None when unset or blank): the one reader of that variable."""
    text = os.environ.get(ENV, "").strip()
    return Path(text) if text else None


def plain_options(options: Any) -> dict:
    """A dataset's `data.options` as plain JSON values (a dataclass, else its attributes)."""
    if options is None:
        return {}
    raw = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(vars(options))
    return json.loads(json.dumps(raw, sort_keys=True, default=str))


def key(dataset: str, options: Any) -> str:
    """The entry's name: the dataset and a digest of its options ('kim_mr-3f2a…')."""
    text = json.dumps({"dataset": dataset, "options": plain_options(options)}, sort_keys=True)
    return f"{dataset}-{digest.arrays([('options', text)], 12)}"


def _manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": VERSION, "entries": {}}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a snapshot manifest ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
        raise DataError(f"{path}: not a snapshot manifest (no 'entries')")
    return manifest


def _narrow(array: np.ndarray) -> tuple[np.ndarray, str]:
    """A smaller array that gives `array` back exactly, and how ('' as it is, 'astype' a narrower integer type,
    'over255' bytes k standing for float k/255, MNIST's pixels): the travel limit is 64 MiB, MNIST's float32 images
    are 180 MiB raw, IMDB's int32 word ids use 14 bits. Checked, never assumed: the round trip must match bit for
    bit, else the array is stored as it is."""
    if array.size == 0:
        return array, ""
    if array.dtype.kind in "iu" and array.dtype.itemsize > 1:
        lo, hi = int(array.min()), int(array.max())
        for small in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32):
            info = np.iinfo(small)
            if np.dtype(small).itemsize < array.dtype.itemsize and info.min <= lo and hi <= info.max:
                return array.astype(small), "astype"
    if array.dtype == np.float32 and float(array.min()) >= 0.0 and float(array.max()) <= 1.0:
        k = np.rint(array * np.float32(255)).astype(np.uint8)
        if np.array_equal(k.astype(np.float32) / np.float32(255), array):
            return k, "over255"
    return array, ""


def _widen(stored: np.ndarray, how: str, dtype: str) -> np.ndarray:
    if how == "over255":
        return stored.astype(np.float32) / np.float32(255)
    return stored.astype(np.dtype(dtype)) if how == "astype" else stored


def _put(folder: Path, array: np.ndarray) -> str:
    """Store one array under its content digest (once, narrowed where exact: `_narrow`); its name."""
    array = np.ascontiguousarray(array)
    if array.dtype == object:
        raise DataError(f"snapshot: an object array ({array.shape}) cannot be stored without pickling")
    name = digest.arrays([("a", array)], 24)
    path = Path(folder) / "arrays" / f"{name}.npz"
    if not path.exists():
        small, how = _narrow(array)
        if how and not np.array_equal(_widen(small, how, array.dtype.str), array):
            small, how = array, ""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = np.array([how, array.dtype.str])
        _replace_whole(path, lambda f: np.savez_compressed(f, a=small, how=meta), ".tmp.npz")
    return name


def _get(folder: Path, name: str) -> np.ndarray:
    path = Path(folder) / "arrays" / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            how, dtype = (str(v) for v in z["how"])
            array = _widen(z["a"], how, dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: cannot read this snapshot array ({exc})") from None
    if digest.arrays([("a", array)], 24) != name:
        raise DataError(f"{path}: damaged (its content is not the array it was stored as)")
    return array


def _extra(folder: Path, value: Any) -> dict:
    if isinstance(value, np.ndarray):
        return {"array": _put(folder, value)}
    text = json.dumps(value)
    if repr(json.loads(text)) != repr(value):  # a tuple would come back a list: another fingerprint
        raise DataError(f"snapshot: an extra of type {type(value).__name__} does not survive JSON unchanged")
    return {"value": value}


def write(folder: Path, dataset: str, options: Any, arrays: Arrays, fingerprint: Callable[[Arrays], str]) -> dict:
    """Add `arrays` (what the loader of `dataset` returned for `options`) to the snapshot at `folder`, then read
    the entry back and check that `fingerprint` (cnnlab.data.fingerprint) gives the same digest; the entry."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(folder)
    entry = {
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": dataset,
        "options": plain_options(options),
        "fingerprint": fingerprint(arrays),
        "source": arrays.source,
        "fields": {f: None if getattr(arrays, f) is None else _put(folder, getattr(arrays, f)) for f in FIELDS},
        "extras": {name: _extra(folder, value) for name, value in arrays.extras.items()},
    }
    name = key(dataset, options)
    manifest["entries"][name] = entry
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    back = fingerprint(read(folder, dataset, options))
    if back != entry["fingerprint"]:
        raise DataError(f"snapshot {folder}: {dataset} reads back as other data ({back} ≠ {entry['fingerprint']})")
    return entry


def read(folder: Path, dataset: str, options: Any) -> Arrays:
    """The `Arrays` the snapshot at `folder` holds for `dataset` with these options, exactly as the loader gave
    them; a one-line DataError naming the folder and what it does hold when it has no such entry."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise DataError(f"{ENV}={folder}: no {MANIFEST} there (not a snapshot folder; unset {ENV} to read the data)")
    entries = _manifest(folder)["entries"]
    entry = entries.get(key(dataset, options))
    if entry is None:
        held = sorted({e.get("dataset", "?") for e in entries.values()})
        raise DataError(
            f"{ENV}={folder}: no snapshot of {dataset} with these data.options "
            f"({json.dumps(plain_options(options), sort_keys=True)[:200]}); it holds {', '.join(held) or 'nothing'}"
        )
    fields = {f: None if entry["fields"].get(f) is None else _get(folder, entry["fields"][f]) for f in FIELDS}
    extras = {n: _get(folder, s["array"]) if "array" in s else s["value"] for n, s in entry["extras"].items()}
    return Arrays(
        fields["x_train"],
        fields["y_train"],
        fields["x_test"],
        fields["y_test"],
        f"{entry['source']} [read from a snapshot written {entry.get('written_at', '?')}, {ENV}]",
        fields["x_val"],
        fields["y_val"],
        extras=extras,
    )


def size_bytes(folder: Path) -> int:
    """Bytes of every file in the snapshot (what it adds to a working tree that travels)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
