"""Chaos (slow): ≥ 20 SIGKILLs at random moments across small MNIST runs; each run, restarted until it
finishes, must end complete with every epoch in its history exactly once and the resume state cleared.

Whatever moment a kill lands on (start-up, data loading, mid-epoch, a backup or a history row being written,
the final rename), the invariants hold; the schedule is seeded, so a failure can be replayed.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow
EPOCHS = 8
ARGS = ["data.train_subset=1200", "data.test_subset=200", f"train.epochs={EPOCHS}", "train.batch_size=32"]


def _rows(results):
    found = list((results / "mnist").glob(".*.partial/history.csv")) if (results / "mnist").is_dir() else []
    if not found:
        return -1
    with open(found[0], newline="") as f:
        return sum(1 for _ in csv.DictReader(f))


def _kill_at_random(proc, results, rng) -> bool:
    """Kill -9 at a seeded random point: during start-up (a random delay), or once the partial history has k
    rows plus a random part of an epoch (mid-epoch, during a backup or a row's write). False if it finished."""
    if rng.random() < 0.25:
        deadline = time.time() + rng.uniform(0.5, 8.0)
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
    else:
        k = rng.randrange(0, EPOCHS - 1)
        while proc.poll() is None and _rows(results) < k:
            time.sleep(0.01)
        deadline = time.time() + rng.uniform(0.0, 2.0)
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.005)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def test_twenty_random_kills_never_lose_or_repeat_an_epoch(data_dir, tmp_path):
    rng = random.Random(20261201)
    env = {
        **os.environ,
        "CNNLAB_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
        "CNNLAB_BACKUP_SECONDS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    kills, runs, resumed = 0, 0, []
    while kills < 20 or runs < 3:
        runs += 1
        results = tmp_path / f"results{runs}"
        cmd = [
            sys.executable,
            "-m",
            "cnnlab",
            "--results-dir",
            str(results),
            "run",
            "mnist",
            *ARGS,
            f"seed={runs}",
            "--data-dir",
            str(data_dir),
            "--verbose",
            "0",
            "--no-summary",
        ]
        for attempt in range(40):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if attempt < 8 and _kill_at_random(proc, results, rng):
                kills += 1
                continue
            _, err = proc.communicate(timeout=600)  # the last attempt of a run is left to finish
            assert proc.returncode == 0 and b"Traceback" not in err, err.decode()[-1500:]
            break
        # a kill that lands after the final rename leaves a complete run, and the same command then makes a
        # new one (runs are never overwritten): every complete run must be whole, none partial
        complete = [p for p in (results / "mnist").iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert complete and not list((results / "mnist").glob(".*.partial"))
        for run in complete:
            with open(run / "history.csv", newline="") as f:
                assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(1, EPOCHS + 1)), run
            m = json.loads((run / "metrics.json").read_text())
            assert m["status"] == "complete" and m["epochs_run"] == EPOCHS
            resumed.append(m["resumed_from_epoch"])
        state = tmp_path / "cache" / "resume" / "mnist"
        assert not state.exists() or not any(state.iterdir())
    print(f"{kills} kills over {runs} runs; resumed from epochs {resumed}")
