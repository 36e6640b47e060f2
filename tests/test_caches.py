"""Fault injection into every npz cache (decoded images, tokenised reviews, word-vector look-ups, extracted
features): whatever happened to an entry, the next load detects it, rebuilds it and returns the same arrays."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from cnnlab.store import files as store

CUTS = ["empty", "half", "tail", "flipped byte", "garbage", "no checksum", "altered array", "other keys"]


def corrupt(path, how: str) -> None:
    """Damage one npz entry the way `how` says; each is a distinct failure a cache meets in practice."""
    raw = path.read_bytes()
    if how == "empty":  # a disk that filled up
        path.write_bytes(b"")
    elif how == "half":  # a copy cut short
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "tail":  # the zip's central directory lost
        path.write_bytes(raw[:-10])
    elif how == "flipped byte":  # a bit rot in the middle of the largest array's data (the zip's CRC)
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            info = max(z.infolist(), key=lambda i: i.compress_size)
        start = (
            info.header_offset
            + 30
            + int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
            + int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
        )  # past the local header
        mid = start + info.compress_size // 2
        path.write_bytes(raw[:mid] + bytes([raw[mid] ^ 0xFF]) + raw[mid + 1 :])
    elif how == "garbage":
        path.write_bytes(b"not an npz at all" * 10)
    else:
        with np.load(io.BytesIO(raw)) as f:
            data = {k: f[k] for k in f.files}
        if how == "no checksum":  # the same arrays written by hand or by an older cnnlab
            data.pop(store.CHECKSUM)
        elif how == "altered array":  # a consistent zip whose content is not what was stored
            key = max((k for k in data if k != store.CHECKSUM), key=lambda k: data[k].size)
            data[key] = data[key].copy()
            data[key].reshape(-1)[-1] += 1
        else:  # "other keys": an entry of another format under this name
            data = {"something": np.zeros(3)}
        buf = io.BytesIO()
        np.savez(buf, **data)
        path.write_bytes(buf.getvalue())


def test_every_cut_is_a_different_file_that_read_npz_refuses(tmp_path):
    entry = tmp_path / "e.npz"
    arrays = {"x": np.arange(1000, dtype="float32").reshape(10, 100), "y": np.arange(10)}
    store.write_npz(entry, **arrays)
    assert set(store.read_npz(entry)) == {"x", "y"}  # the checksum is not handed back
    original = entry.read_bytes()
    for how in CUTS:
        entry.write_bytes(original)
        corrupt(entry, how)
        assert entry.read_bytes() != original and store.read_npz(entry) is None, how
    with zipfile.ZipFile(io.BytesIO(original)) as z:  # the stored layout numpy itself reads
        assert sorted(z.namelist()) == sorted([f"{store.CHECKSUM}.npy", "x.npy", "y.npy"])


def _entries(cache_root):
    found = sorted(p for p in cache_root.rglob("*.npz") if not p.name.startswith("."))
    assert found, "the first load wrote no cache entry"
    return found


def _check_rebuilt(load, same, cache_root):
    """load() once; then per cut: damage every entry, load again (rebuilt: equal arrays, not from the cache),
    and a third load reads the rebuilt entry from the cache."""
    first, from_cache = load()
    assert not from_cache
    entries = _entries(cache_root)
    for how in CUTS:
        for entry in entries:
            corrupt(entry, how)
        again, from_cache = load()
        assert not from_cache and same(again, first), how
        third, from_cache = load()
        assert from_cache and same(third, first), how


def test_decoded_images(tmp_path):
    from test_images import make_folder

    from cnnlab.data import cats_dogs

    make_folder(tmp_path)
    options = cats_dogs.Options(image_size=(16, 12))

    def load():
        a = cats_dogs.load(tmp_path, options)
        return a, "from cache" in a.source

    _check_rebuilt(
        load,
        lambda a, b: all(
            np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_val", "x_test")
        ),
        tmp_path / "cache",
    )


def test_tokenised_reviews(tmp_path):
    from test_imdb import write_folder

    from cnnlab.data import imdb

    root = write_folder(tmp_path / "data")

    def load():
        a = imdb.load(root, imdb.Options(num_words=100, maxlen=8))
        return a, "from cache" in a.source

    _check_rebuilt(
        load,
        lambda a, b: (
            np.array_equal(a.x_train, b.x_train)
            and np.array_equal(a.x_test, b.x_test)
            and a.extras["vocabulary"] == b.extras["vocabulary"]
        ),
        tmp_path / "cache",
    )


def test_word_vector_lookups(tmp_path):
    from test_vectors import make

    from cnnlab.data import vectors

    source = make(tmp_path / "vecs.txt")
    words = ["good", "café", "absent"]

    def load():
        found = vectors.lookup(str(source), words)
        return found, found.cached

    _check_rebuilt(
        load,
        lambda a, b: np.array_equal(a.matrix, b.matrix) and np.array_equal(a.found, b.found),
        tmp_path / "cache" / "vectors",
    )


def test_extracted_features(tmp_path):
    from test_pretrained import _tiny_splits

    from cnnlab.config.experiment import ClassSpec, Ctx
    from cnnlab.train import features

    specs = (ClassSpec("AveragePooling2D", {"pool_size": 4}),)  # no weights: the same features every time
    splits = _tiny_splits()

    def load():
        return features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)

    _check_rebuilt(
        load,
        lambda a, b: all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "x_val", "x_test")),
        tmp_path / "cache" / "features",
    )
