"""Code equivalence: finished runs carried across a code change that is measured not to move a number.

`reproduce` reuses a finished run only if every numeric source file it executed is unchanged (meta.code_changes).
A refactor (a module split, a registry, a reformat) changes files without changing a number, and would make
every finished run stale: days of CPU time. `cnnlab vouch --from COMMIT` measures the equivalence instead of
assuming it: it runs seeded quick runs of probe experiments under COMMIT's code and under today's, each side
from its own source tree, configs and empty caches, and compares what they wrote (history.csv without the
timing columns, params.csv, metrics.json's measured values, data fingerprint, config hash and precision). Only
if every probe is bit-identical does it append a record to results/code_equivalence.json: the numeric tree at
both ends (every numeric file's digest), the probes, the backend, the machine. `reproduce` then counts a run
made by COMMIT's code as made by today's, under the same backend.

Reference: DVC's `dvc commit` (record that changed dependencies leave the outputs as they are) — here with
evidence; issue 14 ("results are bit-identical for a seeded CPU run before and after").
Trap: a record holds for the whole numeric tree at both ends, so one later edit of a numeric file breaks the
chain (today's tree no longer equals any record's `to`) and the runs are stale again, as they should be. The
probes vouch only for the code paths they execute: the record names them, so choose probes that run the code
that changed (the default covers every dataset family and builder).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.store import meta
from cnnlab.store.files import atomic_write
from cnnlab.store.meta import NOT_NUMERIC, RETIRED
from cnnlab.store.results import read_history

RECORDS = "code_equivalence.json"


class NotEquivalent(CnnlabError):
    """A probe computed other numbers under the two codes: measured, not a user mistake (exit status 1)."""

    exit_code = 1


PACKAGE = Path(__file__).resolve().parent.parent  # cnnlab/
REPO_ROOT = PACKAGE.parent

# One quick run per dataset family and model path: the stack convnet (MNIST), the Keras 2 RMSprop and metric on a
# text Conv1D (IMDB), augmentation layers and generator sampling (cats vs dogs), the pretrained VGG16 block and
# cached features, Kim's builder with pretrained vectors in two channels, Kim's treebank phrases.
DEFAULT_PROBES = (
    "mnist",
    "imdb_conv1d_faithful",
    "cats_dogs_augmented",
    "vgg16_features",
    "kim_mr:multichannel",
    "kim_sst2",
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]  # as meta._digest


# The same files' paths before the package had layers (issue 14): a run made then recorded its code under these
# names, so an equivalence across the move must leave them out as it leaves out their new names.
FLAT_NOT_NUMERIC = frozenset(
    "ab.py arith_report.py compare.py equivalence.py explain.py explain_run.py meta.py plots.py reproduce.py "
    "tables.py verdicts.py warm.py worker.py zoo.py".split()
)


def _numeric(rel: str) -> bool:
    return rel.endswith(".py") and rel not in NOT_NUMERIC and rel not in RETIRED and rel not in FLAT_NOT_NUMERIC


def numeric_tree(package: Path = PACKAGE) -> dict[str, str]:
    """Digest of every numeric source file under `package` (meta.NOT_NUMERIC left out), by path inside it."""
    return {
        rel: _sha(p.read_bytes())
        for p in sorted(package.rglob("*.py"))
        if "__pycache__" not in p.parts and _numeric(rel := p.relative_to(package).as_posix())
    }


def _git(repo: Path, *args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise CnnlabError("vouch: git is not installed: the earlier code is read from the repository") from None
    except subprocess.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace").strip().splitlines()
        raise CnnlabError(f"vouch: git {' '.join(args[:2])}: {message[-1] if message else 'failed'}") from None


def resolve(commit: str, repo: Path = REPO_ROOT) -> str:
    """The full hash of `commit` (any name git takes: a short hash, HEAD~3, a tag)."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").decode().strip()
    except CnnlabError:
        raise CnnlabError(f"vouch: --from {commit!r}: not a commit of the repository at {repo}") from None


def export(commit: str, dest: Path, repo: Path = REPO_ROOT) -> Path:
    """`commit`'s cnnlab/ and configs/ unpacked under `dest` (no worktree, nothing left in the repository)."""
    archive = _git(repo, "archive", "--format=tar", commit, "cnnlab", "configs")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def tree_at(commit: str, repo: Path = REPO_ROOT) -> dict[str, str]:
    """numeric_tree of `commit`'s cnnlab/, read from git."""
    with tempfile.TemporaryDirectory() as tmp:
        return numeric_tree(export(commit, Path(tmp), repo) / "cnnlab")


# --------------------------------------------------------------------------------------------------
# The records and what they let count
# --------------------------------------------------------------------------------------------------


def load(results_root: Path) -> list[dict]:
    """The records of results/code_equivalence.json ([] without one; a damaged file is a one-line error)."""
    path = Path(results_root) / RECORDS
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CnnlabError(f"{path}: cannot read the code equivalences: {exc}") from None
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise CnnlabError(f"{path}: expected {{'records': [...]}}, received {type(data).__name__}")
    return [r for r in records if isinstance(r, dict) and isinstance(r.get("from"), dict)]


def equivalent_trees(today: dict[str, str], records: Iterable[dict], backend: str | None) -> list[dict[str, str]]:
    """Today's numeric tree and every earlier tree linked to it by a chain of records made under `backend`."""
    trees = [today]
    pending = [r for r in records if r.get("backend") == backend]
    grew = True
    while grew:
        grew = False
        for r in list(pending):
            if r.get("to") in trees:
                trees.append(r["from"])
                pending.remove(r)
                grew = True
    return trees


