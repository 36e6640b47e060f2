"""Where cnnlab reads and writes, from the command line or the CNNLAB_* environment: one place for each.

Reference: the README's "Results layout"; issue 14 (the layered package).
Trap: the results root is needed by the batch and the calculators as well as the CLI; taking it from the CLI
module made the batch import the command line above it (an import cycle).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

from cnnlab.errors import CnnlabError


def results_root(args=None) -> Path:
    """--results-dir, else $CNNLAB_RESULTS_DIR, else ./results."""
    given = getattr(args, "results_dir", None) if args is not None else None
    return Path(given or os.environ.get("CNNLAB_RESULTS_DIR") or "results")


def data_dir_from_env() -> Path | None:
    """$CNNLAB_DATA_DIR as a path (None when unset or blank): the one reader of that variable."""
    text = os.environ.get("CNNLAB_DATA_DIR", "").strip()
    return Path(text) if text else None


def existing_dir(text: str) -> str:
    """The argparse type of every --data-dir: a folder that exists, checked as the command line is read, before
    anything imports TensorFlow (a missing path or a file is the user's one-line error, not seconds later)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: data directory does not exist")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a directory (a data directory is a folder of datasets)")
    return text


def existing_file(text: str) -> str:
    """The argparse type of a file argument (reproduce --jobs): a file that exists, checked as the line is read."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a file")
    return text


BACKENDS = ("tensorflow", "jax", "torch")  # what every experiment runs under (the README's backends)
_BACKEND_PACKAGE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def keras_backend_setting() -> tuple[str, str]:
    """(backend, where it was read): KERAS_BACKEND, else ~/.keras/keras.json's "backend" ($KERAS_HOME's), else
    tensorflow, as Keras itself reads them, without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"], "KERAS_BACKEND"
    home = Path(os.environ.get("KERAS_HOME", Path(os.path.expanduser("~")) / ".keras"))
    try:
        found = json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow", "Keras's default"
    return (found, f"{home / 'keras.json'}: backend") if isinstance(found, str) else ("tensorflow", "Keras's default")


def check_environment(args=None) -> None:
    """The environment's settings, checked before anything imports Keras (issue 15: a user's mistake is one
    line): the Keras backend is one cnnlab runs under and is installed; the cache and results folders, where
    given, are not files. Trap: Keras reads KERAS_BACKEND on import and raises a bare ValueError ('Unable to
    import backend : foo') or a ModuleNotFoundError from deep in its tree utilities."""
    backend, where = keras_backend_setting()
    if backend not in BACKENDS:
        raise CnnlabError(f"{where}: {backend!r} is not a backend cnnlab runs under ({', '.join(BACKENDS)})")
    if importlib.util.find_spec(_BACKEND_PACKAGE[backend]) is None:
        raise CnnlabError(
            f"{where}: backend {backend!r} is not installed in this environment "
            f"(pip install {'torch==2.13.0' if backend == 'torch' else backend}, or choose another backend)"
        )
    given = getattr(args, "results_dir", None) if args is not None else None
    for name, value in (
        ("--results-dir" if given else "CNNLAB_RESULTS_DIR", given or os.environ.get("CNNLAB_RESULTS_DIR")),
        ("CNNLAB_CACHE_DIR", os.environ.get("CNNLAB_CACHE_DIR")),
    ):
        if value:
            _check_folder(name, Path(value).expanduser())


def _check_folder(name: str, path: Path) -> None:
    """`path` is a folder or can become one: neither it nor the nearest part of it that exists is a file."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise CnnlabError(
                    f"{name}: {path} cannot be a folder: {part} is a file"
                    if part != path
                    else f"{name}: {path} is a file, not a folder"
                )
            return


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from environment variable `name` (negative: 0), else `default`; anything else is
    a one-line CnnlabError naming the variable."""
    text = os.environ.get(name, "").strip()
    try:
        return max(0.0, float(text)) if text else default
    except ValueError:
        raise CnnlabError(f"{name}: expected a number of seconds, received {text!r}") from None
