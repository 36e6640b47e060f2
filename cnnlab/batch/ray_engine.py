"""Where `cnnlab reproduce` runs execute: Ray — an embedded local Ray runtime sized to this machine by default, or a
running cluster (`--address` / `RAY_ADDRESS`) unchanged — with warm actors (TensorFlow or JAX imported once per
slot), fractional GPUs (`--runs-per-gpu K` packs K runs on one GPU), and each run's results folder coming back to
the driver as a value, so that a cluster needs no shared file system.

Reference: issue 16 (batches on an existing engine); Ray's actors (`ray.remote` classes; `max_restarts=0` and
`max_task_retries=0`: a run on a lost node is reported failed, never silently retried), `ray.wait`, `max_concurrency`
and `ray.cluster_utils`. cnnlab keeps what is its own: the plan, the skip key, the scheduling loop, reproduce.json
and the summary (cnnlab.batch.reproduce); this module is the `Engine` that loop drives.
Trap: an actor's runs write into *its node's* staging folder (the node's cnnlab cache, `ray/results/`), where a
stopped run's `.partial` folder and backup stay, so the same job resumes there next time; only a complete run's
small files (text and PNG, not checkpoints or caches) travel back, and the driver writes them into results/ under
a temporary name first, so that a reader never sees half a run.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from cnnlab import quiet
from cnnlab.batch.reproduce import Job, Outcome, gpu_share_env, headline
from cnnlab.config import experiment
from cnnlab.errors import CnnlabError
from cnnlab.report.compare import run_verdicts
from cnnlab.store.files import atomic_write, cache_dir
from cnnlab.store.meta import RUNS_BEFORE
from cnnlab.store.results import complete_runs, read_metrics

SMALL_SUFFIXES = (".csv", ".json", ".md", ".yaml", ".png", ".txt")
MAX_FILE_BYTES = 8 * 2**20  # a file larger than this is not evidence but a checkpoint: it stays on the node


def payload(run_dir: Path) -> dict[str, bytes]:
    """The files of a finished run that belong in results/: relative path → bytes (small text and PNG only)."""
    out = {}
    for path in sorted(Path(run_dir).rglob("*")):
        if path.is_file() and path.suffix in SMALL_SUFFIXES and path.stat().st_size <= MAX_FILE_BYTES:
            out[str(path.relative_to(run_dir))] = path.read_bytes()
    return out


def deliver(results_root: Path, name: str, run_id: str, files: dict[str, bytes]) -> Path:
    """Write a run that came back from a node into results/<name>/<run id> (another id if that one is taken:
    two nodes can start a run in the same second): under a hidden temporary name, then renamed, so that the
    folder appears whole or not at all."""
    folder = Path(results_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    final, k = folder / run_id, 1
    while final.exists():
        k += 1
        final = folder / f"{run_id}-{k}"
    incoming = folder / f".{final.name}.incoming"
    for rel, data in files.items():
        target = incoming / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
    os.replace(incoming, final)
    (folder / "LATEST").write_text(final.name + "\n")
    return final


class RunActorBody:
    """What one Ray actor is: a warm process running `cnnlab run` jobs in itself, one after another, into its
    node's staging folder. It takes two calls at once (max_concurrency=2): a run, and `interrupt` for it."""

    def __init__(self, env: dict[str, str] | None = None):
        os.environ.update(env or {})
        quiet.install()
        self.done = 0
        self.running_thread: int | None = None  # the thread in a run now
        self.staging = cache_dir("ray", "results").resolve()
        self.staging.mkdir(parents=True, exist_ok=True)

    def run(self, job: dict, stem: str) -> dict:
        """Run one job (`ref`, `overrides`, `profile`, `data_dir`) as `cnnlab run` would, into the staging
        folder; the exit status, stdout and stderr, and on success the new run's id, metrics and files (which
        then leave the staging folder)."""

        import keras  # heavy: the actor imports it after quiet.install() in __init__

        name = job["name"]
        before = {p.name for p in complete_runs(self.staging, name)}
        logs = self.staging / ".logs"
        logs.mkdir(exist_ok=True)
        out, err = logs / f"{stem}.out", logs / f"{stem}.err"
        out.write_bytes(b"")
        err.write_bytes(b"")
        os.environ[RUNS_BEFORE] = str(self.done)
        sys.argv = ["cnnlab", "run", job["ref"], *job["overrides"], "--profile", job["profile"], "--no-summary"]
        with quiet.redirected(str(out), str(err)):
            self.running_thread = threading.get_ident()
            try:
                code, reason = run_here(job, self.staging)
            finally:
                self.running_thread = None
            keras.backend.clear_session(free_memory=True)
            gc.collect()
        self.done += 1
        answer = {
            "exit": code,
            "reason": reason,
            "device": device_label(),
            "stdout": out.read_text(errors="replace")[-20000:],
            "stderr": err.read_text(errors="replace")[-20000:],
            "node": os.uname().nodename,
        }
        new = [p for p in complete_runs(self.staging, name) if p.name not in before]
        if code == 0 and new:
            run = new[-1]
            answer |= {"run_id": run.name, "metrics": read_metrics(run), "files": payload(run)}
            shutil.rmtree(run, ignore_errors=True)  # delivered: the node keeps no second copy
        return answer

    def interrupt(self) -> bool:
        """Ctrl-C for the run in progress: KeyboardInterrupt raised in its thread, as a terminal's Ctrl-C would
        raise it (at its next Python bytecode: within one training batch), so the run stops the way `cnnlab
        run` does, keeping its .partial folder and backup. (ray.cancel only flags a running actor task.)"""

        ident = self.running_thread
        if ident is None:
            return False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt))
        return True