def covers(recorded: dict[str, str], trees: Iterable[dict[str, str]]) -> bool:
    """Whether a run's code record (meta.code_files) is, on its numeric files, one of `trees`."""
    numeric = {rel: d for rel, d in recorded.items() if _numeric(rel)}
    return any(all(tree.get(rel) == d for rel, d in numeric.items()) for tree in trees)


# --------------------------------------------------------------------------------------------------
# Measuring an equivalence
# --------------------------------------------------------------------------------------------------


def _history(path: Path) -> list[dict]:
    """history.csv's rows without the wall-time columns (epoch_seconds ...): the numbers a run computed."""
    return [{k: v for k, v in row.items() if not k.endswith("_seconds")} for row in read_history(path)]


def _record(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    return {
        "history.csv": _history(run / "history.csv"),
        "params.csv": (run / "params.csv").read_text() if (run / "params.csv").is_file() else None,
        "measured": m.get("measured"),
        "data fingerprint": (m.get("data") or {}).get("fingerprint"),
        "config hash": m.get("config_hash"),
        "precision": (m.get("precision") or {}).get("policy") or m.get("dtype_policy"),
    }


def differences(a: Path, b: Path) -> list[str]:
    """What differs between two run folders' numbers ([] when bit-identical), by name."""
    ra, rb = _record(a), _record(b)
    return [key for key in ra if ra[key] != rb[key]]


def probe_run(tree: Path, experiment: str, out: Path, backend: str, data_dir: str | None, log_to: Path) -> Path:
    """One seeded quick run of `experiment` with the code and configs of `tree`, into `out`: its run folder."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree),
        CNNLAB_RESULTS_DIR=str(out / "results"),
        CNNLAB_CACHE_DIR=str(out / "cache"),
        CNNLAB_CONFIGS_DIR=str(tree / "configs"),
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "3"),
    )
    if data_dir:
        env["CNNLAB_DATA_DIR"] = data_dir
    cmd = [sys.executable, "-m", "cnnlab", "run", experiment, "--profile", "quick", "--no-summary", "--verbose", "0"]
    with open(log_to, "wb") as log:
        code = subprocess.run(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    runs = sorted(p.parent for p in (out / "results").glob("*/*/metrics.json"))
    if code != 0 or len(runs) != 1:
        tail = log_to.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise CnnlabError(f"vouch: probe {experiment} under {tree}: exit {code}: {tail[0]}")
    return runs[0]


def vouch(
    commit: str,
    probes: Iterable[str] = DEFAULT_PROBES,
    results_root: Path = Path("results"),
    data_dir: str | None = None,
    backend: str | None = None,
    log: Callable[[str], None] = print,
    repo: Path = REPO_ROOT,
    package: Path = PACKAGE,
) -> dict | None:
    """Run every probe under `commit`'s code and today's, and append the record if all are bit-identical.
    Returns the record (None when the numeric code is the same: nothing to vouch); a difference is a
    CnnlabError naming the probe and what differs."""
    backend = backend or meta.configured_backend()
    full = resolve(commit, repo)
    today = numeric_tree(package)
    probes = list(probes)
    with tempfile.TemporaryDirectory(prefix="cnnlab-vouch-") as tmp:
        old_root = export(full, Path(tmp) / "old", repo)
        before = numeric_tree(old_root / "cnnlab")
        if before == today:
            log(f"vouch: {full[:12]} has today's numeric code; nothing to vouch")
            return None
        changed = sorted(set(before) ^ set(today) | {k for k in before if k in today and before[k] != today[k]})
        log(
            f"vouch: {len(changed)} numeric files differ from {full[:12]}: "
            f"{', '.join(changed[:6])}{' ...' * (len(changed) > 6)}"
        )
        results = []
        for i, exp in enumerate(probes):
            started = time.monotonic()
            side = {}
            for name, tree in (("then", old_root), ("now", package.parent)):
                out = Path(tmp) / f"{i}-{name}"
                out.mkdir()
                side[name] = probe_run(tree, exp, out, backend, data_dir, Path(tmp) / f"{i}-{name}.log")
            diff = differences(side["then"], side["now"])
            seconds = round(time.monotonic() - started, 1)
            if diff:
                raise NotEquivalent(
                    f"vouch: {exp} (quick, {backend}) differs between {full[:12]} and today's code: "
                    f"{', '.join(diff)}; no record written"
                )
            epochs = len(_history(side["now"] / "history.csv"))
            log(f"vouch: {exp}: bit-identical ({epochs} epochs, {seconds} s for both)")
            results.append({"experiment": exp, "profile": "quick", "epochs": epochs, "identical": True})
    record = {
        "from_commit": full,
        "to_commit": meta.git_commit(repo),
        "backend": backend,
        "compared": "history.csv (without *_seconds), params.csv, measured values, data fingerprint, "
        "config hash, precision",
        "probes": results,
        "changed": changed,
        "machine": meta.cpu_name(),
        "date": meta.utc_now(),
        "from": before,
        "to": today,
    }
    path = Path(results_root) / RECORDS
    records = load(results_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"records": [*records, record]}, indent=1) + "\n")
    log(f"vouch: recorded in {path}: runs made by {full[:12]}'s code count as today's under {backend}")
    return record
