"""MNIST loading: the IDX reader on synthetic and real files, npz, clear errors, and the seeded split."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

from cnnlab.data import Arrays, mnist, split
from cnnlab.errors import DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x0800 + arr.ndim  # 2051 for 3-d images, 2049 for 1-d labels
    return struct.pack(f">I{arr.ndim}I", magic, *arr.shape) + arr.astype(np.uint8).tobytes()


def test_idx_reader_roundtrip_gz_and_raw(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(arr)
    (tmp_path / "x.gz").write_bytes(gzip.compress(data))
    (tmp_path / "x").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    for name in ("x.gz", "x"):
        out = mnist.read_idx(tmp_path / name, 2051, md5)
        assert out.shape == (2, 3, 4) and (out == arr).all()


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d[:-5], "truncated or padded"),
        (lambda d: d + b"\0", "truncated or padded"),
        (lambda d: b"\x00\x00\x08\x01" + d[4:], "bad IDX header: magic 2049, expected 2051"),
        (lambda d: b"\x01\x00" + d[2:], "bad IDX header"),
        (lambda d: d[:3], "not an IDX file"),
    ],
)
def test_idx_reader_rejects_bad_files(tmp_path, mutate, fragment):
    data = mutate(idx_bytes(np.zeros((2, 3, 4), np.uint8)))
    path = tmp_path / "bad-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match=fragment) as err:
        mnist.read_idx(path, 2051)
    assert str(path) in str(err.value)


def test_idx_reader_checks_md5_and_gzip(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 3, 4), np.uint8))))
    with pytest.raises(DataError, match="MD5 of the uncompressed data is .* expected 6bbc9ace"):
        mnist.read_idx(path, 2051, mnist.IDX_FILES["train-images-idx3-ubyte"][2])
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read as gzip"):
        mnist.read_idx(path, 2051)


def test_real_idx_files(data_dir):
    arrays = mnist.load(data_dir, mnist.Options())
    assert arrays.x_train.shape == (60000, 28, 28, 1) and arrays.x_test.shape == (10000, 28, 28, 1)
    assert arrays.x_train.dtype == np.float32 and 0.0 == arrays.x_train.min() and arrays.x_train.max() == 1.0
    assert arrays.y_train.shape == (60000, 10) and (arrays.y_train.sum(axis=1) == 1).all()
    # every digit is present in both splits, roughly balanced (5,421 to 6,742 per class in training)
    counts = arrays.y_train.sum(axis=0)
    assert counts.min() == 5421 and counts.max() == 6742 and counts.sum() == 60000
    assert "MD5 verified" in arrays.source
    flat = mnist.load(data_dir, mnist.Options(one_hot=False, flatten=True, scale=False))
    assert flat.x_train.shape == (60000, 784) and flat.x_train.dtype == np.uint8
    assert flat.y_train.shape == (60000,) and set(np.unique(flat.y_test)) == set(range(10))


def test_npz_matches_idx(data_dir, tmp_path):
    raw = mnist.load(data_dir, mnist.Options(one_hot=False, scale=False))
    np.savez(
        tmp_path / "mnist.npz",
        x_train=raw.x_train[..., 0],
        y_train=raw.y_train.astype(np.uint8),
        x_test=raw.x_test[..., 0],
        y_test=raw.y_test.astype(np.uint8),
    )
    from_npz = mnist.load(tmp_path, mnist.Options())
    from_idx = mnist.load(data_dir, mnist.Options())
    assert np.array_equal(from_npz.x_train, from_idx.x_train) and np.array_equal(from_npz.y_test, from_idx.y_test)
    assert from_npz.source.endswith("mnist.npz")


def test_bad_npz_names_the_array(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(DataError, match="mnist.npz: 'x_train' has shape \\(5, 28, 28\\)"):
        mnist.load(tmp_path, mnist.Options())


def test_missing_data_errors_say_what_to_put_where(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        mnist.load(tmp_path / "nowhere", mnist.Options())
    with pytest.raises(DataError, match="no MNIST files found.*train-images-idx3-ubyte.gz"):
        mnist.load(tmp_path, mnist.Options())
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(
        DataError, match="train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz are missing"
    ):
        mnist.load(tmp_path, mnist.Options())

    import keras

    def offline():
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="download failed .*CNNLAB_DATA_DIR=DIR, with DIR/mnist/"):
        mnist.load(None, mnist.Options())


def _arrays(n_train=100, n_test=40):
    x = np.arange(n_train, dtype=np.float32)[:, None]
    xt = np.arange(n_test, dtype=np.float32)[:, None] + 1000
    return Arrays(x, x[:, 0].astype(int), xt, xt[:, 0].astype(int), "synthetic")


def test_split_is_disjoint_seeded_and_never_touches_test():
    arrays = _arrays()
    s = split(arrays, 0.2, None, None, seed=3)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (80, 20, 40)
    assert set(s.x_train[:, 0]).isdisjoint(s.x_val[:, 0])
    assert set(s.x_train[:, 0]) | set(s.x_val[:, 0]) == set(range(100))
    assert np.array_equal(s.x_test, arrays.x_test)
    assert np.array_equal(split(arrays, 0.2, None, None, seed=3).x_val, s.x_val)
    assert not np.array_equal(split(arrays, 0.2, None, None, seed=4).x_val, s.x_val)
    assert np.array_equal(s.y_val, s.x_val[:, 0].astype(int))  # labels travel with their images


def test_subsets_and_no_validation():
    s = split(_arrays(), 0.1, 30, 10, seed=0)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (27, 3, 10)
    assert set(s.x_test[:, 0]) <= set(range(1000, 1040))
    s = split(_arrays(), 0.0, None, None, seed=0)
    assert s.x_val is None and len(s.x_train) == 100
