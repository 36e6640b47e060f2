"""The results folder: one directory per run, written atomically, never overwriting an earlier run.

Layout: results/<experiment>/<UTC time>_<profile>/{config.yaml, history.csv, metrics.json, params.csv,
params.md, curves.png}; results/<experiment>/LATEST names the newest complete run.
Trap: a run is built in a hidden `.<run id>.partial/` folder and renamed into place only when metrics.json
is written, so an interrupted run can never be read as complete; `compare` skips hidden folders.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.store.files import CHECKSUM, atomic_write, cache_dir, read_npz, write_npz  # noqa: F401 - also results.*

LATEST = "LATEST"
REQUIRED = ("config.yaml", "history.csv", "metrics.json", "params.csv", "params.md", "curves.png")


def read_history(path: Path) -> list[dict]:
    """history.csv rows as numbers (epoch and phase as integers); [] if there is none."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    return [
        {k: (int(float(v)) if k in ("epoch", "phase") else float(v)) for k, v in r.items() if v not in (None, "")}
        for r in rows
    ]


def history_columns(rows: list[dict]) -> dict[str, list[float]]:
    """read_history's rows as columns: 'val_accuracy' → its value at every epoch that has one."""
    out: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.items():
            out.setdefault(k, []).append(v)
    return out


def csv_text(rows: list[dict[str, Any]], fieldnames: list[str] | None = None) -> str:
    buf = io.StringIO()
    fieldnames = fieldnames or list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class RunDir:
    """A run's folder under construction; `finish()` moves it into place."""

    def __init__(self, root: Path, experiment: str, profile: str):
        self.experiment_dir = Path(root) / experiment
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        try:
            self.experiment_dir.mkdir(parents=True, exist_ok=True)
            for n in range(1, 10_000):
                run_id = f"{stamp}_{profile}" + (f"-{n}" if n > 1 else "")
                final = self.experiment_dir / run_id
                partial = self.experiment_dir / f".{run_id}.partial"
                if final.exists():
                    continue
                try:
                    partial.mkdir()  # atomic: of processes starting in the same second, one gets each id
                except FileExistsError:
                    continue
                if final.exists():  # a run of that id finished (renamed) between the two checks: not ours
                    partial.rmdir()
                    continue
                break
            else:
                raise FileExistsError(f"every run id of {stamp} is taken")
        except OSError as exc:
            raise CnnlabError(
                f"{self.experiment_dir}: cannot create the results folder: {exc.strerror or exc}"
            ) from None
        self.run_id, self.final, self.partial = run_id, final, partial

    @classmethod
    def reopen(cls, root: Path, experiment: str, run_id: str) -> RunDir | None:
        """An interrupted run's `.partial` folder to continue writing into, or None if it is gone."""
        self = cls.__new__(cls)
        self.experiment_dir = Path(root) / experiment
        self.run_id, self.final = run_id, self.experiment_dir / run_id
        self.partial = self.experiment_dir / f".{run_id}.partial"
        return self if self.partial.is_dir() and not self.final.exists() else None

    def path(self, name: str) -> Path:
        return self.partial / name

    def write(self, name: str, data: bytes | str) -> Path:
        atomic_write(self.path(name), data)
        return self.path(name)

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write(name, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")

    def finish(self) -> Path:
        """Move the complete run into place and point LATEST at it."""
        missing = [n for n in REQUIRED if not self.path(n).is_file()]
        if missing:
            raise RuntimeError(f"cnnlab bug: run {self.run_id} is missing {missing}")
        try:
            os.replace(self.partial, self.final)
        except OSError as exc:
            raise CnnlabError(f"{self.final}: cannot move the finished run into place: {exc.strerror or exc}") from None
        atomic_write(self.experiment_dir / LATEST, self.run_id + "\n")
        return self.final


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def complete_runs(root: Path, experiment: str) -> list[Path]:
    """Complete runs of one experiment, oldest first (folder names start with the UTC time)."""
    folder = Path(root) / experiment
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "metrics.json").is_file()
    )


