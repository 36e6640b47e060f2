"""IMDB loading: the tokeniser, the training-only vocabulary, padding and multi-hot, the cache, clear errors."""

from __future__ import annotations

import hashlib
import io
import json
import string
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import imdb
from cnnlab.errors import CnnlabError, ConfigError, DataError

# A tiny aclImdb corpus. Training counts: great 5, bad 4, film 3, then acting, cast, it, loved, plot once each
# (ties alphabetical), so ids are great 3, bad 4, film 5, acting 6, cast 7, it 8, loved 9, plot 10.
# "zebra" is the most frequent word of the test reviews but never occurs in training.
CORPUS = {
    "train/pos/0_9.txt": "Great great GREAT film!<br /><br />Loved it.",
    "train/pos/1_8.txt": "great film, great cast",
    "train/neg/0_2.txt": "Bad film. Bad, bad acting.",
    "train/neg/1_3.txt": "bad plot",
    "test/pos/0_10.txt": "zebra zebra zebra zebra great",
    "test/neg/0_1.txt": "bad zebra film",
}
VOCAB = ["<pad>", "<start>", "<oov>", "great", "bad", "film", "acting", "cast", "it", "loved", "plot"]
# [1] + ids in path order (train/neg before train/pos); label 1 = pos
TRAIN = [([1, 4, 5, 4, 4, 6], 0), ([1, 4, 10], 0), ([1, 3, 3, 3, 5, 9, 8], 1), ([1, 3, 5, 3, 7], 1)]
TEST = [([1, 4, 2, 5], 0), ([1, 2, 2, 2, 2, 3], 1)]


def write_folder(root: Path, corpus: dict[str, str] = CORPUS) -> Path:
    for rel, text in corpus.items():
        path = root / "aclImdb" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def write_tarball(root: Path, corpus: dict[str, str] = CORPUS, name: str = imdb.TARBALLS[0]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / name, "w:gz") as tar:
        for rel, text in sorted(corpus.items(), reverse=True):  # member order must not matter
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"aclImdb/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        readme = tarfile.TarInfo("aclImdb/README")
        tar.addfile(readme, io.BytesIO(b""))
    return root


def rows(x: np.ndarray, y: np.ndarray) -> list[tuple[tuple[int, ...], int]]:
    return sorted((tuple(r), int(label)) for r, label in zip(x.tolist(), y))


def padded(seqs, maxlen):
    return sorted((tuple([0] * (maxlen - len(s[-maxlen:])) + s[-maxlen:]), label) for s, label in seqs)


@pytest.fixture(params=["folder", "tarball"])
def corpus_dir(request, tmp_path) -> Path:
    root = tmp_path / "data"
    return write_folder(root) if request.param == "folder" else write_tarball(root)


def test_tokeniser_standardises_like_text_vectorization():
    text = "Hello,World! It's<br />GREAT-ish\t(really)<BR/>ÉTÉ a\xa0b\x85c 10/10 <i>x</i>".encode()
    # "<br />" is a space; ASCII-only lower-casing and whitespace (as tf.strings), so É, \xa0 and \x85 stay
    assert imdb.tokenise(text) == [
        b"helloworld",
        b"its",
        b"greatish",
        b"really",
        "ÉtÉ".encode(),
        "a\xa0b\x85c".encode(),
        b"1010",
        b"ixi",
    ]
    assert set(imdb.STRIP.decode()) == set(string.punctuation)


def test_tokeniser_matches_keras_text_vectorization():
    pytest.importorskip("tensorflow")
    import keras

    texts = [
        'Hello,World! It\'s GREAT-ish\t(really)  ÉTÉ a\xa0b\x85c 10/10 [x] {y} ~z~ a_b c\\d "q" `r`',
        "The movie's end... was -- well -- ok?! 7/10; e-mail me @ foo#bar $5 100% & more",
    ]
    layer = keras.layers.TextVectorization()
    layer.adapt(texts)
    expected = set(layer.get_vocabulary()) - {"", "[UNK]"}
    got = {w.decode("utf-8") for t in texts for w in imdb.tokenise(t.encode("utf-8"))}
    assert got == expected


