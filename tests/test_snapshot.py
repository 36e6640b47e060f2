"""Dataset snapshots (cnnlab.data.snapshot): a loader's arrays frozen and read back as the same data — the same
fingerprint, bit for bit — narrowed only where exact; a missing or damaged entry is one line, never other data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cnnlab import data
from cnnlab.data import snapshot
from cnnlab.data.arrays import Arrays
from cnnlab.errors import DataError


@dataclass(frozen=True)
class Options:
    fold: int = 0
    vectors: str | None = "glove-6b-50d"


def kim_like(fold: int = 0) -> Arrays:
    """Kim-shaped arrays: int32 ids < 300, labels, a vocabulary list, a float32 vector matrix, notes and ints."""
    rng = np.random.default_rng(fold)
    vocabulary = ["<pad>", "<unk>"] + [f"w{i}" for i in range(298)]
    return Arrays(
        rng.integers(0, 300, (40, 12)).astype(np.int32),
        rng.integers(0, 2, 40).astype(np.int32),
        rng.integers(0, 300, (10, 12)).astype(np.int32),
        rng.integers(0, 2, 10).astype(np.int32),
        f"synthetic, fold {fold}",
        extras={
            "vocabulary": vocabulary,
            "embeddings": rng.normal(size=(300, 5)).astype(np.float32),
            "vectors": "a note (not data)",
            "num_classes": 2,
            "pad": 4,
            "missing": None,
        },
    )


def test_a_snapshot_reads_back_as_the_same_data(tmp_path):
    arrays = kim_like()
    entry = snapshot.write(tmp_path, "kim_mr", Options(), arrays, data.fingerprint)
    back = snapshot.read(tmp_path, "kim_mr", Options())
    assert data.fingerprint(back) == data.fingerprint(arrays) == entry["fingerprint"]
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(back, name).dtype == np.int32 and np.array_equal(getattr(back, name), getattr(arrays, name))
    assert back.x_val is None and back.extras["vocabulary"] == arrays.extras["vocabulary"]
    assert back.extras["embeddings"].dtype == np.float32 and back.extras["missing"] is None
    assert back.source.startswith("synthetic, fold 0 [read from a snapshot written ")


def test_folds_share_their_vocabulary_and_vectors(tmp_path):
    one, two = kim_like(0), kim_like(1)
    two = Arrays(two.x_train, two.y_train, two.x_test, two.y_test, two.source, extras=dict(one.extras))
    snapshot.write(tmp_path, "kim_mr", Options(fold=0), one, data.fingerprint)
    files = len(list((tmp_path / "arrays").iterdir()))
    snapshot.write(tmp_path, "kim_mr", Options(fold=1), two, data.fingerprint)
    # 4 fields + embeddings = 5 arrays; the second fold adds its own 4 fields only
    assert files == 5 and len(list((tmp_path / "arrays").iterdir())) == 9
    assert data.fingerprint(snapshot.read(tmp_path, "kim_mr", Options(fold=1))) == data.fingerprint(two)


@pytest.mark.parametrize(
    "array, stored",
    [
        (np.arange(0, 20000, 7, dtype=np.int32), np.uint16),  # IMDB's word ids: 14 bits in an int32
        (np.array([-3, 0, 100], dtype=np.int64), np.int8),
        (np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255), np.uint8),  # MNIST's pixels
        (np.array([0.5, 0.25], dtype=np.float32), np.float32),  # not k/255: kept as it is
        (np.array([0.0, 1.0 / 255 + 1e-7], dtype=np.float32), np.float32),  # near k/255 is not k/255
        (np.array([1.5, 2.0], dtype=np.float32), np.float32),
    ],
)
def test_arrays_are_narrowed_only_where_exact(tmp_path, array, stored):
    name = snapshot._put(tmp_path, array)
    with np.load(tmp_path / "arrays" / f"{name}.npz") as z:
        assert z["a"].dtype == stored
    back = snapshot._get(tmp_path, name)
    assert back.dtype == array.dtype and back.tobytes() == array.tobytes()


def test_a_missing_entry_names_what_the_snapshot_holds(tmp_path):
    snapshot.write(tmp_path, "kim_mr", Options(fold=0), kim_like(), data.fingerprint)
    with pytest.raises(DataError, match=r"no snapshot of kim_mr with these data.options .*\"fold\": 3.*holds kim_mr$"):
        snapshot.read(tmp_path, "kim_mr", Options(fold=3))
    with pytest.raises(DataError, match="not a snapshot folder"):
        snapshot.read(tmp_path / "nothing", "kim_mr", Options())


def test_a_damaged_array_is_an_error_not_other_data(tmp_path):
    entry = snapshot.write(tmp_path, "kim_mr", Options(), kim_like(), data.fingerprint)
    path = tmp_path / "arrays" / f"{entry['fields']['x_train']}.npz"
    small = np.load(path)["a"].copy()
    small[0, 0] += 1
    np.savez_compressed(path, a=small, how=np.array(["astype", "<i4"]))
    with pytest.raises(DataError, match="damaged"):
        snapshot.read(tmp_path, "kim_mr", Options())


def test_an_extra_that_json_would_change_is_refused(tmp_path):
    arrays = kim_like()
    arrays = Arrays(arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test, "s", extras={"shape": (1, 2)})
    with pytest.raises(DataError, match="tuple does not survive JSON"):
        snapshot.write(tmp_path, "kim_mr", Options(), arrays, data.fingerprint)


def test_load_arrays_reads_the_snapshot_when_the_variable_is_set(tmp_path, monkeypatch):
    arrays = kim_like()
    snapshot.write(tmp_path, "kim_mr", Options(), arrays, data.fingerprint)
    monkeypatch.setenv(snapshot.ENV, str(tmp_path))
    got = data.load_arrays("kim_mr", None, Options())  # no data directory at all
    assert data.fingerprint(got) == data.fingerprint(arrays)
    with pytest.raises(DataError, match="no snapshot of kim_trec"):
        data.load_arrays("kim_trec", None, Options())
