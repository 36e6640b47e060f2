"""Where `cnnlab reproduce --engine local` runs execute: child processes on this machine, no Ray.

Reference: issue 18 (the GPU bundle: the device machine has JAX but no Ray, and its working tree is limited to
64 MiB, too little for Ray's wheel); issue 16 (reproduce's `Engine` protocol: the plan, the skip key, the loop,
reproduce.json and the summary stay cnnlab.batch.reproduce's). Each run is a fresh `python -m cnnlab run` writing
straight into the results folder (the runner's own `.partial` folder and rename keep a half run out of it); each
GPU holds `--runs-per-gpu K` runs at once.
Trap: JAX takes 75% of a GPU's memory at its first computation and TensorFlow all of it, so a second run on the
same GPU dies out of memory at once; a shared slot's child gets `reproduce.gpu_share_env` (JAX's memory fraction,
TensorFlow's memory growth), and a CPU slot on a GPU machine gets no GPU at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cnnlab.batch.ray_engine import actor_env, short
from cnnlab.batch.reproduce import REPO_ROOT, Job, Outcome, gpu_share_env, headline
from cnnlab.errors import CnnlabError
from cnnlab.store.results import complete_runs, read_metrics
from cnnlab.train import precision


def visible_gpus() -> list[str]:
    """This machine's GPU ids as CUDA numbers them: CUDA_VISIBLE_DEVICES when set, else `nvidia-smi`'s list;
    none without an NVIDIA driver."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip() and g.strip() != "-1"]
    return [v for v in precision.nvidia_smi("index") or [] if v.isdigit()]


@dataclass(frozen=True)
class Slot:
    """One run at a time: its label, the GPU it sees (None: the CPU) and its share of that GPU."""

    label: str
    gpu: str | None
    fraction: float = 1.0


def plan_slots(
    gpus: list[str], devices: list[str] | None = None, runs_per_gpu: int | None = None, slots: int | None = None
) -> list[Slot]:
    """`devices` (GPU ids and 'cpu' entries), else every GPU, each shared by `runs_per_gpu` runs ('gpu 0#1',
    'gpu 0#2', ...; `slots` caps their number); a machine without GPUs: `slots` runs at once on the CPU (default 1)."""
    k = max(1, runs_per_gpu or 1)
    chosen = list(devices) if devices else (list(gpus) or ["cpu"] * max(1, slots or 1))
    out, cpus = [], chosen.count("cpu")
    for device in chosen:
        if device == "cpu":
            n = sum(1 for s in out if s.gpu is None) + 1
            out.append(Slot("cpu" if cpus == 1 else f"cpu {n}", None))
        else:
            out += [Slot(f"gpu {device}" + (f"#{j + 1}" if k > 1 else ""), device, 1.0 / k) for j in range(k)]
    return out[:slots] if slots and not devices and gpus else out