def test_vocabulary_ids_and_reserved_indices(corpus_dir):
    arrays = imdb.load(corpus_dir, imdb.Options(num_words=100, maxlen=8))
    assert arrays.extras["vocabulary"] == VOCAB  # fewer words than num_words: the list stops at the last one
    assert rows(arrays.x_train, arrays.y_train) == padded(TRAIN, 8)
    assert rows(arrays.x_test, arrays.y_test) == padded(TEST, 8)
    assert arrays.x_train.dtype == np.int32 and arrays.y_train.dtype == np.float32
    assert (arrays.x_train[:, -1] != 0).all() and (arrays.x_train == 1).sum() == 4  # one start_char per review
    assert "raw reviews" in arrays.source and "100 words of 8" in arrays.source


def test_small_num_words_maps_rare_words_to_oov(corpus_dir):
    arrays = imdb.load(corpus_dir, imdb.Options(num_words=5, maxlen=7))
    assert arrays.extras["vocabulary"] == VOCAB[:5]
    oov = [([i if i < 5 else 2 for i in s], label) for s, label in TRAIN]
    assert rows(arrays.x_train, arrays.y_train) == padded(oov, 7)
    assert arrays.x_train.max() == 4 and arrays.x_test.max() == 4


def test_test_reviews_never_enter_the_vocabulary(tmp_path):
    other = dict(CORPUS, **{"test/pos/0_10.txt": "plot plot plot plot zebra yak", "test/neg/0_1.txt": "yak yak"})
    a = imdb.load(write_folder(tmp_path / "a"), imdb.Options(num_words=100, maxlen=8))
    b = imdb.load(write_folder(tmp_path / "b", other), imdb.Options(num_words=100, maxlen=8))
    assert "zebra" not in a.extras["vocabulary"] and "yak" not in b.extras["vocabulary"]
    assert a.extras["vocabulary"] == b.extras["vocabulary"] == VOCAB  # "plot" stays rank 8 (id 10)
    assert np.array_equal(a.x_train, b.x_train)
    assert rows(b.x_test, b.y_test) == padded([([1, 2, 2], 0), ([1, 10, 10, 10, 10, 2, 2], 1)], 8)


def test_truncation_keeps_the_last_tokens_and_pads_in_front(corpus_dir):
    arrays = imdb.load(corpus_dir, imdb.Options(num_words=100, maxlen=3))
    assert rows(arrays.x_train, arrays.y_train) == sorted(
        [((4, 4, 6), 0), ((1, 4, 10), 0), ((5, 9, 8), 1), ((5, 3, 7), 1)]
    )
    assert rows(arrays.x_test, arrays.y_test) == sorted([((4, 2, 5), 0), ((2, 2, 3), 1)])


def test_pad_matches_keras_pad_sequences():
    import keras

    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, size=n)) for n in [0, 1, 5, 9, 10, 11, 30]]
    flat = np.array([i for s in seqs for i in s], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    for maxlen in (1, 10, 40):
        assert np.array_equal(imdb.pad(flat, offsets, maxlen), keras.utils.pad_sequences(seqs, maxlen=maxlen))


def test_multi_hot_shape_and_positions(corpus_dir):
    arrays = imdb.load(corpus_dir, imdb.Options(num_words=6, encoding="multi_hot", maxlen=None))
    assert arrays.x_train.shape == (4, 6) and arrays.x_test.shape == (2, 6) and arrays.x_train.dtype == np.float32
    expected = sorted(
        (tuple(float(i in {2 if t >= 6 else t for t in s}) for i in range(6)), label) for s, label in TRAIN
    )
    assert rows(arrays.x_train, arrays.y_train) == expected
    assert (arrays.x_train[:, 1] == 1).all() and arrays.x_train[:, 0].sum() == 0  # start marked, padding never
    assert "multi-hot" in arrays.source


def test_order_is_path_order_shuffled_with_keras_seed(tmp_path):
    arrays = imdb.load(write_folder(tmp_path), imdb.Options(num_words=100, maxlen=7))
    rng = np.random.RandomState(113)
    for x, y, split in ((arrays.x_train, arrays.y_train, TRAIN), (arrays.x_test, arrays.y_test, TEST)):
        order = np.arange(len(split))
        rng.shuffle(order)
        assert [tuple(r) for r in x.tolist()] == [padded([split[i]], 7)[0][0] for i in order]
        assert y.tolist() == [split[i][1] for i in order]


def test_tarball_and_folder_agree(tmp_path):
    a = imdb.load(write_folder(tmp_path / "a"), imdb.Options())
    b = imdb.load(write_tarball(tmp_path / "b"), imdb.Options())
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (4, 500) and a.extras == b.extras
    assert b.source.startswith(str(tmp_path / "b" / imdb.TARBALLS[0]))


def test_second_load_reads_the_cache_and_a_changed_file_invalidates_it(corpus_dir, monkeypatch):
    first = imdb.load(corpus_dir, imdb.Options())
    calls = []
    real = imdb.tokenise
    monkeypatch.setattr(imdb, "tokenise", lambda text: calls.append(1) or real(text))
    again = imdb.load(corpus_dir, imdb.Options(num_words=5))  # one cache entry serves every num_words
    assert not calls and "from cache" in again.source and "from cache" not in first.source
    assert again.extras["vocabulary"] == VOCAB[:5]
    changed = dict(CORPUS, **{"train/neg/1_3.txt": "bad plot plot plot plot plot plot"})  # plot 6 > great 5
    if (corpus_dir / "aclImdb").is_dir():
        write_folder(corpus_dir, changed)
    else:
        write_tarball(corpus_dir, changed)
    fresh = imdb.load(corpus_dir, imdb.Options(num_words=100))
    assert calls and "from cache" not in fresh.source
    assert fresh.extras["vocabulary"][3:5] == ["plot", "great"]


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    root = write_folder(tmp_path / "data")
    imdb.load(root, imdb.Options())
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"garbage")
    again = imdb.load(root, imdb.Options(num_words=100, maxlen=8))
    assert "from cache" not in again.source and rows(again.x_train, again.y_train) == padded(TRAIN, 8)


