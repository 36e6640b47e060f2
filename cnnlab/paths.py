"""Where cnnlab reads and writes, from the command line or the CNNLAB_* environment: one place for each.

Reference: the README's "Results layout"; issue 14 (the layered package).
Trap: the results root is needed by the batch and the calculators as well as the CLI; taking it from the CLI
module made the batch import the command line above it (an import cycle).
"""

from __future__ import annotations

import argparse
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


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from environment variable `name` (negative: 0), else `default`; anything else is
    a one-line CnnlabError naming the variable."""
    text = os.environ.get(name, "").strip()
    try:
        return max(0.0, float(text)) if text else default
    except ValueError:
        raise CnnlabError(f"{name}: expected a number of seconds, received {text!r}") from None
