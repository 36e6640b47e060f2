"""Kaggle Dogs vs. Cats in the book's layout, decoded once into uint8 arrays and cached on disk.

Reference: Chollet, DLwP §5.2 ("Training a convnet from scratch on a small dataset": 2,000 train, 1,000
validation, 1,000 test images; `flow_from_directory(target_size=(150, 150), class_mode='binary')`).
Trap: `flow_from_directory` resizes with *nearest* interpolation (Keras's `image_dataset_from_directory` uses
bilinear); the default here is the book's, and the cache key includes the interpolation, the size and the
images' bytes, so changing any of them can never reuse stale arrays.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cnnlab.data.arrays import Arrays, Dataset
from cnnlab.errors import DataError, one_line
from cnnlab.registry import DATASETS
from cnnlab.store.files import cache_dir, read_npz, write_npz

CLASSES = ("cats", "dogs")  # label 0, 1: alphabetical, as flow_from_directory assigns them
SPLITS = ("train", "validation", "test")
FILTERED_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Options:
    """`data.options` for cats_dogs."""

    image_size: tuple[int, int] = (150, 150)  # (height, width), the book's target_size
    interpolation: Literal["nearest", "bilinear"] = "nearest"  # flow_from_directory's default is nearest
    folder: str = "cats_and_dogs_small"  # under the data directory
    missing_test: Literal["error", "validation"] = "error"  # cats_and_dogs_filtered has no test split


def list_files(root: Path, split: str) -> list[tuple[Path, int]]:
    """(path, label) of every image of one split, sorted by class then name."""
    out = []
    for label, cls in enumerate(CLASSES):
        folder = root / split / cls
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; expected {root}/{{train,validation,test}}/{{cats,dogs}}/*.jpg")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{folder}: no .jpg/.png images")
        out += [(p, label) for p in files]
    return out


def content_key(files: list[tuple[Path, int]], options: Options) -> str:
    """SHA-1 of every image's relative name, label and bytes, plus the decoding options."""
    h = hashlib.sha1(f"{options.image_size}|{options.interpolation}|v1".encode())
    for path, label in files:
        h.update(f"{path.parent.name}/{path.name}|{label}|".encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def decode(path: Path, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """One image as (height, width, 3) uint8; a corrupt or non-image file is a one-line DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    resample = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR}[interpolation]
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), resample)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); remove or replace the file") from None


def decode_split(files: list[tuple[Path, int]], options: Options) -> tuple[np.ndarray, np.ndarray]:
    """All images of a split, decoded on two threads (Pillow releases the GIL while decoding)."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        images = list(pool.map(lambda f: decode(f[0], options.image_size, options.interpolation), files))
    return np.stack(images), np.array([label for _, label in files], dtype="float32")


def load_split(root: Path, split: str, options: Options) -> tuple[np.ndarray, np.ndarray, bool]:
    """(x, y, from_cache) for one split, decoding only when the cache has no entry for these exact bytes."""
    files = list_files(root, split)
    key = content_key(files, options)
    h, w = options.image_size
    cache = cache_dir("data", "cats_dogs", f"{split}_{h}x{w}_{options.interpolation}_{key}.npz")
    cached = read_npz(cache)
    if cached is not None and {"x", "y"} <= set(cached):
        return cached["x"], cached["y"], True
    x, y = decode_split(files, options)
    write_npz(cache, x=x, y=y)
    return x, y, False


def _download() -> Path:
    import keras

    try:
        path = Path(keras.utils.get_file("cats_and_dogs_filtered.zip", origin=FILTERED_URL, extract=True))
    except Exception as exc:  # no network
        raise DataError(
            f"cats_and_dogs_filtered download failed ({one_line(exc)}) and no data directory was "
            "given: pass --data-dir DIR or set CNNLAB_DATA_DIR=DIR, with DIR/cats_and_dogs_small/"
            "{train,validation,test}/{cats,dogs}/*.jpg"
        ) from None
    candidates = [
        p
        for p in [path, path / "cats_and_dogs_filtered", path.parent / "cats_and_dogs_filtered"]
        if (p / "train").is_dir()
    ]
    if not candidates:
        raise DataError(f"{path}: the download has no train/ folder")
    return candidates[0]


def load(data_dir: Path | None, options: Options):
    """Train / validation / test arrays; test from the `validation` folder only if `missing_test: validation`."""

    root = _download() if data_dir is None else Path(data_dir) / options.folder
    if not root.is_dir():
        raise DataError(
            f"{root}: no such folder; expected {{train,validation,test}}/{{cats,dogs}}/*.jpg under it "
            "(data.options.folder names it)"
        )
    x_train, y_train, c1 = load_split(root, "train", options)
    x_val, y_val, c2 = load_split(root, "validation", options)
    note = ""
    if (root / "test").is_dir():
        x_test, y_test, c3 = load_split(root, "test", options)
    elif options.missing_test == "validation":
        x_test, y_test, c3 = x_val, y_val, c2
        note = "; NO test split: test metrics are on the validation images (missing_test: validation)"
    else:
        raise DataError(
            f"{root}/test: missing (TensorFlow's cats_and_dogs_filtered has train and validation "
            "only); use the book's layout with a test split, or set data.options.missing_test="
            "validation to report validation metrics as test metrics"
        )
    cached = "from cache" if c1 and c2 and c3 else "decoded"
    h, w = options.image_size
    source = f"{root} ({cached}, {h}×{w}, {options.interpolation}){note}"
    return Arrays(x_train, y_train, x_test, y_test, source, x_val, y_val)


DATASETS.register(
    "cats_dogs",
    Dataset(
        load,
        Options,
        "Kaggle Dogs vs. Cats in DLwP §5.2's layout: 2,000 train / 1,000 validation / 1,000 test, uint8 RGB",
        has_validation=True,
        class_names=tuple(c.rstrip("s") for c in CLASSES),
    ),
)