def one_line_error(fn, *fragments: str) -> str:
    with pytest.raises(DataError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_directory_and_empty_directory(tmp_path):
    one_line_error(lambda: imdb.load(tmp_path / "nope", imdb.Options()), str(tmp_path / "nope"), "does not exist")
    one_line_error(
        lambda: imdb.load(tmp_path, imdb.Options()),
        str(tmp_path),
        "no IMDB data found",
        f"{tmp_path}/aclImdb_v1_labelled.tar.gz",
        f"{tmp_path}/aclImdb/",
        f"{tmp_path}/imdb.npz",
    )
    one_line_error(lambda: imdb.load(None, imdb.Options(source="raw")), "needs a data directory")
    (tmp_path / "imdb.npz").write_bytes(b"x")
    one_line_error(lambda: imdb.load(tmp_path, imdb.Options(source="raw")), "no raw IMDB reviews")


def test_corrupt_or_incomplete_tarball(tmp_path):
    path = write_tarball(tmp_path) / imdb.TARBALLS[0]
    good = path.read_bytes()
    for bad in (b"not a tarball at all", good[: len(good) // 2]):
        path.write_bytes(bad)
        one_line_error(lambda: imdb.load(tmp_path, imdb.Options()), str(path))
    write_tarball(tmp_path, {k: v for k, v in CORPUS.items() if not k.startswith("test/neg")})
    one_line_error(lambda: imdb.load(tmp_path, imdb.Options()), str(path), "aclImdb/test/neg/")


def test_incomplete_folder_and_bad_encoding(tmp_path):
    root = write_folder(tmp_path)
    bad = root / "aclImdb" / "test" / "pos" / "0_10.txt"
    bad.write_bytes(b"caf\xe9 latin-1")
    one_line_error(lambda: imdb.load(root, imdb.Options()), str(bad), "not UTF-8")
    for f in (root / "aclImdb" / "test" / "pos").iterdir():
        f.unlink()
    (root / "aclImdb" / "test" / "pos").rmdir()
    one_line_error(lambda: imdb.load(root, imdb.Options()), str(root / "aclImdb" / "test" / "pos"), "missing")


def test_option_rules():
    from cnnlab.config.experiment import load

    assert imdb.Options().problems() == []
    assert imdb.Options(maxlen=None, encoding="multi_hot").problems() == []
    ((key, message),) = imdb.Options(maxlen=None).problems()
    assert key == "maxlen" and "only allowed with encoding" in message
    assert [k for k, _ in imdb.Options(num_words=3).problems("imdb")] == ["num_words"]
    # the config loader reports them at their key, naming the file and the override
    with pytest.raises(ConfigError, match=r"imdb_conv1d\.yaml .*: data\.options\.maxlen: null .*only allowed with"):
        load("imdb_conv1d", ["data.options.maxlen=null"])
    with pytest.raises(ConfigError, match="data.options.num_words: expected at least 4"):
        load("imdb_conv1d", ["data.options.num_words=3"])
    with pytest.raises(CnnlabError, match="data.options.maxlen"):
        imdb.load(None, imdb.Options(maxlen=0))


FAKE_X_TRAIN = [[5, 1, 9], [2, 2], [7, 3, 4, 1], [8]]
FAKE_X_TEST = [[1, 6], [9, 9, 9]]


def write_fake_npz(path: Path) -> Path:
    ragged = lambda seqs: np.array([list(s) for s in seqs] + [None], dtype=object)[:-1]  # noqa: E731
    np.savez(
        path,
        x_train=ragged(FAKE_X_TRAIN),
        y_train=np.array([1, 0, 1, 0]),
        x_test=ragged(FAKE_X_TEST),
        y_test=np.array([0, 1]),
    )
    return path


def test_keras_npz_reader_matches_keras_load_data(tmp_path, monkeypatch):
    import keras

    path = write_fake_npz(tmp_path / "imdb.npz")
    monkeypatch.setattr("keras.src.datasets.imdb.get_file", lambda *a, **k: str(path))
    for num_words in (6, 10, 20):
        (kx, ky), (kxt, kyt) = keras.datasets.imdb.load_data(num_words=num_words)
        (x, y), (xt, yt) = imdb.from_keras_npz(path, num_words, verify=False)
        assert [list(s) for s in kx] == x and [list(s) for s in kxt] == xt
        assert np.array_equal(ky, y) and np.array_equal(kyt, yt)


def test_keras_npz_in_data_dir(tmp_path, monkeypatch):
    path = write_fake_npz(tmp_path / "imdb.npz")
    one_line_error(lambda: imdb.load(tmp_path, imdb.Options()), str(path), "SHA-256")
    monkeypatch.setattr(imdb, "KERAS_NPZ_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    arrays = imdb.load(tmp_path, imdb.Options(num_words=10, maxlen=4))
    assert arrays.x_train.shape == (4, 4) and arrays.y_train.dtype == np.float32 and arrays.extras == {}
    assert sorted(map(tuple, arrays.x_train.tolist())) == sorted(
        [(1, 8, 4, 2), (0, 1, 5, 5), (2, 6, 7, 4), (0, 0, 1, 2)]
    )  # ids + 3, >= 10 → 2, padded
    assert "imdb.npz" in arrays.source and "no word index" in arrays.source
    (tmp_path / "imdb_word_index.json").write_text(json.dumps({"the": 1, "and": 2, "a": 3}))
    arrays = imdb.load(tmp_path, imdb.Options(num_words=5, source="keras"))
    assert arrays.extras["vocabulary"] == ["<pad>", "<start>", "<oov>", "the", "and"]


def test_no_data_dir_downloads_through_keras(monkeypatch):
    fake = (([[1, 14, 3]], np.array([1])), ([[1, 2]], np.array([0])))
    monkeypatch.setattr(imdb, "_keras_download", lambda num_words: fake)
    monkeypatch.setattr(imdb, "_keras_vocabulary", lambda data_dir: None)
    arrays = imdb.load(None, imdb.Options(maxlen=4))
    assert arrays.x_train.tolist() == [[0, 1, 14, 3]] and arrays.y_test.tolist() == [0.0]
    assert arrays.source.startswith("keras.datasets.imdb (num_words=10000)")


@pytest.mark.slow
def test_real_tarball(data_dir):
    if not (data_dir / imdb.TARBALLS[0]).is_file():
        pytest.skip(f"{data_dir / imdb.TARBALLS[0]} not found")
    arrays = imdb.load(data_dir, imdb.Options())
    assert arrays.x_train.shape == (25000, 500) and arrays.x_test.shape == (25000, 500)
    assert arrays.y_train.sum() == 12500 and arrays.y_test.sum() == 12500
    assert 0.4 < arrays.y_train[:1000].mean() < 0.6  # shuffled: classes mixed
    assert arrays.x_train.max() == 9999 and (arrays.x_train[:, -1] != 0).all()
    vocabulary = arrays.extras["vocabulary"]
    assert len(vocabulary) == 10000 and vocabulary[3:8] == ["the", "and", "a", "of", "to"]
    assert "br" not in vocabulary[:1000]
