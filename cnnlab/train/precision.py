"""`train.precision`: float32, Keras's mixed policies, or `auto` — bfloat16 where the hardware computes it natively.

Reference: Keras 3 mixed precision (`keras.config.set_dtype_policy("mixed_bfloat16")`: float32 weights, bfloat16
compute, outputs and losses float32); Intel's AMX-BF16 and AVX512-BF16 instructions (`/proc/cpuinfo` flags
`amx_bf16`, `avx512_bf16`); NVIDIA GPUs compute bfloat16 natively from compute capability 8.0 (Ampere).
Trap: on a CPU without those flags bfloat16 is *emulated*, slower than float32, so `auto` must look at the
machine, and a run records what `auto` became there: the same config is float32 on one machine and bfloat16 on
the next, and two such runs are two settings, never one run set.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
GPU_BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Resolved:
    """What a requested precision became on this machine, and why."""

    requested: str
    policy: str  # a Keras dtype policy name: float32, mixed_bfloat16, mixed_float16
    reason: str

    def record(self) -> dict:
        return {"requested": self.requested, "policy": self.policy, "reason": self.reason}


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo 'flags' line); empty where there is no such file."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities of the GPUs the active Keras backend sees ([] on a CPU-only machine)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return [
                tuple(int(p) for p in str(d.compute_capability).split(".")[:2])
                for d in jax.devices()
                if d.platform == "gpu"
            ]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
        if backend == "tensorflow":
            import tensorflow as tf

            return [
                tuple(tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)))
                for g in tf.config.list_physical_devices("GPU")
            ]
    except Exception:  # a backend built without GPU support answers with an error, not an empty list
        return []
    return []


def resolve(requested: str, flags: Iterable[str] | None = None, gpus: list[tuple[int, int]] | None = None) -> Resolved:
    """The Keras dtype policy for `requested` on this machine (`flags`, `gpus`: the machine's, unless given)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; received {requested!r}")
    if requested != "auto":
        return Resolved(requested, requested, "as configured")
    gpus = gpu_capabilities() if gpus is None else gpus
    if gpus:
        if all(tuple(c) >= GPU_BF16_CAPABILITY for c in gpus):
            return Resolved(
                "auto",
                "mixed_bfloat16",
                f"GPU compute capability {'.'.join(map(str, min(gpus)))} >= 8.0: native bfloat16",
            )
        return Resolved(
            "auto", "float32", f"GPU compute capability {'.'.join(map(str, min(gpus)))} < 8.0: no native bfloat16"
        )
    have = sorted(set(CPU_BF16_FLAGS) & set(cpu_flags() if flags is None else flags))
    if have:
        return Resolved("auto", "mixed_bfloat16", f"CPU flags {', '.join(have)}: native bfloat16")
    return Resolved("auto", "float32", f"no CPU flag {' or '.join(CPU_BF16_FLAGS)}: bfloat16 would be emulated")


def nvidia_smi(field: str) -> list[str] | None:
    """`nvidia-smi --query-gpu=FIELD`, one value per GPU: [] on a machine without an NVIDIA driver, None when it
    has one but cannot say. Asks the driver, not a backend: a batch's parent process must not initialise a
    backend on the GPUs its children need."""
    if not Path("/proc/driver/nvidia").exists() and not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()] or None


def _gpus_without_a_backend() -> list[tuple[int, int]] | None:
    """Compute capabilities from `nvidia-smi` ([] when the machine has no NVIDIA driver), None when it has one
    but cannot say."""
    values = nvidia_smi("compute_cap")
    try:
        return values if not values else [tuple(int(p) for p in v.split(".")[:2]) for v in values]
    except ValueError:
        return None


def expected_policy(requested: str) -> str | None:
    """The policy `resolve(requested)` would give a run on this machine, without importing Keras (the batch
    planner asks for hundreds of runs); None when a GPU is there but its capability cannot be read."""
    if requested != "auto":
        return requested
    gpus = _gpus_without_a_backend()
    return None if gpus is None else resolve("auto", gpus=gpus).policy
