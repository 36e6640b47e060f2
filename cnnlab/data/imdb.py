"""IMDB movie reviews as integer sequences or multi-hot vectors: tokenised from the raw reviews, or Keras's imdb.npz.

Reference: lecture 002 ("1D-CNN": `imdb.load_data(num_words=10000)`, `sequence.pad_sequences(x, maxlen=500)`;
"Over- and Underfitting": the (n, 10000) multi-hot inputs of DLwP §3.4's `vectorize_sequences`); Maas et al.
2011, "Learning Word Vectors for Sentiment Analysis" (the Large Movie Review Dataset); `keras.datasets.imdb`.
Trap: the word ranks come from the *training* reviews only (a test-only word is out of vocabulary), and the
tokeniser works on UTF-8 bytes as `TextVectorization`'s TensorFlow ops do: ASCII-only lower-casing, ASCII
whitespace, so "\\x85" and "\\xa0" stay inside a word where Python's `str.lower().split()` would differ.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cnnlab.data.arrays import Arrays, Dataset
from cnnlab.errors import CnnlabError, DataError, one_line
from cnnlab.registry import DATASETS
from cnnlab.store.files import cache_dir, read_npz, write_npz

PAD, START, OOV, INDEX_FROM = 0, 1, 2, 3  # keras.datasets.imdb: padding, start_char, oov_char, index_from
RESERVED = ("<pad>", "<start>", "<oov>")
SEED = 113  # keras.datasets.imdb.load_data's shuffling seed
TARBALLS = ("aclImdb_v1_labelled.tar.gz", "aclImdb_v1.tar.gz")  # ../shared/data's copy, Stanford's original
FOLDER = "aclImdb"
KERAS_NPZ = "imdb.npz"
KERAS_WORD_INDEX = "imdb_word_index.json"
KERAS_NPZ_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"  # as keras checks it
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
# Bump when the tokeniser or the cache layout changes: the cache key includes it.
TOKENISER_VERSION = "v1"
# TextVectorization's default standardisation strips r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']' (",-\." is
# the range , - .): exactly the 32 ASCII punctuation characters of Python's string.punctuation.
STRIP = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
BREAK = re.compile(rb"<br\s*/?>", re.IGNORECASE)  # the reviews' HTML line breaks ("<br /><br />")
MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")
WHAT_RAW = (
    "DIR/aclImdb_v1_labelled.tar.gz (the labelled Large Movie Review Dataset, "
    "aclImdb/{train,test}/{pos,neg}/*.txt) or an extracted DIR/aclImdb/ folder of that layout"
)
WHAT_TO_PUT = WHAT_RAW.replace(" or an", ", an") + ", or DIR/imdb.npz (Keras's file)"


@dataclass(frozen=True)
class Options:
    """`data.options` for IMDB."""

    num_words: int = 10000  # ids 0..num_words-1 as keras.datasets.imdb.load_data(num_words=...): rarer words → 2
    maxlen: int | None = 500  # pad_sequences(maxlen=...): the LAST maxlen ids, zeros in front; null: multi_hot only
    encoding: Literal["sequences", "multi_hot"] = "sequences"  # multi_hot: float32 (n, num_words), maxlen ignored
    source: Literal["auto", "raw", "keras"] = "auto"  # auto: raw reviews if in the data dir, else Keras's imdb.npz

    def problems(self, dataset: str | None = None) -> list[tuple[str, str]]:  # dataset: one set, unused
        """(key, message) for each inconsistent option."""
        out = []
        if self.num_words < INDEX_FROM + 1:
            out.append(
                (
                    "num_words",
                    f"expected at least {INDEX_FROM + 1} (ids 0, 1, 2 are padding, start and "
                    f"out-of-vocabulary), received {self.num_words}",
                )
            )
        if self.maxlen is None and self.encoding == "sequences":
            out.append(
                (
                    "maxlen",
                    "null (no padding) is only allowed with encoding: multi_hot; sequences need a "
                    "length, e.g. 500 as in lecture 002",
                )
            )
        if self.maxlen is not None and self.maxlen < 1:
            out.append(("maxlen", f"expected a positive length or null, received {self.maxlen}"))
        return out


# --------------------------------------------------------------------------------------------------
# Tokeniser
# --------------------------------------------------------------------------------------------------


def tokenise(review: bytes) -> list[bytes]:
    """One review's words: "<br />" → space, then TextVectorization's "lower_and_strip_punctuation" and
    whitespace split, on the UTF-8 bytes (ASCII lower-casing and whitespace, as tf.strings does).

    The line breaks go first because stripping punctuation would otherwise turn every "<br />" into a word "br"
    (TextVectorization alone keeps it, and decoded imdb.npz reviews show "br br" too: a deliberate deviation).
    """
    return BREAK.sub(b" ", review).lower().translate(None, STRIP).split()


@dataclass(frozen=True)
class Corpus:
    """Tokenised reviews of both splits (in path order, unshuffled) and the training vocabulary by rank."""

    ids: dict[str, np.ndarray]  # split → flat int32 [1] + ids per review (rank + 3, all ranks; test-only words 2)
    offsets: dict[str, np.ndarray]  # split → int64 (n + 1,): review i is ids[offsets[i]:offsets[i + 1]]
    labels: dict[str, np.ndarray]  # split → int8 0 (neg) / 1 (pos)
    words: list[str]  # words[r] has rank r + 1, i.e. id r + 3

    def to_npz(self) -> dict[str, np.ndarray]:
        out = {"vocabulary": np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)}
        for split in SPLITS:
            out |= {
                f"{split}_ids": self.ids[split],
                f"{split}_offsets": self.offsets[split],
                f"{split}_labels": self.labels[split],
            }
        return out

    @classmethod
    def from_npz(cls, data: dict[str, np.ndarray]) -> Corpus | None:
        keys = {"vocabulary"} | {f"{s}_{k}" for s in SPLITS for k in ("ids", "offsets", "labels")}
        if not keys <= set(data):
            return None
        text = data["vocabulary"].tobytes().decode("utf-8")
        return cls(
            {s: data[f"{s}_ids"] for s in SPLITS},
            {s: data[f"{s}_offsets"] for s in SPLITS},
            {s: data[f"{s}_labels"] for s in SPLITS},
            text.split("\n") if text else [],
        )


def build_corpus(reviews: dict[str, list[tuple[bytes, int]]]) -> Corpus:
    """Rank the training words by count (ties: by the word's UTF-8 bytes, i.e. code-point order) and encode
    both splits with that vocabulary as [1] + (rank + 3 per word); the test reviews are never counted, and a
    word they alone contain becomes 2, like a word beyond num_words (Keras's docstring says its imdb.npz drops
    such words instead; with num_words=10000 both are out of vocabulary either way)."""
    counts: Counter[bytes] = Counter()
    for text, _ in reviews["train"]:
        counts.update(tokenise(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    index = {word: rank + INDEX_FROM for rank, (word, _) in enumerate(ranked)}
    ids, offsets, labels = {}, {}, {}
    for split in SPLITS:
        get = index.get
        docs = [[START] + [get(w, OOV) for w in tokenise(text)] for text, _ in reviews[split]]
        lens = np.fromiter((len(d) for d in docs), np.int64, len(docs))
        offsets[split] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        ids[split] = np.fromiter((i for d in docs for i in d), np.int32, int(lens.sum()))
        labels[split] = np.array([label for _, label in reviews[split]], dtype=np.int8)
    return Corpus(ids, offsets, labels, [w.decode("utf-8") for w, _ in ranked])


# --------------------------------------------------------------------------------------------------
# Raw reviews: the tarball (streamed) or the extracted folder
# --------------------------------------------------------------------------------------------------


def _check_utf8(data: bytes, where: str) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return data


def _collect(items: Iterable[tuple[str, bytes]], where: Path) -> dict[str, list[tuple[bytes, int]]]:
    """Sort (relative path, bytes) by path and group them by split, checking every folder has reviews."""
    found: dict[tuple[str, str], list[tuple[str, bytes]]] = {(s, c): [] for s in SPLITS for c in LABELS}
    for name, data in items:
        m = MEMBER.search(name)
        if m:
            found[m.group(1), m.group(2)].append((name, data))
    empty = [f"aclImdb/{s}/{c}/" for (s, c), v in found.items() if not v]
    if empty:
        raise DataError(
            f"{where}: no *.txt reviews in {', '.join(empty)}; expected "
            "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
        )
    out = {}
    for split in SPLITS:
        members = sorted((name, data, LABELS[c]) for (s, c), v in found.items() if s == split for name, data in v)
        out[split] = [(data, label) for _, data, label in members]
    return out


def read_tarball(path: Path) -> dict[str, list[tuple[bytes, int]]]:
    """The reviews of a .tar.gz, streamed member by member (nothing is extracted to disk)."""

    def members() -> Iterator[tuple[str, bytes]]:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                if info.isfile() and MEMBER.search(info.name):
                    f = tar.extractfile(info)
                    yield info.name, _check_utf8(f.read(), f"{path}: {info.name}")

    try:
        return _collect(members(), path)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{path}: not a readable .tar.gz ({one_line(exc)}); replace it with aclImdb_v1_labelled.tar.gz"
        ) from None


def folder_files(root: Path) -> list[Path]:
    """Every review file under an extracted aclImdb/ folder, sorted; a missing sub-folder is a DataError."""
    files = []
    for split in SPLITS:
        for cls in LABELS:
            folder = root / split / cls
            if not folder.is_dir():
                raise DataError(f"{folder}: missing; expected {root}/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt")
            files += sorted(p for p in folder.iterdir() if p.suffix == ".txt")
    return files


def read_folder(root: Path, files: list[Path]) -> dict[str, list[tuple[bytes, int]]]:
    items = [(f"aclImdb/{p.relative_to(root).as_posix()}", _check_utf8(p.read_bytes(), str(p))) for p in files]
    return _collect(items, root)


def content_key(kind: str, path: Path) -> tuple[str, list[Path] | None]:
    """SHA-256 of the tarball's bytes, or of every review file's relative name, size and bytes (plus the
    tokeniser version), and for a folder the file list."""
    h = hashlib.sha256(f"imdb|{kind}|{TOKENISER_VERSION}|".encode())
    files = None
    try:
        if kind == "tar":
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        else:
            files = folder_files(path)
            for p in files:
                data = p.read_bytes()
                h.update(f"{p.relative_to(path).as_posix()}|{len(data)}|".encode())
                h.update(data)
    except OSError as exc:
        raise DataError(f"{exc.filename or path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()[:20], files


def load_corpus(kind: str, path: Path) -> tuple[Corpus, bool]:
    """(corpus, from_cache): tokenised once per content, then read from .cache/data/imdb/."""
    key, files = content_key(kind, path)
    cache = cache_dir("data", "imdb", f"tokens_{TOKENISER_VERSION}_{key}.npz")
    cached = read_npz(cache)
    corpus = Corpus.from_npz(cached) if cached is not None else None
    if corpus is not None:
        return corpus, True
    reviews = read_tarball(path) if kind == "tar" else read_folder(path, files)
    corpus = build_corpus(reviews)
    write_npz(cache, **corpus.to_npz())
    return corpus, False


# --------------------------------------------------------------------------------------------------
# Keras's imdb.npz (a local copy or the download)
# --------------------------------------------------------------------------------------------------


def _ragged(seqs) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(s) for s in seqs), np.int64, len(seqs))
    flat = np.fromiter((i for s in seqs for i in s), np.int32, int(lens.sum()))
    return flat, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


def from_keras_npz(path: Path, num_words: int, verify: bool = True):
    """What `keras.datasets.imdb.load_data(num_words=...)` returns, from a local imdb.npz: the same SHA-256
    check, restricted unpickling, seed-113 shuffle, start_char 1, index_from 3 and oov_char 2."""
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != KERAS_NPZ_SHA256:
            raise DataError(
                f"{path}: SHA-256 is {digest}, expected Keras's {KERAS_NPZ_SHA256}: the file is "
                "corrupt or not keras.datasets.imdb's imdb.npz"
            )
    try:
        from keras.src.datasets.npz_utils import load_npz

        f = load_npz(str(path))
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except Exception as exc:  # zip/pickle errors of all kinds
        raise DataError(f"{path}: cannot read as Keras's imdb.npz: {one_line(exc)}") from None
    rng = np.random.RandomState(SEED)
    out = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        order = np.arange(len(x))
        rng.shuffle(order)
        seqs = [[START] + [w + INDEX_FROM for w in x[i]] for i in order]
        seqs = [[w if w < num_words else OOV for w in s] for s in seqs]
        out.append((seqs, np.asarray(y)[order]))
    return tuple(out)


def _keras_download(num_words: int):
    import keras

    try:
        return keras.datasets.imdb.load_data(num_words=num_words)
    except Exception as exc:  # no network: say exactly what to put where
        raise DataError(
            f"IMDB download through keras.datasets.imdb failed ({one_line(exc)}) and no local copy "
            f"was found: pass --data-dir DIR or set CNNLAB_DATA_DIR=DIR, with {WHAT_TO_PUT}"
        ) from None


def _keras_vocabulary(data_dir: Path | None) -> list[str] | None:
    """Keras's word index as a rank-ordered word list: DIR/imdb_word_index.json, the download without a data
    directory, else None."""

    try:
        if data_dir is not None:  # a data directory means offline: no download attempt
            path = data_dir / KERAS_WORD_INDEX
            if not path.is_file():
                return None
            index = json.loads(path.read_text(encoding="utf-8"))
        else:
            import keras

            index = keras.datasets.imdb.get_word_index()
    except Exception:  # offline or unreadable: the model builders then get no vocabulary
        return None
    words = [""] * (max(index.values(), default=0))
    for word, rank in index.items():
        words[rank - 1] = word
    return words


# --------------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------------


def shuffled(flat: np.ndarray, offsets: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ragged sequences (flat, offsets) reordered so that new review i is old review order[i]."""
    lens = np.diff(offsets)[order]
    new_offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    within = np.arange(int(new_offsets[-1])) - np.repeat(new_offsets[:-1], lens)
    return flat[np.repeat(offsets[:-1][order], lens) + within], new_offsets


def pad(flat: np.ndarray, offsets: np.ndarray, maxlen: int) -> np.ndarray:
    """`keras.utils.pad_sequences(seqs, maxlen)` with its defaults, in numpy: int32 (n, maxlen), the last
    `maxlen` ids of each sequence (truncating='pre'), zeros in front (padding='pre')."""
    n = len(offsets) - 1
    keep = np.minimum(np.diff(offsets), maxlen)
    first = np.concatenate([[0], np.cumsum(keep)])[:-1]
    within = np.arange(int(keep.sum())) - np.repeat(first, keep)
    rows = np.repeat(np.arange(n), keep)
    cols = np.repeat(maxlen - keep, keep) + within
    out = np.zeros((n, maxlen), dtype=np.int32)
    out[rows, cols] = flat[np.repeat(offsets[1:] - keep, keep) + within]
    return out


def multi_hot(flat: np.ndarray, offsets: np.ndarray, num_words: int) -> np.ndarray:
    """DLwP's `vectorize_sequences`: float32 (n, num_words), 1.0 at every id that occurs (1 and 2 included)."""
    n = len(offsets) - 1
    out = np.zeros((n, num_words), dtype=np.float32)
    out[np.repeat(np.arange(n), np.diff(offsets)), flat] = 1.0
    return out


def encode(flat: np.ndarray, offsets: np.ndarray, options: Options) -> np.ndarray:
    flat = np.where(flat < options.num_words, flat, OOV).astype(np.int32)
    if options.encoding == "multi_hot":
        return multi_hot(flat, offsets, options.num_words)
    return pad(flat, offsets, options.maxlen)


def find(data_dir: Path) -> tuple[str, Path] | None:
    """('tar', file), ('dir', aclImdb folder) or ('npz', imdb.npz): the first IMDB copy in `data_dir`."""
    if not data_dir.is_dir():
        raise DataError(
            f"{data_dir}: data directory does not exist (from --data-dir, data.data_dir or CNNLAB_DATA_DIR)"
        )
    for name in TARBALLS:
        if (data_dir / name).is_file():
            return "tar", data_dir / name
    if (data_dir / FOLDER).is_dir():
        return "dir", data_dir / FOLDER
    if (data_dir / KERAS_NPZ).is_file():
        return "npz", data_dir / KERAS_NPZ
    return None


def load(data_dir: Path | None, options: Options):
    """IMDB as `Arrays`: int32 (n, maxlen) id sequences or float32 (n, num_words) multi-hot rows, float32 0/1
    labels (pos = 1), both splits shuffled with Keras's seed 113; extras["vocabulary"] maps id → word."""

    problems = options.problems()
    if problems:
        raise CnnlabError(f"data.options.{problems[0][0]}: {problems[0][1]}")
    data_dir = None if data_dir is None else Path(data_dir)
    found = None if data_dir is None else find(data_dir)
    if options.source == "raw" and data_dir is None:
        raise DataError(
            "data.options.source 'raw' needs a data directory: pass --data-dir DIR or set "
            f"CNNLAB_DATA_DIR=DIR, with {WHAT_RAW}"
        )
    if options.source == "raw" and (found is None or found[0] == "npz"):
        raise DataError(
            f"{data_dir}: no raw IMDB reviews found (data.options.source 'raw'); expected "
            f"{WHAT_RAW.replace('DIR', str(data_dir))}"
        )
    if options.source == "auto" and data_dir is not None and found is None:
        raise DataError(f"{data_dir}: no IMDB data found; expected {WHAT_TO_PUT.replace('DIR', str(data_dir))}")
    if options.source == "keras" and found is not None and found[0] != "npz":
        found = ("npz", data_dir / KERAS_NPZ) if (data_dir / KERAS_NPZ).is_file() else None

    words: list[str] | None
    if found is not None and found[0] in ("tar", "dir"):
        kind, path = found
        corpus, cached = load_corpus(kind, path)
        rng = np.random.RandomState(SEED)
        splits = {}
        for split in SPLITS:
            order = np.arange(len(corpus.labels[split]))
            rng.shuffle(order)
            flat, offsets = shuffled(corpus.ids[split], corpus.offsets[split], order)
            splits[split] = (encode(flat, offsets, options), corpus.labels[split][order].astype(np.float32))
        words = corpus.words
        source = (
            f"{path} (raw reviews, cnnlab tokeniser: <br /> removed, lower-case, punctuation stripped; "
            f"{options.num_words:,} words of {len(words):,}{'; from cache' if cached else ''})"
        )
    else:
        if found is not None:
            (xtr, ytr), (xte, yte) = from_keras_npz(found[1], options.num_words)
            source = f"{found[1]} (keras.datasets.imdb's file, num_words={options.num_words})"
        else:
            (xtr, ytr), (xte, yte) = _keras_download(options.num_words)
            source = f"keras.datasets.imdb (num_words={options.num_words})"
        splits = {}
        for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            flat, offsets = _ragged(x)
            splits[split] = (encode(flat, offsets, options), np.asarray(y, dtype=np.float32))
        words = _keras_vocabulary(data_dir if found is not None else None)
        if words is None:
            source += "; no word index"
    if options.encoding == "multi_hot":
        source += f"; multi-hot ({options.num_words:,})"
    else:
        source += f"; padded/truncated to {options.maxlen} (pre)"
    extras = {} if words is None else {"vocabulary": list(RESERVED) + words[: options.num_words - INDEX_FROM]}
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return Arrays(x_train, y_train, x_test, y_test, source, extras=extras)


DATASETS.register(
    "imdb",
    Dataset(
        load,
        Options,
        "IMDB movie reviews (Maas et al. 2011), 25,000 train / 25,000 test, "
        "integer sequences or multi-hot vectors over the 10,000 most frequent training words",
        class_names=("negative", "positive"),
    ),
)
