"""`cnnlab reproduce --engine ray`: the batch's runs on Ray — an embedded local Ray runtime sized to this machine by
default, or a running cluster (`--address` / `RAY_ADDRESS`) unchanged — with warm actors (TensorFlow or JAX
imported once per slot), fractional GPUs (`--runs-per-gpu K` packs K runs on one GPU), and each run's results
folder coming back to the driver as a value, so that a cluster needs no shared file system.

Reference: issue 16 (batches on an existing engine); Ray's actors (`ray.remote` classes; `max_restarts=0` and
`max_task_retries=0`: a run on a lost node is reported failed, never silently retried) and `ray.cluster_utils`.
cnnlab keeps what is its own: the plan, the skip key, reproduce.json, the summary (cnnlab.batch.reproduce).
Trap: an actor's runs write into *its node's* staging folder (the node's cnnlab cache, `ray/results/`), where a
stopped run's `.partial` folder and backup stay, so the same job resumes there next time; only a complete run's
small files (text and PNG, not checkpoints or caches) travel back, and the driver writes them into results/ under
a temporary name first, so that a reader never sees half a run.
"""

from __future__ import annotations

import gc
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from cnnlab.batch.reproduce import (
    Job,
    Outcome,
    Progress,
    _short,
    error_line,
    headline,
)
from cnnlab.errors import CnnlabError

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
    from cnnlab.store.files import atomic_write

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
    node's staging folder (cnnlab.batch.worker's loop, without the pipe protocol)."""

    def __init__(self, env: dict[str, str] | None = None):
        from cnnlab import quiet
        from cnnlab.store.files import cache_dir

        os.environ.update(env or {})
        quiet.install()
        self.done = 0
        self.staging = cache_dir("ray", "results").resolve()
        self.staging.mkdir(parents=True, exist_ok=True)

    def run(self, job: dict, stem: str) -> dict:
        """Run one job (`ref`, `overrides`, `profile`, `data_dir`) as `cnnlab run` would, into the staging
        folder; the exit status, stdout and stderr, and on success the new run's id, metrics and files (which
        then leave the staging folder)."""
        import shutil
        import sys

        import keras

        from cnnlab.quiet import redirected
        from cnnlab.store.meta import RUNS_BEFORE
        from cnnlab.store.results import complete_runs, read_metrics

        name = job["name"]
        before = {p.name for p in complete_runs(self.staging, name)}
        logs = self.staging / ".logs"
        logs.mkdir(exist_ok=True)
        out, err = logs / f"{stem}.out", logs / f"{stem}.err"
        out.write_bytes(b"")
        err.write_bytes(b"")
        os.environ[RUNS_BEFORE] = str(self.done)
        sys.argv = ["cnnlab", "run", job["ref"], *job["overrides"], "--profile", job["profile"]]  # its command
        with redirected(str(out), str(err)):
            code = run_here(job, self.staging)
            keras.backend.clear_session(free_memory=True)
            gc.collect()
        self.done += 1
        answer = {
            "exit": code,
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


def run_here(job: dict, results_root: Path) -> int:
    """`cnnlab run REF OVERRIDES --profile P --no-summary` in this process, with the command line's exit
    statuses: 0, a user error's one line and its status (2), 130 when stopped, 1 and a traceback for a bug."""
    import sys
    import traceback

    from cnnlab.config.experiment import load
    from cnnlab.report.compare import run_verdicts
    from cnnlab.train import runner

    try:
        exp = load(job["ref"], list(job["overrides"]), job["profile"])
        result = runner.run(exp, Path(results_root), data_dir=job.get("data_dir"), verbose=0)
        for line in run_verdicts(result.run_dir, result.metrics, exp.profile, exp.overrides):
            print(line, flush=True)
        return 0
    except CnnlabError as err:
        print(f"cnnlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001  (reported as a crashed child's: its traceback on its stderr)
        traceback.print_exc()
        return 1


class ActorStopper:
    """The `subprocess.Popen` face that reproduce.stop() expects, for a job running on an actor: SIGINT cancels
    the task (KeyboardInterrupt inside the run: its .partial folder and backup stay), terminate/kill end the
    actor, wait waits for the task."""

    def __init__(self, actor, ref):
        self.actor, self.ref = actor, ref

    def send_signal(self, sig) -> None:
        import ray

        if sig == signal.SIGINT:
            ray.cancel(self.ref)

    def terminate(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)

    kill = terminate

    def wait(self, timeout: float | None = None):
        import subprocess

        import ray

        ready, _ = ray.wait([self.ref], timeout=timeout)
        if not ready:
            raise subprocess.TimeoutExpired("ray task", timeout)
        return 0


@dataclass
class Slots:
    """What each slot (one actor, one run at a time) asks Ray for, and how many there are."""

    count: int
    num_cpus: float
    num_gpus: float


def plan_slots(resources: dict, runs_per_gpu: int | None, slots: int | None) -> Slots:
    """GPUs: `runs_per_gpu` runs share each GPU (a 1/K fraction each), the CPUs split between all runs; CPUs
    only: one run on all of them, or `slots` runs splitting them."""
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus >= 1:
        k = max(1, runs_per_gpu or 1)
        count = slots or int(gpus) * k
        return Slots(count, max(1.0, cpus // count), 1.0 / k)
    count = max(1, slots or 1)
    return Slots(count, max(1.0, cpus // count), 0.0)


class RayRunner:
    """reproduce's runner (the signature of run_job) on Ray: one actor per worker thread, replaced after a failed
    run or a lost node, a fresh one per run with --isolate."""

    def __init__(self, slots: Slots, isolate: bool, env: dict[str, str] | None = None):
        import threading

        import ray

        self.slots, self.isolate, self.env = slots, isolate, env or {}
        self.cls = ray.remote(max_restarts=0, max_task_retries=0)(RunActorBody)
        self.actors: dict[int, object] = {}
        self.lock = threading.Lock()

    def actor(self):
        import threading

        key = threading.get_ident()
        with self.lock:
            if key not in self.actors:
                self.actors[key] = self.cls.options(num_cpus=self.slots.num_cpus, num_gpus=self.slots.num_gpus).remote(
                    self.env
                )
            return self.actors[key]

    def drop(self) -> None:
        import threading

        import ray

        with self.lock:
            actor = self.actors.pop(threading.get_ident(), None)
        if actor is not None:
            ray.kill(actor, no_restart=True)

    def close(self) -> None:
        import ray

        with self.lock:
            actors, self.actors = list(self.actors.values()), {}
        for actor in actors:
            ray.kill(actor, no_restart=True)

    def __call__(self, job: Job, results_root: Path, log_stem: Path, data_dir=None, env=None, started=None, **_):
        import time

        import ray

        spec = {
            "ref": job.ref,
            "name": job.name,
            "overrides": list(job.overrides),
            "profile": job.profile,
            "data_dir": data_dir,
        }
        actor = self.actor()
        t0 = time.perf_counter()
        ref = actor.run.remote(spec, log_stem.name)
        if started is not None:
            started(ActorStopper(actor, ref))
        try:
            answer = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            self.drop()
            raise KeyboardInterrupt from None
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
            self.drop()
            return Outcome(
                "failed",
                time.perf_counter() - t0,
                reason=_short(f"its Ray worker was lost (a node removed or killed?): {type(e).__name__}"),
                log=str(log_stem),
            )
        seconds = time.perf_counter() - t0
        log_stem.parent.mkdir(parents=True, exist_ok=True)
        log_stem.with_suffix(".out").write_text(answer["stdout"])
        log_stem.with_suffix(".err").write_text(answer["stderr"])
        if self.isolate or answer["exit"] != 0:
            self.drop()  # a failed run may leave state behind: the next run gets a fresh actor
        if answer["exit"] != 0:
            return Outcome(
                "failed",
                seconds,
                exit_code=answer["exit"],
                reason=error_line(answer["stderr"], answer["exit"]),
                log=str(log_stem),
            )
        if "run_id" not in answer:
            return Outcome("failed", seconds, exit_code=0, reason=f"exited 0 but wrote no complete run of {job.name}")
        run = deliver(Path(results_root), job.name, answer["run_id"], answer["files"])
        return Outcome("complete", seconds, run_id=run.name, exit_code=0, headline=headline(answer["metrics"]))


def start(address: str | None, num_cpus: int | None = None) -> dict:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start an embedded local runtime sized to this
    machine; Ray's resources."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=None if address else num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CnnlabError(f"reproduce --engine ray: cannot reach a Ray cluster at {address!r}: {e}") from None
    return ray.cluster_resources()


def execute(
    batch,
    results_root: Path,
    data_dir: str | None = None,
    log=print,
    address: str | None = None,
    runs_per_gpu: int | None = None,
    slots: int | None = None,
    today=None,
) -> int:
    """reproduce's batch on Ray: the same plan, skips, progress lines, reproduce.json and summary as the local
    engine; 0, 1 when a run failed, 130 on Ctrl-C (running runs stopped, resumable on their node)."""
    from cnnlab.batch.reproduce import drive, run_workers

    resources = start(address)
    plan = plan_slots(resources, runs_per_gpu, slots)
    env = {"CNNLAB_DATA_DIR": str(data_dir)} if data_dir else {}
    runner = RayRunner(plan, batch.isolate, env)
    log(
        f"ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; {plan.count} slot(s) of "
        f"{plan.num_cpus:g} CPU" + (f" and {plan.num_gpus:g} GPU" if plan.num_gpus else "") + " each"
    )
    batch.devices = [f"ray {k + 1}" for k in range(plan.count)]
    state = Progress(batch, Path(results_root), log, runner, data_dir, today)
    state.worker_done = runner.drop  # a slot with no job left frees its CPUs for a replacement actor elsewhere
    if not (address or os.environ.get("RAY_ADDRESS")):  # every actor on this machine: its staging folder is here
        from cnnlab.store.files import cache_dir

        state.partial_roots.append(cache_dir("ray", "results").resolve())
    return drive(state, lambda: run_workers(state, batch.devices, names=batch.devices), runner.close)
