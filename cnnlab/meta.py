"""Run metadata: versions, backend, device, machine and git commit, so a delta between two runs can be explained.

Reference: timm's results/*.csv (every number with its environment).
Trap: only the active backend's library is imported; asking TensorFlow for its GPUs under the JAX backend
would import TensorFlow on a machine that may not have it.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


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

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []


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
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


RUNS_BEFORE = "CNNLAB_PROCESS_RUNS_BEFORE"   # set by cnnlab/worker.py for each job it runs


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
        "git_commit": git_commit(Path(__file__).resolve().parent.parent),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        # a run in `cnnlab reproduce`'s warm process (cnnlab/worker.py): how many runs that process made before
        **({"runs_before_in_process": int(os.environ[RUNS_BEFORE])} if os.environ.get(RUNS_BEFORE) else {}),
    }
