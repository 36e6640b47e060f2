"""`cnnlab bundle`: a batch packed for a machine that has a GPU but not the data, Keras or Ray, and its results back.

Reference: issue 18 ("prepare one command that brings a bundle — the code, Keras and the other pure wheels the GPU
machine lacks, and compact caches that fit: MNIST, the tokenised IMDB arrays, Kim's sets with their
vocabulary-restricted vector matrices — runs ... under JAX in bfloat16 with several runs packed on the one GPU, and
returns the results folder as one archive. Rehearse it on the CPU first"); /work/.library/device/README.md (64 MiB
of working tree a call, one archive of at most 16 MiB back, no registry there).
`cnnlab bundle EXPS` plans the jobs as `reproduce` would, leaves out those already complete here, freezes each
job's dataset as loaded (cnnlab.data.snapshot), fetches the wheels and writes `run.sh`, which installs them, runs the
jobs with `reproduce --jobs --engine local --runs-per-gpu K` under a time limit, and archives the results folder;
`cnnlab bundle --import ARCHIVE` puts the complete runs that came back into results/.
Trap: the working tree travels with the bundle, so the limit is checked on both together; and the archive's runs
are written into results/ whole (a hidden folder, then renamed), never over a run already there.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from cnnlab import paths
from cnnlab.batch import reproduce
from cnnlab.batch.ray_engine import deliver, payload
from cnnlab.config import experiment
from cnnlab.errors import CnnlabError
from cnnlab.store import meta
from cnnlab.store.files import atomic_write, cache_dir
from cnnlab.store.results import complete_runs, read_metrics

DEFAULT_OUT = ".bundle"
TRAVEL_LIMIT_MIB = 64  # the device tool's working tree a call (tracked + untracked-not-ignored + carried)
# What the device image lacks of Keras's needs (KINDS.md lists the image's packages: numpy, h5py, ml-dtypes, rich,
# absl-py, packaging, pandas, pyyaml, matplotlib, pillow are there; keras, namex and optree are not).
WHEELS = ("keras", "namex", "optree")
ARCHIVE = "results.tar.gz"
MANIFEST = "bundle.json"


def file_weights(exp) -> list[str]:
    """Files a job's model or features read from the data directory (VGG16's ImageNet weights): such a job
    cannot run from a snapshot."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "weights" and isinstance(v, str) and v not in ("imagenet", "none"):
                    found.append(v)
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(experiment.to_plain(exp.config.model))
    walk(experiment.to_plain(exp.config.data))
    return found


def travel_bytes(repo: Path) -> int:
    """Bytes of what the device tool sends besides carried paths: tracked and untracked-not-ignored files."""
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((repo / n.decode()).stat().st_size for n in names if n and (repo / n.decode()).is_file())