def run_here(job: dict, results_root: Path) -> tuple[int, str | None]:
    """`cnnlab run REF OVERRIDES --profile P --no-summary` in this process, with the command line's exit
    statuses and why it failed, as values: (0, None); a user error's status (2) and its one line; (130, ...) when
    stopped; (1, the exception's last line) and a traceback on stderr for a bug."""

    from cnnlab.train import runner  # Keras, imported by the first run in each actor

    try:
        exp = experiment.load(job["ref"], list(job["overrides"]), job["profile"])
        result = runner.run(exp, Path(results_root), data_dir=job.get("data_dir"), verbose=0)
        for line in run_verdicts(result.run_dir, result.metrics, exp.profile, exp.overrides):
            print(line, flush=True)
        return 0, None
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return err.exit_code, short(str(err))
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130, "interrupted"
    except Exception as exc:  # noqa: BLE001  (a bug: its traceback on the run's stderr, its last line the reason)
        traceback.print_exc()
        return 1, short(f"{type(exc).__name__}: {exc}")


def short(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters (a reason in reproduce.json and the failure table)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def device_label() -> str:
    """What this actor computes on: 'gpu 3' (the GPU Ray gave it, as CUDA_VISIBLE_DEVICES names it) or 'cpu'."""
    import ray

    try:
        ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    except Exception:  # noqa: BLE001 — outside an actor (tests): no accelerator
        ids = []
    return f"gpu {','.join(map(str, ids))}" if ids else "cpu"


@dataclass(frozen=True)
class Slot:
    """One run at a time: what its actor asks Ray for."""

    label: str
    num_cpus: float
    num_gpus: float


def plan_slots(
    resources: dict, runs_per_gpu: int | None = None, slots: int | None = None, devices: list[str] | None = None
) -> list[Slot]:
    """The batch's slots on `resources` (Ray's cluster_resources()). GPUs: `runs_per_gpu` runs share each GPU (a
    1/K fraction each); `devices` (the local runtime's GPUs and 'cpu' entries): one slot per entry, K per GPU;
    CPUs only: one run on all of them, or `slots` runs splitting them. The CPUs are split between the slots
    (a fraction each when there are more slots than CPUs)."""
    gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    k = max(1, runs_per_gpu or 1)
    if devices:
        kinds = [1.0 / k for d in devices if d != "cpu" for _ in range(k)] + [0.0 for d in devices if d == "cpu"]
    elif gpus >= 1:
        kinds = [1.0 / k] * (slots or gpus * k)
    else:
        kinds = [0.0] * max(1, slots or 1)
    count = len(kinds)
    share = cpus / count if count > cpus else float(cpus // count)
    return [Slot(f"ray {n + 1}", share, g) for n, g in enumerate(kinds)]


LOST = "its Ray worker was lost (a node removed or killed, or out of memory?)"


class RayEngine:
    """reproduce's Engine on Ray: one actor per slot (started on first use, replaced after a failed run or a lost
    node, a fresh one per run with --isolate), each run a task whose answer carries the run's files."""

    def __init__(
        self,
        devices: list[str] | None = None,
        isolate: bool = False,
        data_dir: str | None = None,
        address: str | None = None,
        runs_per_gpu: int | None = None,
        slots: int | None = None,
        results_root: Path = Path("results"),
    ):
        import ray

        self.results_root, self.isolate = Path(results_root), isolate
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.started_here = not ray.is_initialized()
        resources = start(address, devices)
        self.plan = {s.label: s for s in plan_slots(resources, runs_per_gpu, slots, devices)}
        self.slots = list(self.plan)
        self.cls = ray.remote(max_restarts=0, max_task_retries=0, max_concurrency=2)(RunActorBody)
        self.env = actor_env(data_dir)
        self.actors: dict[str, object] = {}
        self.running: dict[object, tuple[str, Job, Path, float]] = {}  # task → (slot, job, log stem, start)
        first = next(iter(self.plan.values()))
        self.description = (
            f"ray {ray.__version__}: {'the cluster at ' + address if address else 'a local runtime'}, "
            f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; {len(self.slots)} slot(s) of "
            f"{first.num_cpus:g} CPU" + (f" and {first.num_gpus:g} GPU" if first.num_gpus else "")
        )
        # every actor of a local runtime is on this machine: the heartbeat reads its staging folder here
        self.partial_roots = [] if address else [cache_dir("ray", "results").resolve()]

    def _actor(self, slot: str):
        if slot not in self.actors:
            spec = self.plan[slot]
            env = {**self.env, **(gpu_share_env(spec.num_gpus) if spec.num_gpus else {})}  # K runs on one GPU
            self.actors[slot] = self.cls.options(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus).remote(env)
        return self.actors[slot]

    def _drop(self, slot: str) -> None:
        import ray

        actor = self.actors.pop(slot, None)
        if actor is not None:
            ray.kill(actor, no_restart=True)

    def submit(self, slot: str, job: Job, log_stem: Path) -> None:

        spec = {"ref": job.ref, "name": job.name, "overrides": list(job.overrides), "profile": job.profile}
        spec["data_dir"] = self.env.get("CNNLAB_DATA_DIR")
        task = self._actor(slot).run.remote(spec, log_stem.name)
        self.running[task] = (slot, job, log_stem, time.perf_counter())

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        import ray

        if not self.running:
            return []
        ready, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        if ready:  # and whatever else has ended meanwhile
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        return [self._outcome(task) for task in ready]

    def _outcome(self, task) -> tuple[str, Outcome]:

        import ray

        slot, job, stem, t0 = self.running.pop(task)
        try:
            answer = ray.get(task)
        except ray.exceptions.RayError as e:  # the actor died, its node went away, or Ray killed it for memory
            self._drop(slot)
            return slot, Outcome(
                "failed", time.perf_counter() - t0, reason=f"{LOST}: {type(e).__name__}", log=str(stem)
            )
        seconds = time.perf_counter() - t0
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".out").write_text(answer["stdout"])
        stem.with_suffix(".err").write_text(answer["stderr"])
        if self.isolate or answer["exit"] != 0:
            self._drop(slot)  # a failed run may leave state behind: the next run gets a fresh actor
        device = answer.get("device")
        if answer["exit"] != 0:
            status = "interrupted" if answer["exit"] == 130 else "failed"
            reason = answer.get("reason") or f"exit status {answer['exit']}"
            return slot, Outcome(status, seconds, exit_code=answer["exit"], reason=reason, log=str(stem), device=device)
        if "run_id" not in answer:
            reason = f"exited 0 but wrote no complete run of {job.name}"
            return slot, Outcome("failed", seconds, exit_code=0, reason=reason, log=str(stem), device=device)
        run = deliver(self.results_root, job.name, answer["run_id"], answer["files"])
        headline_ = headline(answer["metrics"])
        return slot, Outcome("complete", seconds, run_id=run.name, exit_code=0, headline=headline_, device=device)

    def release(self, slot: str) -> None:
        self._drop(slot)

    def cancel(self, grace: float) -> None:
        """Ctrl-C: interrupt every running run (a KeyboardInterrupt inside it: its .partial folder and backup
        stay on the node), wait up to `grace` seconds, then end the actors still busy."""
        import ray

        tasks = list(self.running)
        for task in tasks:
            actor = self.actors.get(self.running[task][0])
            if actor is not None:
                actor.interrupt.remote()
        if tasks:
            try:
                ray.wait(tasks, num_returns=len(tasks), timeout=grace)
            except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
                pass
        self.running.clear()

    def close(self) -> None:
        import ray

        for slot in list(self.actors):
            self._drop(slot)
        if self.started_here and ray.is_initialized():
            ray.shutdown()


def _python_handlers() -> dict:
    """SIGTERM's and SIGINT's Python handlers (cli's SIGTERM-as-Ctrl-C, Python's KeyboardInterrupt), in the main
    thread; nothing elsewhere (signals are the main thread's)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: h for s in (signal.SIGTERM, signal.SIGINT) if callable(h := signal.getsignal(s))}


def actor_env(data_dir: str | None) -> dict[str, str]:
    """The driver's settings an actor must share to run the job the driver planned: the data directory, and where
    experiment names resolve (a job names its config: $CNNLAB_CONFIGS_DIR, as an absolute path). Trap: an actor's
    process takes the environment of the runtime's start, not the driver's, so a runtime started earlier (a
    cluster) would otherwise resolve `mnist` to another file than the one the skip key was computed from."""
    env = {"CNNLAB_DATA_DIR": str(data_dir)} if data_dir else {}
    configs = os.environ.get("CNNLAB_CONFIGS_DIR")
    if configs:
        env["CNNLAB_CONFIGS_DIR"] = str(Path(configs).resolve())
    return env


def _put_back(handlers: dict) -> None:
    """Reinstall `handlers` at the OS level. Trap: `ray.init` in a driver installs Ray's C++ failure-signal handler
    for SIGTERM over Python's (`signal.getsignal` still reports Python's), and it prints "*** SIGTERM received ...
    PC: @ ..." and ends the process: `kill` of a batch would lose its record and leave its run unmarked."""
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def start(address: str | None, devices: list[str] | None = None, num_cpus: int | None = None) -> dict:
    """Join the cluster at `address`, else start an embedded local runtime sized to this machine (its GPUs, or
    only those `devices` lists: CUDA_VISIBLE_DEVICES is set to them before Ray starts, so Ray hands out those);
    Ray's resources."""
    import ray

    try:
        if not ray.is_initialized():
            local = {}
            if not address:
                # a new local runtime turns token authentication on and says so in a warning line on stderr, the
                # start-up noise issue 15 forbids: that one logger is quietened (naming the mode instead,
                # RAY_AUTH_MODE=token, skips making the token: the runtime then cannot start)
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
                local["num_cpus"] = num_cpus
                if devices is not None:
                    gpu_ids = [d for d in devices if d != "cpu"]
                    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
                    local["num_gpus"] = len(gpu_ids)
            kept = _python_handlers()
            # no address: a new runtime of this process's own ("local"). Trap: address=None makes Ray join the
            # runtime named in $RAY_TMPDIR/ray/ray_current_cluster, which `ray start` and ray.cluster_utils write:
            # a batch then ran its jobs under another process's environment (found with two test runs at once),
            # or, the file left by a runtime since stopped, waited on a dead address
            ray.init(
                address=address or "local",
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                **local,
            )
            _put_back(kept)
    except Exception as e:  # noqa: BLE001 - Ray's start-up timeout is a bare Exception (ray/_private/node.py)
        _shutdown_quietly(ray)  # a runtime that half started leaves its GCS and raylet processes behind
        if address:
            raise CnnlabError(f"reproduce: cannot reach the Ray cluster at {address!r}: {short(str(e))}") from None
        raise CnnlabError(
            f"reproduce: cannot start a local Ray runtime: {short(str(e), 160)} (Ray gives its processes 30 s to come "
            "up: a machine busy with other work, or a batch started at low priority beside it, may not; start the "
            "batch again when it is quieter, or run the jobs one at a time with `cnnlab run`)"
        ) from None
    return ray.cluster_resources()


def _shutdown_quietly(ray) -> None:
    """ray.shutdown() after a failed start, which itself may fail on the half-started runtime."""
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - the start's own error is the one to report
        pass
