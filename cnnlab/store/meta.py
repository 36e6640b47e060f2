"""Run metadata: versions, backend, device, machine and git commit, so a delta between two runs can be explained.

Reference: timm's results/*.csv (every number with its environment).
Trap: only the active backend's library is imported; asking TensorFlow for its GPUs under the JAX backend
would import TensorFlow on a machine that may not have it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from cnnlab import paths


def utc_now() -> str:
    """Now in UTC as ISO 8601 to the second ('2026-12-02T05:36:28Z'): every recorded start and finish time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _tensorflow_devices() -> list[str]:
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        out.append(details.get("device_name", gpu.name))
    return out


def _jax_devices() -> list[str]:
    import jax

    return [d.device_kind for d in jax.devices() if d.platform != "cpu"]


def _torch_devices() -> list[str]:
    import torch

    return (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )


ACCELERATORS = {"tensorflow": _tensorflow_devices, "jax": _jax_devices, "torch": _torch_devices}
BACKEND_DIST = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device() -> str:
    """'GPU: NVIDIA H100 ...' when the backend sees an accelerator, else 'CPU: <model> (<n> cores)'."""
    import keras

    try:
        gpus = ACCELERATORS.get(keras.backend.backend(), lambda: [])()
    except Exception:  # a backend without GPU support compiled in
        gpus = []
    if gpus:
        return f"GPU: {gpus[0]}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"


def git_commit(root: Path) -> str | None:
    """The commit of the code that ran, with '-dirty' when the working tree had changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


PACKAGE = Path(__file__).resolve().parent.parent  # cnnlab/


def _digest(path: Path) -> str | None:

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _process_start() -> float:
    """When this process started (Linux: /proc), else now: the time before which loaded code was on disk."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])  # 10 ms resolution (btime: whole seconds)
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


_PROCESS_START = _process_start()
_DIGESTS: dict[str, str] = {}  # file → digest, once per process: the code it loaded does not change under it
EDITED = "edited-after-the-process-started"


def code_files() -> dict[str, str]:
    """SHA-256 (16 hex digits) of every cnnlab source file loaded in this process, by path inside the package
    ('runner.py', 'data/mnist.py'): the code a run executed, recorded at its end so that `reproduce` can tell,
    file by file, whether the same code would run today.

    Trap: a git commit cannot serve as that key: every commit (a report fix, a new note) would make every
    finished run look stale, and a dirty tree none. The files are read from disk, not from memory: one edited
    after this process started (a long batch while work goes on) may not be what ran, so it is recorded as
    EDITED, which no later check matches. A warm batch process has loaded more modules than one run needs,
    which only makes the check stricter."""
    out = {}
    for name, module in list(sys.modules.items()):
        if name != "cnnlab" and not name.startswith("cnnlab."):
            continue
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if PACKAGE not in path.parents:
            continue
        rel = path.relative_to(PACKAGE).as_posix()
        if rel not in _DIGESTS:
            try:
                edited = path.stat().st_mtime > _PROCESS_START
            except OSError:
                continue
            digest = _digest(path)
            if digest is None:
                continue
            _DIGESTS[rel] = EDITED if edited else digest
        out[rel] = _DIGESTS[rel]
    return dict(sorted(out.items()))


# Package files whose code cannot change a number a run records (history.csv, params.csv, metrics.json's
# measured values): the command line, the batch, the report, the record-keeping. An edit to one of them leaves
# finished runs current; every other file, and any file added later, counts (the strict default).
NOT_NUMERIC = frozenset(
    {
        "__init__.py",
        "__main__.py",
        "batch/bundle.py",
        "batch/equivalence.py",
        "batch/estimate.py",
        "batch/local_engine.py",
        "batch/ray_engine.py",
        "batch/reproduce.py",
        "cli.py",
        "errors.py",
        "lectures/arith_report.py",
        "lectures/explain.py",
        "lectures/explain_run.py",
        "lectures/zoo.py",
        "paths.py",
        "quiet.py",
        "stop.py",
        "report/ab.py",
        "report/compare.py",
        "report/plots.py",
        "report/precision.py",
        "report/remaining.py",
        "report/tables.py",
        "report/verdicts.py",
        "store/meta.py",
    }
)


# Files that computed no number and are gone (issue 16: the warm worker and its pipe, replaced by Ray actors): a
# run that recorded them is still current.
RETIRED = frozenset({"batch/warm.py", "batch/worker.py"})


def code_changes(recorded: dict) -> list[str]:
    """The files of a run's `code_files()` record that differ now (changed or gone), leaving out NOT_NUMERIC:
    [] when the code that computes the numbers would run unchanged."""
    return [
        rel
        for rel, digest in recorded.items()
        if rel not in NOT_NUMERIC and rel not in RETIRED and _digest(PACKAGE / rel) != digest
    ]


def configured_backend() -> str:
    """The backend Keras will use, read as Keras reads it (KERAS_BACKEND, else ~/.keras/keras.json, else
    tensorflow) without importing Keras."""
    return paths.keras_backend_setting()[0]


RUNS_BEFORE = "CNNLAB_PROCESS_RUNS_BEFORE"  # set by a reproduce actor (cnnlab/batch/ray_engine.py) for each run


def environment() -> dict:
    """Everything about the software and machine that can change a number."""
    import keras

    backend = keras.backend.backend()
    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _version(BACKEND_DIST.get(backend, backend)),
        "tensorflow": _version("tensorflow"),
        "numpy": _version("numpy"),
        "cnnlab": _version("cnnlab"),
        "platform": platform.platform(),
        "device": device(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "git_commit": git_commit(PACKAGE.parent),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        # a run in one of `cnnlab reproduce`'s warm actors (cnnlab/batch/ray_engine.py): how many runs it made before
        **({"runs_before_in_process": int(os.environ[RUNS_BEFORE])} if os.environ.get(RUNS_BEFORE) else {}),
    }
