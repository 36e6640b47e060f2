"""End to end on a slice of real MNIST: every result file, the summary row, repeated runs, and clean failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cnnlab.report.compare import write_summary
from cnnlab.report.verdicts import verdict
from cnnlab.store.results import REQUIRED, RunDir, atomic_write, complete_runs

SLICE = ["data.train_subset=300", "data.test_subset=100", "train.epochs=2", "train.batch_size=32"]


@pytest.fixture
def run_slice(cli, data_dir, tmp_path):
    results = tmp_path / "results"

    def run(*extra: str, experiment: str = "mnist"):
        return cli(
            "--results-dir", results, "run", experiment, *SLICE, *extra, "--data-dir", data_dir, "--verbose", "0"
        )

    run.results = results
    return run


def test_end_to_end_writes_every_file_and_a_summary_row(run_slice, data_dir):
    code, out, err = run_slice()
    assert code == 0, err
    results = run_slice.results
    (run,) = complete_runs(results, "mnist")
    assert sorted(p.name for p in run.iterdir()) == sorted(REQUIRED)
    assert (results / "mnist" / "LATEST").read_text().strip() == run.name
    assert run.name.endswith("_full")

    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(history[0])

    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "complete" and m["epochs_run"] == 2 and m["seed"] == 1
    # all 300 trained on (the lecture's protocol); the curves' validation data is the 100 test images
    assert (m["data"]["n_train"], m["data"]["n_val"], m["data"]["n_test"]) == (300, 100, 100)
    assert 0.0 <= m["measured"]["test_accuracy"] <= 1.0 and m["measured"]["params_total"] == 93_322
    best = m["best_val"]
    assert best["monitor"] == "val_accuracy"
    assert best["value"] == max(float(r["val_accuracy"]) for r in history) == m["measured"]["val_accuracy"]
    env = m["environment"]
    for key in ("python", "keras", "backend", "backend_version", "device", "git_commit", "command"):
        assert key in env
    assert m["timing"]["fit_seconds"] > 0 and len(m["timing"]["epoch_seconds"]) == 2
    assert m["overrides"] == SLICE
    # committed files say where things were relative to folders a reader has, not on the machine that ran it
    text = (run / "metrics.json").read_text()
    assert str(Path(data_dir).resolve()) not in text and str(results.resolve()) not in text, text
    assert "IDX files in <data dir>/mnist " in m["data"]["source"] and m["model_file"].startswith(
        "<cache>/models/mnist/"
    )
    assert m["directions"] == {"loss": "down", "accuracy": "up"}
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Total params: 93,322" in (run / "params.md").read_text()
    assert "train_subset: 300" in (run / "config.yaml").read_text()
    assert "results:" in out and "test_accuracy: measured" in out

    with open(results / "summary.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["experiment"] == "mnist"]
    assert {r["metric"] for r in rows} == {"test_accuracy", "params_total"}
    assert all(r["run_id"] == run.name for r in rows)
    assert float(rows[0]["measured"]) == m["measured"][rows[0]["metric"]]
    params_row = next(r for r in rows if r["metric"] == "params_total")
    assert params_row["verdict"] == "within (run with overrides)"
    summary = (results / "summary.md").read_text()
    assert "| mnist | test_accuracy | 0.9913 |" in summary and "not run yet" in summary  # the others
    assert (results / "groups").is_dir()


def test_repeated_runs_never_overwrite(run_slice):
    assert run_slice()[0] == 0
    assert run_slice("seed=2")[0] == 0
    runs = complete_runs(run_slice.results, "mnist")
    assert len(runs) == 2 and runs[0] != runs[1]
    assert (run_slice.results / "mnist" / "LATEST").read_text().strip() == runs[1].name
    seeds = [json.loads((r / "metrics.json").read_text())["seed"] for r in runs]
    assert seeds == [1, 2]


def test_same_seed_same_history(run_slice):
    """Same config, seed and backend on CPU: the same numbers (determinism is issue 5's, this pins the basis)."""
    run_slice()
    run_slice()
    histories = []
    for run in complete_runs(run_slice.results, "mnist"):
        with open(run / "history.csv") as f:
            histories.append([(r["loss"], r["val_accuracy"]) for r in csv.DictReader(f)])
    assert histories[0] == histories[1]


def test_user_mistakes_stop_before_a_run_folder_exists(run_slice):
    code, _, err = run_slice("data.options.one_hot=false")  # sparse labels under categorical_crossentropy
    assert code == 2 and err.count("\n") == 1 and "train.loss" in err and "labels of shape []" in err
    code, _, err = run_slice("data.options.flatten=true")  # (784,) samples into a (28, 28, 1) model
    assert code == 2 and "model.input_shape" in err and "[784]" in err
    assert not (run_slice.results / "mnist").exists() or not any((run_slice.results / "mnist").iterdir())


def test_unwritable_results_dir_is_one_line(cli, data_dir, tmp_path):
    """A results folder that is a file, or lies below one: refused by the entry point before Keras is imported
    (paths.check_environment), where it was the run folder's mkdir failing after the data had loaded."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for given, says in (
        (blocker, f"--results-dir: {blocker} is a file, not a folder"),
        (blocker / "results", f"--results-dir: {blocker / 'results'} cannot be a folder: {blocker} is a file"),
    ):
        code, out, err = cli("--results-dir", given, "run", "mnist", *SLICE, "--data-dir", data_dir, "--verbose", "0")
        assert (code, out, err) == (2, "", f"cnnlab: error: {says}\n")


def test_partial_runs_are_never_read_as_complete(tmp_path):
    partial = RunDir(tmp_path, "mnist", "full")
    partial.write_json("metrics.json", {"status": "complete", "measured": {"test_accuracy": 1.0}})
    assert partial.partial.name.startswith(".") and complete_runs(tmp_path, "mnist") == []
    with pytest.raises(RuntimeError, match="missing"):
        partial.finish()  # without history, params, curves and config it cannot be moved into place
    write_summary(tmp_path)
    assert "not run yet" in (tmp_path / "summary.md").read_text()
    second = RunDir(tmp_path, "mnist", "full")
    assert second.run_id != partial.run_id  # two runs in the same second get distinct folders


_CLAIM = """
import sys, time
from pathlib import Path
root, go = Path(sys.argv[1]), Path(sys.argv[2])
time.strftime = lambda *a: "20260101-000000"   # every process in the same second: they must compete for ids
while not go.exists():
    time.sleep(0.001)
from cnnlab.store.results import RunDir
print(RunDir(root, "mnist", "full").run_id)
"""


def test_processes_starting_together_get_distinct_run_ids(tmp_path):
    import subprocess
    import sys

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIM, str(tmp_path / "results"), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    (tmp_path / "results" / "mnist").mkdir(parents=True)
    (tmp_path / "results" / "mnist" / "20260101-000000_full-3").mkdir()  # a finished run holds one id already
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    ids = sorted(out.strip() for out, _ in outs)
    # the first free ids, each once: the base, -2, -4 … -9 (-3 is taken by the finished run)
    assert ids == sorted(["20260101-000000_full", *(f"20260101-000000_full-{n}" for n in (2, 4, 5, 6, 7, 8, 9))])
    assert sorted(p.name for p in (tmp_path / "results" / "mnist").glob(".*.partial")) == sorted(
        f".{i}.partial" for i in ids
    )


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write(target, "old")
    atomic_write(target, "new content")
    assert target.read_text() == "new content"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary left behind


@pytest.mark.parametrize(
    "value, profile, overrides, expected",
    [
        (0.990, "full", (), "within"),
        (0.980, "full", (), "below"),
        (0.999, "full", (), "above"),
        (0.990, "quick", (), "within (quick profile, not comparable)"),
        (0.990, "full", ("train.epochs=1",), "within (run with overrides)"),
        (None, "full", (), "not measured"),
    ],
)
def test_verdict(value, profile, overrides, expected):
    assert verdict(value, (0.987, 0.994), profile, overrides) == expected


def test_atomic_writes_are_readable_by_others(tmp_path):
    import os
    import stat

    import numpy as np

    target = tmp_path / "summary.md"
    atomic_write(target, "x")
    from cnnlab.store import files as store

    # what open() would give under this process's umask (0644 under the usual 022), not mkstemp's 0600
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~store._UMASK
    entry = tmp_path / "cache" / "e.npz"  # the caches' writer too (decoded images, tokens, features)
    store.write_npz(entry, x=np.arange(3))
    assert stat.S_IMODE(os.stat(entry).st_mode) == 0o666 & ~store._UMASK
    assert list(store.read_npz(entry)) == ["x"] and not [p for p in entry.parent.iterdir() if p != entry]


def test_portable_paths_through_a_symbolic_link(tmp_path):
    """A clean clone with ../shared linked beside it (found by running `make test` so): the data folder's path as
    given kept the link, was not the resolved one portable() looked for, and metrics.json named this machine's
    /…/shared/data."""
    from cnnlab.store.results import portable

    real = tmp_path / "disk" / "data"
    real.mkdir(parents=True)
    link = tmp_path / "shared"
    link.symlink_to(real.parent)
    given = link / "data"
    got = portable({"a": f"IDX files in {given}/mnist", "b": [f"{real}/x", str(given)]}, {"data dir": given})
    assert got == {"a": "IDX files in <data dir>/mnist", "b": ["<data dir>/x", "<data dir>"]}
