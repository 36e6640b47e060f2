"""Files as cnnlab writes and reads them: atomically, readable by others, and caches that detect damage.

Reference: issue 15 (nothing lost: one atomic writer for every file; a damaged cache rebuilt, never trained on);
issue 14 (storage at the bottom: the loaders, the word vectors, the backups and the results folder all use it).
Trap: `tempfile.mkstemp` creates files 0600; a results folder on a shared teaching server must be readable, so
the writer applies the process's umask to 0666 itself before the rename.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from cnnlab.errors import CnnlabError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it


def _replace_whole(path: Path, write, suffix: str = ".tmp") -> None:
    """Write `path` through `write(file)` so that readers see the old content or the whole new one: a temporary
    file in the same folder (unique: two processes may write the same path), flushed and fsynced, made readable
    under the umask (mkstemp makes 0600: results are for others to read too), renamed over `path`; the temporary
    file never stays. OSError propagates: each caller decides what an unwritable path means."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see either the old content or the whole new content."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        _replace_whole(path, lambda f: f.write(payload))
    except OSError as exc:
        raise CnnlabError(f"{path}: cannot write results: {exc.strerror or exc}") from None


def cache_dir(*parts: str) -> Path:
    """Large derived files (trained models, decoded images, features): $CNNLAB_CACHE_DIR, else ./.cache
    (git-ignored), joined with `parts`."""
    return Path(os.environ.get("CNNLAB_CACHE_DIR") or ".cache").joinpath(*parts)


CHECKSUM = "__cnnlab_sha256__"  # the entry write_npz adds: the digest of every other array


def read_npz(path: Path) -> dict | None:
    """A cache entry's arrays, or None when it is missing or damaged (the caller rebuilds it): unreadable, cut
    short, a flipped bit (the zip's CRC), or arrays that are not the ones write_npz stored (its checksum of
    every array's name, dtype, shape and bytes: a file put there by hand, an older format, a partial copy)."""

    import numpy as np

    from cnnlab import digest  # numpy

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    stored = data.pop(CHECKSUM, None)
    if stored is None or stored.tobytes() != digest.arrays(sorted(data.items()), 64).encode():
        return None
    return data


def write_npz(path: Path, **arrays) -> None:
    """Store a cache entry atomically (temporary file + rename) with its checksum (read_npz); an unwritable
    cache is skipped, not an error."""
    import numpy as np

    from cnnlab import digest  # numpy

    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    check = np.frombuffer(digest.arrays(sorted(arrays.items()), 64).encode(), dtype=np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace_whole(path, lambda f: np.savez(f, **arrays, **{CHECKSUM: check}), ".tmp.npz")
    except OSError:
        pass
