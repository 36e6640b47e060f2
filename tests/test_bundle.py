"""The GPU bundle (cnnlab.batch.bundle) and the engine it runs on (cnnlab.batch.local_engine): slots and their GPU
shares, a local batch end to end, a failed run that is its own, and a bundle built, run by its own run.sh with no
data directory, and imported — the run's data fingerprint the data directory's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.batch import bundle, local_engine, reproduce
from cnnlab.batch.local_engine import Slot, plan_slots, visible_gpus
from cnnlab.data import snapshot
from cnnlab.store.results import complete_runs, read_metrics

REPO = Path(__file__).resolve().parent.parent
TINY = ["data.train_subset=200", "data.test_subset=100", "train.epochs=1"]


@pytest.mark.parametrize(
    "gpus, devices, per_gpu, slots, want",
    [
        ([], None, None, None, [("cpu", None, 1.0)]),
        ([], None, None, 2, [("cpu 1", None, 1.0), ("cpu 2", None, 1.0)]),
        (["0"], None, 4, None, [(f"gpu 0#{j}", "0", 0.25) for j in (1, 2, 3, 4)]),  # four runs on one GPU
        (["0", "1"], None, None, None, [("gpu 0", "0", 1.0), ("gpu 1", "1", 1.0)]),
        (["0", "1"], ["1", "cpu"], 2, None, [("gpu 1#1", "1", 0.5), ("gpu 1#2", "1", 0.5), ("cpu", None, 1.0)]),
        (["0"], None, 8, 3, [(f"gpu 0#{j}", "0", 0.125) for j in (1, 2, 3)]),  # --slots caps the packed runs
    ],
)
def test_slots_and_their_gpu_shares(gpus, devices, per_gpu, slots, want):
    assert plan_slots(gpus, devices, per_gpu, slots) == [Slot(*w) for w in want]


def test_a_shared_gpu_holds_each_run_to_its_share(monkeypatch):
    monkeypatch.delenv("XLA_CLIENT_MEM_FRACTION", raising=False)
    assert reproduce.gpu_share_env(1.0) == {}
    env = reproduce.gpu_share_env(1 / 8)
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.113"  # 0.9 × 1/8: eight JAX runs fit with their contexts
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    # jaxlib refuses to start with both names set: a user's XLA_CLIENT_MEM_FRACTION is overridden, not doubled
    monkeypatch.setenv("XLA_CLIENT_MEM_FRACTION", ".5")
    env = reproduce.gpu_share_env(1 / 4)
    assert env["XLA_CLIENT_MEM_FRACTION"] == "0.225" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env


def cnnlab(*args, env=None, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env
    )


def test_a_failed_child_is_its_own_run_with_its_reason(tmp_path, data_dir):
    env = {**os.environ, snapshot.ENV: str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / snapshot.MANIFEST).write_text('{"version": 1, "entries": {}}')
    done = cnnlab(
        "--results-dir", tmp_path / "r", "reproduce", "mnist_dense", "--profile", "quick", "--engine", "local",
        *TINY, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    (run,) = json.loads((tmp_path / "r" / "reproduce.json").read_text())["runs"]
    assert (
        run["status"] == "failed"
        and run["exit_code"] == 2
        and run["reason"].startswith(f"{snapshot.ENV}={tmp_path / 'empty'}: no snapshot of mnist")
    )


def test_a_bundle_runs_without_the_data_and_comes_back_as_the_same_data(tmp_path, data_dir, monkeypatch, cli):
    """Built here (the wheels left out: the test environment has Keras, and a registry is not to be relied on),
    run by its own run.sh with no data directory under JAX, imported; the run read the very arrays the data
    directory gives (the same fingerprint) and says where they came from."""
    monkeypatch.setattr(bundle, "fetch_wheels", lambda folder, python: [])
    out = tmp_path / "b"
    code, said, err = cli(
        "--results-dir", tmp_path / "here", "bundle", "mnist_dense", "--profile", "quick", "--seeds", "2",
        "--data-dir", data_dir, "--out", out, "--minutes", "5", "--cpu-slots", "2", *TINY,
    )  # fmt: skip
    assert code == 0, err
    assert "2 run(s) (0 complete here left out), 1 dataset snapshot(s)" in said
    manifest = json.loads((out / bundle.MANIFEST).read_text())
    (fingerprint,) = [d["fingerprint"] for d in manifest["datasets"].values()]

    env = {k: v for k, v in os.environ.items() if k not in ("CNNLAB_DATA_DIR", "PYTHONPATH")}
    env |= {"OUT": str(tmp_path / "out"), "CNNLAB_BUNDLE_RESULTS": str(tmp_path / "device"), "KERAS_BACKEND": "jax"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # python3 is this environment's
    ran = subprocess.run(["bash", str(out / "run.sh")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    archive = tmp_path / "out" / bundle.ARCHIVE
    assert archive.is_file()

    code, said, err = cli("--results-dir", tmp_path / "results", "bundle", "--import", archive)
    assert code == 0 and said.startswith("bundle --import: 2 complete run(s)"), err
    runs = [read_metrics(r) for r in complete_runs(tmp_path / "results", "mnist_dense")]
    assert sorted(m["seed"] for m in runs) == [1, 2]
    for metrics in runs:
        assert metrics["environment"]["backend"] == "jax"
        assert metrics["data"]["fingerprint"] == fingerprint
        assert "read from a snapshot" in metrics["data"]["source"]
    (record,) = (tmp_path / "results" / "bundles").glob(f"*/{reproduce.REPORT}")
    record = json.loads(record.read_text())  # the device's batch: two child processes at once on the CPU
    assert record["engine"] == "local: child processes, 0 GPU(s) seen; 2 slot(s) on the CPU"
    assert record["counts"] == {"complete": 2} and "--engine local" in record["command"]
    assert sorted(r["device"] for r in record["runs"]) == ["cpu", "cpu"]
    seeds = {m["run_id"]: m["seed"] for m in runs}
    assert all(seeds[r["run_id"]] == r["seed"] for r in record["runs"])  # each job told its own run
    code, said, _ = cli("--results-dir", tmp_path / "results", "bundle", "--import", archive)
    assert said.startswith("bundle --import: 0 complete run(s)") and "2 already there" in said
    assert len(complete_runs(tmp_path / "results", "mnist_dense")) == 2


def test_a_job_list_whose_config_changed_is_refused(tmp_path, cli):
    jobs = reproduce.plan(["mnist_dense"], TINY, 1, "quick")
    record = reproduce.job_record(jobs[0]) | {"config_hash": "0" * 16}
    (tmp_path / "jobs.json").write_text(json.dumps({"jobs": [record]}))
    code, out, err = cli("--results-dir", tmp_path, "reproduce", "--jobs", tmp_path / "jobs.json", "--dry-run")
    assert (code, out) == (2, "") and "resolves to config" in err and err.count("\n") == 1
    code, out, err = cli("reproduce", "--jobs", tmp_path / "nope.json")
    assert code == 2 and "nope.json: no such file" in err


def test_a_bundle_cannot_carry_the_imagenet_weights(cli):
    code, out, err = cli("bundle", "vgg16_features", "--profile", "quick")
    assert (code, out) == (2, "") and "reads weights/" in err and "does not travel" in err


@pytest.mark.parametrize("given, seen", [("2,3", ["2", "3"]), ("", []), ("-1", []), (" 1 ", ["1"])])
def test_cuda_visible_devices_names_the_gpus_a_local_batch_may_use(monkeypatch, given, seen):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", given)
    assert visible_gpus() == seen


def test_a_finished_job_is_told_its_own_run_when_a_sibling_finished_first(tmp_path):
    """Two seeds of one experiment at once on two slots: both runs are new when the first child ends; the job is
    given the run of its own config hash (the newest new one was the other seed's: a wrong id and accuracy)."""
    one, two = reproduce.plan(["mnist_dense"], TINY, 2, "quick")
    for job, run_id in ((one, "20260101-000000_quick"), (two, "20260101-000001_quick")):
        (tmp_path / "mnist_dense" / run_id).mkdir(parents=True)
        (tmp_path / "mnist_dense" / run_id / "metrics.json").write_text(json.dumps({"config_hash": job.config_hash}))
    assert one.config_hash != two.config_hash
    assert local_engine.run_of(one, tmp_path, set())[0].name == "20260101-000000_quick"
    assert local_engine.run_of(two, tmp_path, set())[0].name == "20260101-000001_quick"
    assert local_engine.run_of(two, tmp_path, {"20260101-000001_quick"}) is None  # there before it started


def test_a_local_batch_started_in_the_background_stops_on_sigterm_and_keeps_its_run(tmp_path, data_dir):
    """What run.sh's `timeout` does on the device: a batch started with SIGINT ignored (as a command run in the
    background is) does not stop on SIGINT — so run.sh's `timeout -s INT` could have let it run on to the kill —
    and does stop on SIGTERM (`timeout -s TERM`): its child stops the way `cnnlab run` does, keeps its .partial
    folder, and reproduce.json says interrupted."""
    import signal
    import time

    command = [sys.executable, "-m", "cnnlab", "--results-dir", str(tmp_path), "reproduce", "mnist", "--seeds", "1"]
    command += ["--engine", "local", "--data-dir", str(data_dir), "data.train_subset=2000", "train.epochs=50"]
    batch = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "mnist").glob(".*.partial/history.csv")) and time.monotonic() < deadline:
            time.sleep(0.5)  # until the run has finished an epoch
        batch.send_signal(signal.SIGINT)  # ignored, as in the background
        time.sleep(1)
        assert batch.poll() is None
        batch.send_signal(signal.SIGTERM)
        out, err = batch.communicate(timeout=120)
    finally:
        if batch.poll() is None:
            batch.kill()
    assert batch.returncode == 130, out + err
    (run,) = json.loads((tmp_path / "reproduce.json").read_text())["runs"]
    assert run["status"] == "interrupted" and list((tmp_path / "mnist").glob(".*.partial"))
    assert complete_runs(tmp_path, "mnist") == []
