"""word2vec trained here on the 50,000 IMDB reviews: an offline stand-in for Kim's GoogleNews vectors.

Reference: Mikolov et al. 2013 (arXiv:1301.3781, 1310.4546) and the word2vec tool's defaults (CBOW, window 5,
negative 5, sample 1e-3, min_count 5), here with gensim's `Word2Vec`; Kim 2014 (arXiv:1408.5882) §3.1 used the
300-d GoogleNews vectors (100 billion words), which cannot be downloaded on these machines; Maas et al. 2011
(the reviews: train + test, labels unused, read from `aclImdb_v1_labelled.tar.gz` without extracting it).
Trap: the reviews' HTML line breaks must go *before* Kim's `clean_str`, which would otherwise keep every
"<br />" as a word "br"; and gensim with more than one worker thread is not bit-reproducible even with a seed:
two trainings with 2 workers gave two different vector sets (issue 18, 2-core AMD EPYC), so every session's
machine, whose cache starts empty, made other vectors — other data, by the data fingerprint — and the
word2vec runs of earlier sessions went stale. One worker (WORKERS) gives the same bytes in every process
(measured: two processes, PYTHONHASHSEED 1 and 2, identical vectors), and the worker count is in the cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cnnlab.data.imdb import TARBALLS  # the IMDB tarballs the vectors are trained on: one list
from cnnlab.data.text import clean_str
from cnnlab.errors import DataError, one_line
from cnnlab.paths import data_dir_from_env
from cnnlab.store.files import cache_dir

NAME = "word2vec-imdb-300"
MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/[^/]+\.txt$")  # never unsup/: the same 50,000
BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# The word2vec tool's defaults (CBOW), 300-d as GoogleNews; seed and workers as asked for on 2 CPU cores.
PARAMS = {
    "vector_size": 300,
    "sg": 0,
    "window": 5,
    "negative": 5,
    "hs": 0,
    "sample": 1e-3,
    "min_count": 5,
    "epochs": 5,
    "alpha": 0.025,
    "seed": 1,
}
VERSION = "v1"  # bump when the tokeniser or the cache layout changes
WORKERS = 1  # gensim's worker threads: 1 is bit-reproducible, 2 is not (the module's trap)


def find_tarball(data_dir: Path | None) -> Path:
    """The IMDB tarball in `data_dir` (else $CNNLAB_DATA_DIR); a one-line DataError saying what to put where."""
    data_dir = data_dir if data_dir is not None else data_dir_from_env()
    if data_dir is None:
        raise DataError(
            f"word vectors '{NAME}' are trained on the IMDB reviews: pass --data-dir DIR or set "
            f"CNNLAB_DATA_DIR=DIR, with DIR/{TARBALLS[0]}"
        )
    for name in TARBALLS:
        if (Path(data_dir) / name).is_file():
            return Path(data_dir) / name
    raise DataError(f"{data_dir}: no {TARBALLS[0]} (the labelled Large Movie Review Dataset) to train '{NAME}' on")


def cache_key(tarball: Path, params: dict | None = None, workers: int = WORKERS) -> str:
    """SHA-256 of the tarball's bytes, the training parameters, the worker count and the tokeniser version."""
    h = hashlib.sha256(f"{VERSION}|{json.dumps(params or PARAMS, sort_keys=True)}|workers={workers}|".encode())
    try:
        with open(tarball, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"{tarball}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()[:16]


def reviews(tarball: Path) -> Iterator[str]:
    """Every train and test review's text (labels unused), streamed from the .tar.gz in archive order."""
    try:
        with tarfile.open(tarball, "r|gz") as tar:
            for info in tar:
                if info.isfile() and MEMBER.search(info.name):
                    yield tar.extractfile(info).read().decode("utf-8", errors="replace")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{tarball}: not a readable .tar.gz ({one_line(exc)})") from None


def tokens(review: str) -> list[str]:
    """A review as Kim's datasets are tokenised: "<br />" → space, then `clean_str` (lower-cased; "it 's",
    "n't", punctuation , ! ? ( ) as words)."""
    return clean_str(BREAK.sub(" ", review)).split()


def folder(tarball: Path, params: dict | None = None, workers: int = WORKERS) -> Path:
    return cache_dir("vectors", f"{NAME}-{cache_key(tarball, params, workers)}")


def load_cached(path: Path) -> tuple[list[str], np.ndarray] | None:
    """(words, float32 (V, 300) memory-mapped) from a cache folder, or None when missing or damaged."""
    try:
        words = (path / "words.txt").read_text(encoding="utf-8").split("\n")
        matrix = np.load(path / "vectors.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    return (words, matrix) if matrix.ndim == 2 and len(words) == matrix.shape[0] else None


def train(
    tarball: Path,
    *,
    workers: int = WORKERS,
    params: dict | None = None,
    expected_reviews: int | None = 50_000,
    log=None,
) -> Path:
    """Train gensim's Word2Vec on the tokenised reviews and store words.txt + vectors.npy + info.json in
    .cache/vectors/word2vec-imdb-300-<key>/ (written to a temporary folder, then renamed into place)."""
    try:
        import gensim
        from gensim.models import Word2Vec
    except ImportError:
        raise DataError(f"word vectors '{NAME}' are trained with gensim: pip install gensim") from None
    params = dict(params or PARAMS)
    out = folder(tarball, params, workers)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        corpus = tmp / "corpus.txt"  # one review per line: gensim's corpus_file mode scales across threads
        n_docs = n_tokens = 0
        with open(corpus, "w", encoding="utf-8") as f:
            for text in reviews(tarball):
                words = tokens(text)
                f.write(" ".join(words) + "\n")
                n_docs, n_tokens = n_docs + 1, n_tokens + len(words)
        if expected_reviews is not None and n_docs != expected_reviews:
            raise DataError(
                f"{tarball}: {n_docs:,} reviews in aclImdb/{{train,test}}/{{pos,neg}}/, expected {expected_reviews:,}"
            )
        t1 = time.perf_counter()
        if log:
            log(f"tokenised {n_docs:,} reviews ({n_tokens:,} tokens) in {t1 - t0:.1f} s; training word2vec ...")
        model = Word2Vec(corpus_file=str(corpus), workers=workers, **params)
        t2 = time.perf_counter()
        words = list(model.wv.index_to_key)
        np.save(tmp / "vectors.npy", np.asarray(model.wv.vectors, dtype=np.float32))
        (tmp / "words.txt").write_text("\n".join(words), encoding="utf-8")
        info = {
            "name": NAME,
            "tarball": str(tarball),
            "reviews": n_docs,
            "tokens": n_tokens,
            "vocabulary": len(words),
            "params": params,
            "workers": workers,
            "gensim": gensim.__version__,
            "tokenise_seconds": round(t1 - t0, 1),
            "train_seconds": round(t2 - t1, 1),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        corpus.unlink()
        if out.exists():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log:
        log(f"{NAME}: {len(words):,} words, trained in {t2 - t1:.1f} s → {out}")
    return out


def load_or_train(data_dir: Path | None, *, workers: int = WORKERS, log=None) -> tuple[list[str], np.ndarray]:
    """(words, (V, 300) float32) of word2vec-imdb-300: from the cache, else trained once (minutes on 2 cores)."""
    tarball = find_tarball(data_dir)
    cached = load_cached(folder(tarball, workers=workers))
    if cached is None:
        if log is None:
            log = lambda msg: print(f"cnnlab: {msg}", flush=True)  # noqa: E731
        log(f"training {NAME} on {tarball.name} once (cached afterwards; several minutes on 2 CPU cores)")
        cached = load_cached(train(tarball, workers=workers, log=log))
        if cached is None:
            raise DataError(f"{NAME}: the trained vectors could not be read back from the cache")
    return cached


if __name__ == "__main__":  # python -m cnnlab.data.word2vec [DATA_DIR]: train (or find) the cached vectors
    import sys

    start = time.perf_counter()
    vocab, matrix = load_or_train(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(f"{NAME}: {len(vocab):,} words × {matrix.shape[1]} ({time.perf_counter() - start:.1f} s)")