def fetch_wheels(folder: Path, python: str) -> list[str]:
    """WHEELS at this environment's versions for CPython `python` on manylinux x86-64, copied into `folder` (and
    kept in the cache: a registry is needed once); their file names."""
    store = cache_dir("wheels", f"cp{python.replace('.', '')}")
    store.mkdir(parents=True, exist_ok=True)

    def stored(name: str, version: str) -> Path | None:
        prefix = f"{name.replace('-', '_')}-{version}-"
        return next((p for p in sorted(store.glob("*.whl")) if p.name.lower().startswith(prefix)), None)

    wanted = []
    for name in WHEELS:
        try:
            wanted.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            raise CnnlabError(f"bundle: {name} is not installed here, so its version is unknown") from None
    missing = [f"{n}=={v}" for n, v in wanted if stored(n, v) is None]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(store)]
        command += ["--python-version", python, "--implementation", "cp"]
        command += [
            f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        ]
        done = subprocess.run([*command, *missing], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CnnlabError(f"bundle: pip could not download {' '.join(missing)} (a registry is needed once): {last}")
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for name, version in wanted:
        wheel = stored(name, version)
        if wheel is None:
            raise CnnlabError(f"bundle: pip downloaded no wheel of {name} {version} for Python {python}")
        shutil.copy2(wheel, folder / wheel.name)
        names.append(wheel.name)
    return names


RUN_SH = """#!/bin/bash
# Written by `{command}` at {when}: {n} run(s) of cnnlab under JAX, {k} at a time on each GPU,
# stopped (resumable) after {minutes} min; the results come back as $OUT/{archive}. Device call (README):
#   run(command="bash {folder}/run.sh", carry=["{folder}"], timeout_s={timeout})
set -u
here=$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)
repo=${{CNNLAB_REPO:-$(cd "$here/{back}" && pwd)}}
out=${{OUT:-$here/out}}
results=${{CNNLAB_BUNDLE_RESULTS:-$(mktemp -d)}}  # fresh: an earlier batch's runs are not this one's
mkdir -p "$out" "$results"
export PYTHONPATH="$repo"
if compgen -G "$here/wheels/*.whl" > /dev/null; then
    site=$(mktemp -d)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \\
        "$here"/wheels/*.whl || exit 3
    PYTHONPATH="$repo:$site"
fi
export KERAS_BACKEND=${{KERAS_BACKEND:-jax}} CNNLAB_SNAPSHOT_DIR="$here/data"
export CNNLAB_CACHE_DIR=${{CNNLAB_CACHE_DIR:-/tmp/cnnlab-bundle-cache}} CNNLAB_HEARTBEAT_SECONDS=120
unset CNNLAB_DATA_DIR
(nvidia-smi || echo "no nvidia-smi") > "$results/device.txt" 2>&1
# SIGTERM, not SIGINT: a command started in the background (as a remote runner may) ignores SIGINT, and cnnlab
# stops on SIGTERM as on Ctrl-C (finished runs written, running ones kept resumable, reproduce.json says so)
timeout -s TERM -k 60 {minutes}m python3 -m cnnlab --results-dir "$results" reproduce --jobs "$here/jobs.json" \\
    --engine local {slots}
status=$?
echo "reproduce exit status $status" >> "$results/device.txt"
tar -czf "$out/{archive}" -C "$results" --exclude='*.keras' --exclude='*.weights.h5' --exclude='.cache' .
ls -l "$out"
exit $status
"""


def build(args) -> int:
    """`cnnlab bundle EXPS`: the bundle folder for the selection's runs not yet complete here."""
    for key in ("runs_per_gpu", "cpu_slots", "minutes"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise CnnlabError(f"bundle: --{key.replace('_', '-')} {value}: expected a whole number >= 1")
    items = list(args.overrides)
    patterns = [a for a in items if "=" not in a]
    overrides = [a for a in items if "=" in a]
    if not patterns:
        raise CnnlabError("bundle: name the experiments to pack (e.g. 'kim_mr*' mnist); the whole suite does not fit")
    jobs = reproduce.plan(reproduce.select(experiment.experiment_refs(), patterns), overrides, args.seeds, args.profile)
    root = paths.results_root(args)
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    today = reproduce.Today(meta.git_commit(reproduce.REPO_ROOT), data_dir=data_dir, results_root=root)
    todo, done = [], 0
    for job in jobs:
        if weights := file_weights(job.experiment):
            raise CnnlabError(
                f"bundle: {job.name} reads {weights[0]} from the data directory, which does not "
                "travel; leave it out of the bundle"
            )
        if not args.force and reproduce.is_complete(job, reproduce.existing_runs(root, job.name), today):
            done += 1
            continue
        todo.append(job)
    if not todo:
        print(f"bundle: all {len(jobs)} run(s) are complete here; nothing to pack (--force packs them anyway)")
        return 0
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    from cnnlab import data as data_mod  # numpy
    from cnnlab.data import snapshot  # numpy

    seen = {}
    for job in todo:
        cfg = job.experiment.config.data
        name = snapshot.key(cfg.dataset, cfg.options)
        if name not in seen:
            where = data_mod.resolve_data_dir(data_dir, cfg.data_dir, job.experiment.path)
            arrays = data_mod.DATASETS[cfg.dataset].load(where, cfg.options)
            seen[name] = snapshot.write(out / "data", cfg.dataset, cfg.options, arrays, data_mod.fingerprint)
    wheels = fetch_wheels(out / "wheels", args.python)
    k = args.runs_per_gpu
    options = [f"--profile {args.profile}", *([f"--seeds {args.seeds}"] if args.seeds is not None else [])]
    command = "cnnlab bundle " + " ".join(
        [*(shlex.quote(a) for a in items), *options, *(["--force"] if args.force else [])]
    )
    jobs_file = {"written_by": command, "written_at": meta.utc_now(), "jobs": [reproduce.job_record(j) for j in todo]}
    atomic_write(out / "jobs.json", json.dumps(jobs_file, indent=1) + "\n")
    folder = (
        out.resolve().relative_to(reproduce.REPO_ROOT) if out.resolve().is_relative_to(reproduce.REPO_ROOT) else out
    )
    timeout = min(600, args.minutes * 60 + 120)  # the device's 10 minutes a command, 2 of them for install and archive
    script = RUN_SH.format(
        command=command,
        when=meta.utc_now(),
        n=len(todo),
        k=k,
        minutes=args.minutes,
        archive=ARCHIVE,
        folder=folder,
        back=os.path.relpath(reproduce.REPO_ROOT, out.resolve()),
        timeout=timeout,
        slots=f"--runs-per-gpu {k}" + (f" --slots {args.cpu_slots}" if args.cpu_slots else ""),
    )
    atomic_write(out / "run.sh", script)
    os.chmod(out / "run.sh", 0o755)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    tree = travel_bytes(reproduce.REPO_ROOT)
    manifest = {
        "command": command,
        "written_at": meta.utc_now(),
        "git_commit": today.commit,
        "jobs": len(todo),
        "skipped_complete_here": done,
        "datasets": {n: {"dataset": e["dataset"], "fingerprint": e["fingerprint"]} for n, e in seen.items()},
        "wheels": wheels,
        "bytes": {"bundle": size, "working_tree": tree},
        "minutes": args.minutes,
        "runs_per_gpu": k,
    }
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    mib = (size + tree) / 2**20
    print(
        f"bundle: {out}: {len(todo)} run(s) ({done} complete here left out), {len(seen)} dataset snapshot(s), "
        f"{len(wheels)} wheel(s); {size / 2**20:.1f} MiB + working tree {tree / 2**20:.1f} MiB = {mib:.1f} MiB"
    )
    if mib > args.max_mib:
        raise CnnlabError(
            f"bundle: {mib:.1f} MiB would travel, over the {args.max_mib:g} MiB limit: pack fewer experiments "
            f"(these datasets: {', '.join(sorted({e['dataset'] for e in seen.values()}))})"
        )
    print(f'device call: run(command="bash {folder}/run.sh", carry=["{folder}"], timeout_s={timeout})')
    print(f"then: cnnlab bundle --import <files_at>/{ARCHIVE}")
    return 0


def safe_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's plain files and folders, none outside it (no absolute path, '..', link or device)."""
    out = []
    for m in archive.getmembers():
        parts = Path(m.name).parts
        if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
            raise CnnlabError(f"bundle --import: {archive.name}: refuses the member {m.name!r}")
        out.append(m)
    return out


def import_archive(args) -> int:
    """`cnnlab bundle --import ARCHIVE`: every complete run in the archive into results/<name>/ (a run id already
    there gets another; nothing is overwritten), the device's batch record under results/bundles/."""
    path = Path(args.import_)
    root = paths.results_root(args)
    try:
        archive = tarfile.open(path, "r:*")
    except OSError as exc:
        raise CnnlabError(f"bundle --import: {path}: cannot read it ({exc.strerror or exc})") from None
    except tarfile.TarError:
        raise CnnlabError(f"bundle --import: {path}: not a tar archive (plain, gzip, bzip2 or xz)") from None
    with archive, tempfile.TemporaryDirectory() as tmp:
        archive.extractall(tmp, members=safe_members(archive))
        got = Path(tmp)
        imported, already = [], 0
        for folder in sorted(p for p in got.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for run in complete_runs(got, folder.name):
                metrics = read_metrics(run)
                if metrics.get("status", "complete") != "complete":
                    continue
                there = root / folder.name / run.name / "metrics.json"
                if there.is_file() and there.read_bytes() == (run / "metrics.json").read_bytes():
                    already += 1  # imported before: the same run, not another repeat
                    continue
                final = deliver(root, folder.name, run.name, payload(run))
                imported.append(f"{folder.name}/{final.name}")
        record = got / reproduce.REPORT
        if record.is_file():
            stamp = json.loads(record.read_text()).get("started_at", "unknown").replace(":", "")
            keep = root / "bundles" / stamp
            keep.mkdir(parents=True, exist_ok=True)
            for name in (reproduce.REPORT, "device.txt"):
                if (got / name).is_file():
                    atomic_write(keep / name, (got / name).read_bytes())
    print(
        f"bundle --import: {len(imported)} complete run(s) into {root}"
        + (f" ({already} already there, left as they are)" if already else "")
        + ("; `cnnlab compare` regenerates the report" if imported else "")
    )
    for line in imported:
        print(f"  {line}")
    return 0


def cmd_bundle(args) -> int:
    if args.import_:
        return import_archive(args)
    return build(args)


def add_parser(sub) -> None:
    """The `cnnlab bundle` subcommand."""
    sp = sub.add_parser(
        "bundle",
        help="pack runs not yet complete here for a GPU machine without the data, Keras or Ray (snapshots of "
        "their datasets, the wheels, run.sh); --import puts the archive that comes back into results/",
    )
    sp.add_argument("overrides", nargs="*", metavar="EXP or key=value", help="experiments and overrides, as reproduce")
    sp.add_argument("--profile", default="full", choices=["full", "quick"], help="as reproduce (default full)")
    sp.add_argument("--seeds", type=int, default=None, metavar="N", help="as reproduce (default: the protocol)")
    sp.add_argument("--force", action="store_true", help="pack runs complete here too")
    sp.add_argument("--data-dir", type=paths.existing_dir, help="local data directory the snapshots are read from")
    sp.add_argument("--out", default=DEFAULT_OUT, help=f"the bundle folder (default {DEFAULT_OUT}, git-ignored)")
    sp.add_argument("--runs-per-gpu", type=int, default=8, metavar="K", help="runs sharing the GPU (default 8)")
    sp.add_argument("--cpu-slots", type=int, default=None, metavar="N", help="runs at once without a GPU (rehearsal)")
    sp.add_argument("--minutes", type=int, default=8, help="stop the batch after this long (default 8)")
    sp.add_argument("--python", default="3.12", help="the device's Python, for the wheels (default 3.12)")
    sp.add_argument("--max-mib", type=float, default=TRAVEL_LIMIT_MIB, help="the travel limit (default 64)")
    sp.add_argument("--import", dest="import_", metavar="ARCHIVE", help="put an archive's complete runs into results/")
    sp.set_defaults(func=cmd_bundle)
