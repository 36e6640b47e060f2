"""The warm process of `cnnlab reproduce` (cnnlab/batch/worker.py): the same numbers as a fresh process, failures and
deaths are the job's, never the next job's."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from cnnlab.batch.warm import WarmProcess
from cnnlab.store.results import complete_runs

SLICE = [
    "data.train_subset=128",
    "data.test_subset=32",
    "train.epochs=2",
    "train.batch_size=32",
    "--verbose",
    "0",
    "--no-summary",
]


def _argv(results: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["--results-dir", str(results), "run", "mnist", *SLICE, *extra, "--data-dir", str(data_dir)]


def _history(run: Path) -> list[tuple[str, str, str]]:
    with open(run / "history.csv") as f:
        return [(r["loss"], r["accuracy"], r["val_loss"]) for r in csv.DictReader(f)]


def test_runs_in_the_warm_process_equal_a_fresh_process_bit_for_bit(data_dir, tmp_path):
    results, logs = tmp_path / "results", tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "CNNLAB_CACHE_DIR": str(tmp_path / "cache")}
    fresh = subprocess.run(
        [sys.executable, "-m", "cnnlab", *_argv(results, data_dir)], env=env, capture_output=True, text=True
    )
    assert fresh.returncode == 0, fresh.stderr
    process = WarmProcess(env)
    try:
        # another experiment first (different seed and model), so the warm runs inherit a used process
        codes = [
            process.run(_argv(results, data_dir, "seed=7"), logs / "a.out", logs / "a.err"),
            process.run(_argv(results, data_dir), logs / "b.out", logs / "b.err"),
            process.run(_argv(results, data_dir), logs / "c.out", logs / "c.err"),
        ]
        pid = process.proc.pid
    finally:
        process.close()
    assert codes == [0, 0, 0], (logs / "b.err").read_text()
    runs = complete_runs(results, "mnist")
    assert len(runs) == 4
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert [m["environment"].get("runs_before_in_process") for m in metrics] == [None, 0, 1, 2]
    assert metrics[2]["environment"]["command"].startswith("cnnlab --results-dir ")
    assert "results: " in (logs / "b.out").read_text()  # the job's own stdout went to its log
    assert _history(runs[0]) == _history(runs[2]) == _history(runs[3])  # fresh = warm after 1 = warm after 2
    assert _history(runs[1]) != _history(runs[0])
    assert pid > 0


def test_a_failed_job_is_reported_and_the_next_job_gets_a_fresh_process(data_dir, tmp_path):
    results, logs = tmp_path / "results", tmp_path / "logs"
    logs.mkdir()
    process = WarmProcess({**os.environ, "CNNLAB_CACHE_DIR": str(tmp_path / "cache")})
    try:
        bad = process.run(_argv(results, data_dir, "train.epochz=1"), logs / "bad.out", logs / "bad.err")
        assert process.proc is None  # it ended itself after the failure
        good = process.run(_argv(results, data_dir), logs / "good.out", logs / "good.err")
    finally:
        process.close()
    assert bad == 2
    assert "cnnlab: error:" in (logs / "bad.err").read_text() and "train.epochz" in (logs / "bad.err").read_text()
    assert good == 0
    (run,) = complete_runs(results, "mnist")
    assert json.loads((run / "metrics.json").read_text())["environment"]["runs_before_in_process"] == 0


def test_a_worker_killed_during_a_job_fails_that_job_only(data_dir, tmp_path):
    results, logs = tmp_path / "results", tmp_path / "logs"
    logs.mkdir()
    process = WarmProcess({**os.environ, "CNNLAB_CACHE_DIR": str(tmp_path / "cache")})
    try:
        killed = process.run(
            _argv(results, data_dir),
            logs / "k.out",
            logs / "k.err",
            started=lambda proc: os.kill(proc.pid, signal.SIGKILL),
        )
        after = process.run(_argv(results, data_dir), logs / "a.out", logs / "a.err")
    finally:
        process.close()
    assert killed == -signal.SIGKILL
    assert after == 0 and len(complete_runs(results, "mnist")) == 1


def test_reproduce_runs_its_jobs_in_one_warm_process_unless_isolated(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("cnnlab.store.meta.git_commit", lambda root: "c0ffee-dirty")
    for flag, expected in (([], [0, 1]), (["--isolate"], [None, None])):
        results = tmp_path / f"results{len(flag)}"
        code, out, err = cli(
            "--results-dir", results, "reproduce", "mnist", "--seeds", "2", *SLICE[:4], "--data-dir", data_dir, *flag
        )
        assert code == 0, out + err
        runs = complete_runs(results, "mnist")
        before = [
            json.loads((r / "metrics.json").read_text())["environment"].get("runs_before_in_process") for r in runs
        ]
        assert before == expected
        report = json.loads((results / "reproduce.json").read_text())
        assert report["process"].startswith("one fresh" if flag else "one warm")