def portable(obj: Any, places: dict[str, Path | None]) -> Any:
    """`obj` (a metrics dict) with every absolute path under one of `places` written as '<name>/rest'
    ('<data dir>/cats_and_dogs_small', '<cache>/models/mnist/…keras'), so that a committed file says where a
    thing was relative to the folders a reader has, not on the machine that ran it. Longest place first.
    Trap: a place reached through a symbolic link (`../shared` linked beside a clone) appears in the strings as
    given, not resolved: both spellings are replaced."""
    spellings = {
        (spelt, name) for name, p in places.items() if p for spelt in (os.path.abspath(p), str(Path(p).resolve()))
    }
    roots = sorted(spellings, key=lambda r: (-len(r[0]), r))

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            for root, name in roots:
                value = value.replace(root + os.sep, f"<{name}>/").replace(root, f"<{name}>")
            return value
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [fix(v) for v in value]
        return value

    return fix(obj)


def precision_of(m: dict) -> str:
    """The Keras dtype policy a run trained under (what `train.precision: auto` became on its machine)."""
    return (m.get("precision") or {}).get("policy") or m.get("dtype_policy") or "float32"


RUN_COLUMNS = [
    "experiment",
    "run_id",
    "status",
    "profile",
    "seed",
    "fold",
    "overrides",
    "precision",
    "backend",
    "keras",
    "device",
    "finished_at",
    "epochs_run",
    "wall_seconds",
]


def load(results_dir: str | os.PathLike = "results", experiments: Iterable[str] | None = None):
    """Every complete run under `results_dir` as a tidy pandas DataFrame: one row per run × measured metric
    (test_accuracy, val_loss, params_total, ...), with the run's experiment, id, seed, fold, overrides,
    precision, backend, Keras version, device, finish time, epochs and wall seconds beside it.

    Reference: the design card's pandas; timm's results/*.csv (every number with what produced it).
    Trap: `value` is the run's own measured number (val_* the best epoch's, train_* the last one's); a
    reference's statistic (mean of the last 10 epochs, ...) is in summary.csv, which applies it.

        import cnnlab.store.results as R
        df = R.load("results")
        df[df.metric == "test_accuracy"].groupby("experiment").value.agg(["mean", "std", "count"])
    """
    import pandas as pd

    root = Path(results_dir)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    if experiments is not None:
        wanted = set(experiments)
        names = [n for n in names if n in wanted]
    rows = []
    for name in names:
        for run in complete_runs(root, name):
            try:
                m = read_metrics(run)
            except CnnlabError:
                continue
            env, repeat = m.get("environment") or {}, m.get("repeat") or {}
            base = {
                "experiment": name,
                "run_id": run.name,
                "status": m.get("status", "complete"),
                "profile": m.get("profile"),
                "seed": m.get("seed", repeat.get("seed")),
                "fold": repeat.get("fold"),
                "overrides": " ".join(m.get("overrides") or []),
                "precision": precision_of(m),
                "backend": env.get("backend"),
                "keras": env.get("keras"),
                "device": env.get("device"),
                "finished_at": m.get("finished_at"),
                "epochs_run": m.get("epochs_run"),
                "wall_seconds": (m.get("timing") or {}).get("wall_seconds"),
            }
            for metric, value in (m.get("measured") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({**base, "metric": metric, "value": float(value)})
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "metric", "value"])
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True, errors="coerce")
    return frame.astype({"seed": "Int64", "fold": "Int64", "epochs_run": "Int64"})


def read_metrics(run: Path) -> dict:
    """A run's metrics.json; a damaged one is a one-line CnnlabError naming the file (never a traceback)."""
    path = Path(run) / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CnnlabError(
            f"{path}: not a readable metrics.json ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:80]}); repair it or move the run folder away"
        ) from None
    if not isinstance(data, dict):
        raise CnnlabError(
            f"{path}: not a readable metrics.json (a JSON {type(data).__name__}, not an object); "
            "repair it or move the run folder away"
        )
    return data