class LocalEngine:
    """reproduce's Engine without Ray: one child process per run, `len(slots)` at a time."""

    def __init__(
        self,
        devices: list[str] | None = None,
        isolate: bool = True,
        data_dir: str | None = None,
        address: str | None = None,
        runs_per_gpu: int | None = None,
        slots: int | None = None,
        results_root: Path = Path("results"),
    ):
        if address:
            raise CnnlabError("reproduce --engine local runs on this machine; --address names a Ray cluster")
        gpus = visible_gpus()
        unknown = [d for d in devices or [] if d != "cpu" and d not in gpus]
        if unknown:
            have = ", ".join(gpus) or "none"
            raise CnnlabError(f"reproduce --devices: no GPU {unknown[0]} on this machine (it has: {have})")
        self.results_root, self.data_dir = Path(results_root).resolve(), data_dir
        self.plan = {s.label: s for s in plan_slots(gpus, devices, runs_per_gpu, slots)}
        self.slots = list(self.plan)
        self.env = {**os.environ, **actor_env(data_dir), "PYTHONPATH": _pythonpath()}
        self.running: dict[str, tuple[subprocess.Popen, Job, Path, float, set[str]]] = {}
        first = next(iter(self.plan.values()))
        self.description = f"local: child processes, {len(gpus)} GPU(s) seen; {len(self.slots)} slot(s)" + (
            f" of {first.fraction:g} GPU" if first.gpu is not None else " on the CPU"
        )

    def submit(self, slot: str, job: Job, log_stem: Path) -> None:
        spec = self.plan[slot]
        env = dict(self.env)
        env["CUDA_VISIBLE_DEVICES"] = spec.gpu or ""
        if spec.gpu is not None:
            env.update(gpu_share_env(spec.fraction))
        command = [sys.executable, "-m", "cnnlab", "--results-dir", str(self.results_root), "run", job.ref]
        command += [*job.overrides, "--profile", job.profile, "--no-summary"]
        if self.data_dir:
            command += ["--data-dir", str(self.data_dir)]
        log_stem.parent.mkdir(parents=True, exist_ok=True)
        before = {p.name for p in complete_runs(self.results_root, job.name)}
        with open(log_stem.with_suffix(".out"), "wb") as out, open(log_stem.with_suffix(".err"), "wb") as err:
            child = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
        self.running[slot] = (child, job, log_stem, time.perf_counter(), before)

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        end = time.perf_counter() + timeout
        while True:
            done = [slot for slot, (child, *_) in self.running.items() if child.poll() is not None]
            if done or not self.running or time.perf_counter() >= end:
                return [self._outcome(slot) for slot in done]
            time.sleep(0.05)

    def _outcome(self, slot: str) -> tuple[str, Outcome]:
        child, job, stem, t0, before = self.running.pop(slot)
        seconds, code = time.perf_counter() - t0, child.returncode
        device = "cpu" if self.plan[slot].gpu is None else f"gpu {self.plan[slot].gpu}"
        if code != 0:
            status = "interrupted" if code in (130, -signal.SIGINT, -signal.SIGTERM) else "failed"
            reason = _last_line(stem.with_suffix(".err")) or f"exit status {code}"
            return slot, Outcome(status, seconds, exit_code=code, reason=reason, log=str(stem), device=device)
        found = run_of(job, self.results_root, before)
        if found is None:
            reason = f"exited 0 but wrote no complete run of {job.name}"
            return slot, Outcome("failed", seconds, exit_code=0, reason=reason, log=str(stem), device=device)
        run, metrics = found
        said = headline(metrics)
        return slot, Outcome("complete", seconds, run_id=run.name, exit_code=0, headline=said, device=device)

    def release(self, slot: str) -> None:
        """Nothing is held between runs: each run is its own process."""

    def cancel(self, grace: float) -> None:
        """Ctrl-C: SIGTERM to every running run (`cnnlab run` stops on it as on Ctrl-C, keeping its .partial
        folder and backup), up to `grace` seconds each to finish, then SIGKILL."""
        for child, *_ in self.running.values():
            _signal(child, signal.SIGTERM)  # `cnnlab run` stops on SIGTERM as on Ctrl-C
        end = time.perf_counter() + grace
        for child, *_ in self.running.values():
            try:
                child.wait(max(0.0, end - time.perf_counter()))
            except subprocess.TimeoutExpired:
                _signal(child, signal.SIGKILL)
                child.wait()
        self.running.clear()

    def close(self) -> None:
        self.cancel(0.0)


def run_of(job: Job, root: Path, before: set[str]) -> tuple[Path, dict] | None:
    """The complete run `job` wrote: new since its start, of its config hash (its seed and fold are in it), the
    newest such. Trap: the newest new run is not enough — two seeds of one experiment run at once and both land in
    results/<name>/, so a run that ended second was reported with the other's id and test accuracy."""
    for run in reversed(complete_runs(root, job.name)):
        if run.name not in before:
            metrics = read_metrics(run)
            if metrics.get("config_hash") == job.config_hash:
                return run, metrics
    return None


def _signal(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _last_line(path: Path) -> str | None:
    """A failed run's reason: the last non-empty line of its stderr (`cnnlab: error: ...`, or a bug's last line)."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return short(lines[-1].removeprefix("cnnlab: error: ")) if lines else None


def _pythonpath() -> str:
    """The child imports this cnnlab (the repository it was started from, installed or not) first."""
    rest = os.environ.get("PYTHONPATH", "")
    return str(REPO_ROOT) + (os.pathsep + rest if rest else "")
