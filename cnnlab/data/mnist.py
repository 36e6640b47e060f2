"""MNIST from LeCun's IDX files, Keras's mnist.npz, or Keras's download — checked, as uint8/float32 arrays.

Reference: lecture 002 ("CNN Training und Evaluation": reshape to (n, 28, 28, 1), astype float32 / 255,
to_categorical); LeCun et al., the IDX format (big-endian magic 2051 for images, 2049 for labels).
Trap: the published MD5 sums are of the *uncompressed* IDX files, so they are checked after gunzip.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.arrays import Arrays, Dataset
from cnnlab.errors import DataError, one_line
from cnnlab.registry import DATASETS


@dataclass(frozen=True)
class Options:
    """`data.options` for MNIST."""

    one_hot: bool = True  # labels as to_categorical(y), as lecture 002 does for categorical_crossentropy
    flatten: bool = False  # images as (n, 784) vectors, as DLwP §2.1's densely connected network
    scale: bool = True  # float32 in [0, 1] (x / 255); false keeps uint8


# stem → (IDX magic, shape, MD5 of the uncompressed original)
IDX_FILES = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28), "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (2049, (60000,), "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28), "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (2049, (10000,), "27ae3e4e09519cfbb04c329615203637"),
}
SPLITS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
WHAT_TO_PUT = (
    "DIR/mnist/ (or DIR/) holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (LeCun's originals), or DIR/mnist.npz "
    "(Keras's file)"
)


def read_idx(path: Path, expected_magic: int | None = None, verify_md5: str | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array, checking header, size and optionally MD5."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: cannot read as {'gzip' if path.suffix == '.gz' else 'IDX'}: {one_line(exc)}"
        ) from None
    if len(data) < 8:
        raise DataError(f"{path}: not an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    magic = struct.unpack(">I", data[:4])[0]
    if zero != 0 or dtype_code != 0x08 or (expected_magic is not None and magic != expected_magic):
        raise DataError(
            f"{path}: bad IDX header: magic {magic}, expected "
            f"{expected_magic if expected_magic is not None else 'unsigned-byte data (0x08)'}"
        )
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{path}: truncated or padded: header says shape {shape} ({expected} bytes), file has {len(data)} bytes"
        )
    if verify_md5 is not None:
        digest = hashlib.md5(data).hexdigest()
        if digest != verify_md5:
            raise DataError(
                f"{path}: MD5 of the uncompressed data is {digest}, expected {verify_md5}: "
                "the file is corrupt or not the original"
            )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _from_idx(folder: Path) -> dict[str, np.ndarray]:
    paths = {key: _idx_path(folder, stem) for key, stem in SPLITS.items()}
    missing = [f"{SPLITS[key]}.gz" for key, path in paths.items() if path is None]
    if missing:
        raise DataError(
            f"{folder}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f"(other MNIST IDX files are there); expected {WHAT_TO_PUT}"
        )
    out = {}
    for key, path in paths.items():
        magic, shape, md5 = IDX_FILES[SPLITS[key]]
        arr = read_idx(path, magic, md5)
        if arr.shape != shape:
            raise DataError(f"{path}: shape {arr.shape}, expected {shape}")
        out[key] = arr
    return out


def _from_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in SPLITS if k in f.files}
    except Exception as exc:  # zip/pickle errors of all kinds
        raise DataError(f"{path}: cannot read as .npz: {one_line(exc)}") from None
    for key, stem in SPLITS.items():
        shape = IDX_FILES[stem][1]
        if key not in out:
            raise DataError(f"{path}: array '{key}' is missing; expected x_train, y_train, x_test, y_test")
        if out[key].shape != shape or out[key].dtype != np.uint8:
            raise DataError(
                f"{path}: '{key}' has shape {out[key].shape} and dtype {out[key].dtype}, expected {shape} uint8"
            )
    return out


def _download() -> dict[str, np.ndarray]:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # no network: say exactly what to put where
        raise DataError(
            f"MNIST download failed ({one_line(exc)}) and no data directory was given: pass "
            f"--data-dir DIR or set CNNLAB_DATA_DIR=DIR, with {WHAT_TO_PUT}"
        ) from None
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def find(data_dir: Path) -> tuple[str, Path]:
    """('idx', folder) or ('npz', file) for the first MNIST copy under `data_dir`."""
    if not data_dir.is_dir():
        raise DataError(
            f"{data_dir}: data directory does not exist (from --data-dir, data.data_dir or CNNLAB_DATA_DIR)"
        )
    for folder in (data_dir / "mnist", data_dir):
        if any(_idx_path(folder, stem) for stem in IDX_FILES):
            return "idx", folder
        if (folder / "mnist.npz").is_file():
            return "npz", folder / "mnist.npz"
    raise DataError(f"{data_dir}: no MNIST files found; expected {WHAT_TO_PUT.replace('DIR', str(data_dir))}")


def load(data_dir: Path | None, options: Options):
    """MNIST as `Arrays`: (n, 28, 28, 1) float32 in [0, 1] and one-hot labels by default."""

    if data_dir is None:
        raw, source = _download(), "keras.datasets.mnist.load_data()"
    else:
        kind, where = find(data_dir)
        if kind == "idx":
            raw, source = _from_idx(where), f"IDX files in {where} (MD5 verified)"
        else:
            raw, source = _from_npz(where), f"{where}"
    return Arrays(
        _images(raw["x_train"], options),
        _labels(raw["y_train"], options),
        _images(raw["x_test"], options),
        _labels(raw["y_test"], options),
        source,
    )


def _images(x: np.ndarray, options: Options) -> np.ndarray:
    x = x.reshape((len(x), 28 * 28) if options.flatten else (len(x), 28, 28, 1))
    return (x.astype("float32") / 255.0) if options.scale else x.copy()


def _labels(y: np.ndarray, options: Options) -> np.ndarray:
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"MNIST labels must be digits 0-9, found {int(y.min())}..{int(y.max())}")
    return np.eye(10, dtype="float32")[y] if options.one_hot else y.astype("int64")


DATASETS.register(
    "mnist",
    Dataset(
        load,
        Options,
        "MNIST handwritten digits, 60,000 train / 10,000 test, 28×28×1",
        class_names=tuple(f"digit {d}" for d in range(10)),
    ),
)
