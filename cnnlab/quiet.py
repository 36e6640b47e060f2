"""Silence the native start-up lines of TensorFlow's import (absl's pre-init notice, the CUDA stub probe, the
CPU-feature banner) for every cnnlab command and child process, keeping anything else it prints.

Reference: the project's reliability issue (a user error must be one line; `make run` printed six lines of
noise first). TF_CPP_MIN_LOG_LEVEL=3 does not stop them in TensorFlow 2.21: absl writes them from C++ straight
to file descriptor 2 before that variable is read, so neither Python's logging nor sys.stderr can filter them.
Trap: the import is lazy (`cnnlab list` must not pay for TensorFlow), so the filter is an import hook, not an
import at start-up: the first `import tensorflow` — wherever Keras or cnnlab does it — runs with fd 2 sent to a
temporary file, whose lines are replayed afterwards except the known noise; if the import fails, everything is
replayed, so a broken installation still says why.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from contextlib import contextmanager

QUIET_MODULES = ("tensorflow",)
NOISE = re.compile(
    "|".join(
        [
            r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
            r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
            r"cpu_feature_guard\.cc:\d+\]",
            r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$",
            r"oneDNN custom operations are on",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"TF-TRT Warning: Could not find TensorRT",
            r"computation_placer\.cc:\d+\] computation placer already registered",
            r"^E0000 00:00:\d+\.\d+\s+\d+ cuda_(dnn|fft|blas)\.cc",
        ]
    )
)


def keep(text: str) -> str:
    """`text` without its noise lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.search(line.rstrip("\n")))


@contextmanager
def native_stderr_filtered():
    """Send fd 2 to a temporary file for the duration; then write back what is not noise (all of it on error)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded, closed): nothing to filter
        yield
        return
    failed = False
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            shown = text if failed else keep(text)
            if shown:
                sys.stderr.write(shown)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._inner  # the module sees its real loader (resources, reloads)
        with native_stderr_filtered():
            self._inner.exec_module(module)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in QUIET_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Quiet the first import of TensorFlow in this process (idempotent); call before anything imports it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's own C++ logging, read at its load
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


@contextmanager
def redirected(out: str, err: str):
    """File descriptors 1 and 2 (and sys.stdout/stderr above them) into two files, restored afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(out, "ab") as fo, open(err, "ab") as fe:
        os.dup2(fo.fileno(), 1)
        os.dup2(fe.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
