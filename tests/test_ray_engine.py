"""`cnnlab reproduce`'s engine (cnnlab.batch.ray_engine): what travels back from a node and how it lands, the slots
Ray is asked for, a warm actor's run bit-identical to a fresh process's, failures and a killed actor that are
their run's and never the next run's, Ctrl-C, GPUs named by --devices, and a two-node cluster on this machine
losing a node mid-batch (ray.cluster_utils)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cnnlab.batch import ray_engine as RE
from cnnlab.batch import reproduce
from cnnlab.errors import CnnlabError
from cnnlab.store.results import complete_runs

QUICK = ["--profile", "quick", "data.train_subset=200", "data.test_subset=100", "train.epochs=1"]


def test_only_small_text_and_pictures_travel(tmp_path):
    run = tmp_path / "run"
    (run / "explain").mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "curves.png").write_bytes(b"png")
    (run / "explain" / "saliency.png").write_bytes(b"png")
    (run / "model.keras").write_bytes(b"weights")  # a checkpoint stays on its node
    (run / "big.csv").write_bytes(b"0" * (RE.MAX_FILE_BYTES + 1))
    assert sorted(RE.payload(run)) == ["curves.png", "explain/saliency.png", "metrics.json"]


def test_a_delivered_run_appears_whole_under_a_free_id(tmp_path):
    files = {"metrics.json": b"{}", "explain/a.png": b"x"}
    first = RE.deliver(tmp_path, "mnist", "20260101-000000_full", files)
    second = RE.deliver(tmp_path, "mnist", "20260101-000000_full", files)  # two nodes, one second
    assert first.name == "20260101-000000_full" and second.name == "20260101-000000_full-2"
    assert (second / "explain" / "a.png").read_bytes() == b"x"
    assert not list((tmp_path / "mnist").glob(".*incoming"))
    assert (tmp_path / "mnist" / "LATEST").read_text().strip() == second.name


@pytest.mark.parametrize(
    "resources, per_gpu, slots, devices, want",
    [
        ({"CPU": 2}, None, None, None, [(2.0, 0.0)]),  # one run at a time, on every CPU
        ({"CPU": 16}, None, 4, None, [(4.0, 0.0)] * 4),
        ({"CPU": 2}, None, 4, None, [(0.5, 0.0)] * 4),  # more slots than CPUs: a share each
        ({"CPU": 16, "GPU": 1}, 8, None, None, [(2.0, 0.125)] * 8),  # eight runs packed on one GPU
        ({"CPU": 16, "GPU": 2}, None, None, None, [(8.0, 1.0)] * 2),
        ({"CPU": 8, "GPU": 2}, 2, None, ["0", "3", "cpu"], [(1.0, 0.5)] * 4 + [(1.0, 0.0)]),
        ({"CPU": 2}, None, None, ["cpu", "cpu"], [(1.0, 0.0)] * 2),
    ],
)
def test_slots(resources, per_gpu, slots, devices, want):
    got = RE.plan_slots(resources, per_gpu, slots, devices)
    assert [(s.num_cpus, s.num_gpus) for s in got] == want
    assert [s.label for s in got] == [f"ray {k + 1}" for k in range(len(want))]


def test_a_runs_failure_is_a_value_with_its_one_line_reason(tmp_path, monkeypatch, capsys):
    """What the actor answers instead of the driver scraping stderr: a user error's status and line, a bug's
    exception line (its traceback on the run's stderr), 130 when stopped."""
    from cnnlab.config import experiment

    job = {"ref": "mnist", "overrides": [], "profile": "quick"}
    for raised, want in (
        (
            CnnlabError("configs/mnist.yaml: train.epochz: unknown key"),
            (2, "configs/mnist.yaml: train.epochz: unknown key"),
        ),
        (ValueError("NaN loss at epoch 3"), (1, "ValueError: NaN loss at epoch 3")),
        (KeyboardInterrupt(), (130, "interrupted")),
    ):

        def boom(*a, _e=raised, **k):
            raise _e

        monkeypatch.setattr(experiment, "load", boom)
        assert RE.run_here(job, tmp_path) == want
    assert "Traceback" in capsys.readouterr().err
    assert RE.short("a\n  b " + "x" * 400).startswith("a b x") and len(RE.short("x" * 400)) == 300


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray")
    yield ray
    if ray.is_initialized():
        ray.shutdown()


def _history(run: Path) -> list[list[str]]:
    with open(run / "history.csv") as f:
        return [[v for k, v in row.items() if not k.endswith("_seconds")] for row in csv.DictReader(f)]


def _runs(results: Path, name: str) -> dict[int, Path]:
    return {json.loads((r / "metrics.json").read_text())["seed"]: r for r in complete_runs(results, name)}


def test_a_warm_actors_run_equals_a_fresh_process_bit_for_bit(ray_local, cli, data_dir, tmp_path):
    """Seed 2 runs second in its slot's actor (after seed 1: a used process) and must equal `cnnlab run`'s fresh
    process; the next batch skips both; --isolate gives each run its own actor."""
    fresh, warm, isolated = tmp_path / "fresh", tmp_path / "warm", tmp_path / "isolated"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cmd = [sys.executable, "-m", "cnnlab", "--results-dir", str(fresh), "run", "mnist", *QUICK, "seed=2"]
    done = subprocess.run([*cmd, "--data-dir", str(data_dir), "--no-summary"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    args = ["reproduce", "mnist", *QUICK, "--seeds", "2", "--data-dir", data_dir]
    code, out, err = cli("--results-dir", warm, *args)
    assert code == 0, out + err
    assert out.startswith("engine: ray ") and "seed 2: done in" in out
    (a,), b = complete_runs(fresh, "mnist"), _runs(warm, "mnist")[2]
    assert _history(a) == _history(b)
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert ma["measured"] == mb["measured"] and ma["config_hash"] == mb["config_hash"]
    assert mb["environment"]["runs_before_in_process"] == 1 and "runs_before_in_process" not in ma["environment"]
    assert mb["environment"]["command"].startswith("cnnlab run mnist ") and "seed=2" in mb["environment"]["command"]
    report = json.loads((warm / "reproduce.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["complete", "complete"] and report["process"].startswith(
        "one warm"
    )
    code, out, _ = cli("--results-dir", warm, *args)
    assert code == 0 and out.count("skipped (complete") == 2 and "engine:" not in out  # no engine started
    code, out, err = cli("--results-dir", isolated, *args, "--isolate")
    assert code == 0, out + err
    before = sorted(
        json.loads((r / "metrics.json").read_text())["environment"]["runs_before_in_process"]
        for r in complete_runs(isolated, "mnist")
    )
    assert before == [0, 0]
    assert json.loads((isolated / "reproduce.json").read_text())["process"] == "one fresh process per run"


def _wait_all(engine: RE.RayEngine, n: int, limit: float = 300) -> list:
    got, t0 = [], time.perf_counter()
    while len(got) < n and time.perf_counter() - t0 < limit:
        got += engine.wait(0.5)
    return got


def test_a_failed_or_killed_run_is_its_own_and_the_next_gets_a_fresh_actor(ray_local, data_dir, tmp_path):
    import ray

    engine = RE.RayEngine(data_dir=str(data_dir), results_root=tmp_path)
    try:
        (slot,) = engine.slots
        bad = reproduce.Job("mnist", "mnist", 1, ("train.epochz=1",), "quick")
        engine.submit(slot, bad, tmp_path / "logs" / "bad")
        ((_, failed),) = _wait_all(engine, 1)
        assert failed.status == "failed" and failed.exit_code == 2 and "train.epochz" in failed.reason
        assert "cnnlab: error:" in (tmp_path / "logs" / "bad.err").read_text()
        assert slot not in engine.actors  # replaced: the next run gets a fresh actor

        good = reproduce.Job("mnist", "mnist", 1, tuple(QUICK[2:]), "quick")
        engine.submit(slot, good, tmp_path / "logs" / "killed")
        time.sleep(3)  # the actor is inside the run (TensorFlow importing, or training)
        ray.kill(engine.actors[slot], no_restart=True)
        ((_, lost),) = _wait_all(engine, 1)
        assert lost.status == "failed" and lost.reason.startswith(RE.LOST)

        engine.submit(slot, good, tmp_path / "logs" / "after")
        ((_, after),) = _wait_all(engine, 1)
        assert after.status == "complete", after
        (run,) = complete_runs(tmp_path, "mnist")
        assert json.loads((run / "metrics.json").read_text())["environment"]["runs_before_in_process"] == 0
    finally:
        engine.close()


def test_cancel_stops_a_running_run_and_leaves_it_resumable(ray_local, data_dir, tmp_path):
    """Ctrl-C's path: ray.cancel raises KeyboardInterrupt inside the run, which stops at once and keeps its
    .partial folder in the node's staging folder; nothing reaches results/."""
    engine = RE.RayEngine(data_dir=str(data_dir), results_root=tmp_path / "results")
    try:
        (slot,) = engine.slots
        job = reproduce.Job("mnist", "mnist", 1, ("data.train_subset=2000", "train.epochs=50"), "quick")
        engine.submit(slot, job, tmp_path / "logs" / "long")
        (staging,) = engine.partial_roots
        t0 = time.perf_counter()
        while not list(staging.glob("mnist/.*.partial/history.csv")) and time.perf_counter() - t0 < 180:
            time.sleep(0.2)  # until its first epoch is written
        assert list(staging.glob("mnist/.*.partial/history.csv")), "the run never finished an epoch"
        t1 = time.perf_counter()
        engine.cancel(30)
        assert time.perf_counter() - t1 < 30 and not engine.running
        assert list(staging.glob("mnist/.*.partial")) and not (tmp_path / "results" / "mnist").exists()
    finally:
        engine.close()


def test_devices_name_the_gpus_the_local_runtime_hands_out(ray_local, monkeypatch):
    """--devices 1,cpu on a machine with GPUs: Ray starts knowing only GPU 1 (CUDA_VISIBLE_DEVICES), one slot for
    it and one CPU slot; an actor asking for a GPU is given GPU 1. (Ray's GPUs are logical resources: this runs
    on a CPU-only machine too.)"""
    import ray

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    engine = RE.RayEngine(devices=["1", "cpu"])
    try:
        assert [(s.num_gpus > 0) for s in engine.plan.values()] == [True, False] and "1 GPUs" in engine.description
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
        on_gpu = ray.remote(num_gpus=1)(lambda: (RE.device_label(), os.environ.get("CUDA_VISIBLE_DEVICES")))
        assert ray.get(on_gpu.remote()) == ("gpu 1", "1")
        assert ray.get(ray.remote(lambda: RE.device_label()).remote()) == "cpu"
    finally:
        engine.close()


def test_a_node_lost_mid_batch_fails_its_run_and_the_rest_complete(ray_local, data_dir, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=1, resources={"second_node": 1})
    try:
        ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
        jobs = reproduce.plan(["mnist"], QUICK[2:], 3, "quick")  # three seeds: each some seconds in a fresh actor
        batch = reproduce.Batch(jobs, "quick", 3, ["mnist"], QUICK[2:], False, None, "test", None, False)
        lines = []
        both_busy = threading.Event()

        def log(line):
            lines.append(line)
            if sum("started" in x for x in lines) == 2:
                both_busy.set()  # both slots busy: one of them on the node about to go

        engine = RE.RayEngine(data_dir=str(data_dir), address=cluster.address, slots=2, results_root=tmp_path)
        result = {}
        t = threading.Thread(
            target=lambda: result.setdefault(
                "code", reproduce.execute(batch, tmp_path, lambda: engine, str(data_dir), log=log)
            )
        )
        t.start()
        assert both_busy.wait(120)
        time.sleep(1.5)  # both actors placed, one per node (1 CPU each); neither run can be over yet
        cluster.remove_node(doomed)
        t.join(300)
        assert not t.is_alive()
        statuses = [batch.outcomes[i].status for i in range(len(jobs))]
        assert statuses.count("failed") == 1 and statuses.count("complete") == 2, lines
        failed = next(o for o in batch.outcomes.values() if o.status == "failed")
        assert failed.reason.startswith(RE.LOST)
        assert result["code"] == 1
        assert len([p for p in (tmp_path / "mnist").iterdir() if p.is_dir()]) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_sigterm_after_ray_starts_is_still_cnnlabs_ctrl_c():
    """`ray.init` puts Ray's C++ failure handler on SIGTERM (it printed "*** SIGTERM received" and killed the batch
    without its record, measured on `kill` of a `cnnlab reproduce`); start() puts cnnlab's handler back, so the
    signal arrives as cli.Terminated, the path Ctrl-C takes. In a fresh process: the handler must be the OS's."""
    code = (
        "import os, signal, sys, time\n"
        "from cnnlab import cli\n"
        "from cnnlab.batch import ray_engine\n"
        "cli._stop_on_sigterm()\n"
        "ray_engine.start(None, num_cpus=1)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "    print('not delivered')\n"
        "except cli.Terminated:\n"
        "    print('handled as Ctrl-C')\n"
        "import ray; ray.shutdown()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "handled as Ctrl-C"
    assert "SIGTERM received" not in done.stderr


def test_no_address_starts_a_runtime_of_its_own_whatever_ray_current_cluster_names(tmp_path):
    """Without --address, Ray's own default joins the runtime named in $RAY_TMPDIR/ray/ray_current_cluster (which
    `ray start` and ray.cluster_utils write): measured, a test's batch ran its job in a two-node test cluster of
    another process (the job's config resolved there: another config hash), and a file left by a stopped runtime
    made `cnnlab reproduce` wait on the dead address for good. start(None) must come up as a new local runtime."""
    short = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # Ray's socket paths must stay under 108 characters
    try:
        (short / "ray").mkdir()
        (short / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")  # the discard port: nobody there
        code = (
            "import ray\n"
            "from cnnlab.batch import ray_engine\n"
            "resources = ray_engine.start(None, num_cpus=1)\n"
            "print(resources.get('CPU'), ray.get_runtime_context().gcs_address != '127.0.0.1:9')\n"
            "ray.shutdown()\n"
        )
        env = {**os.environ, "RAY_TMPDIR": str(short)}
        env.pop("RAY_ADDRESS", None)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["1.0", "True"]
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_a_runtime_that_cannot_start_is_one_line_and_shut_down(monkeypatch):
    """Measured on a 2-core machine running four test suites, a batch started under `nice 19` died in a traceback:
    Ray's raylet did not register within its 30 s and ray.init raised a bare Exception ("The current node timed
    out during startup"), which start() did not catch. Now one line, and the half-started runtime is shut down."""
    import ray

    calls = []

    def timed_out(**kwargs):
        calls.append(("init", kwargs.get("address")))
        raise Exception("The current node timed out during startup. This could happen because ...")  # noqa: TRY002

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append(("shutdown", None)))
    with pytest.raises(CnnlabError) as local:
        RE.start(None, num_cpus=1)
    text = str(local.value)
    assert text.startswith("reproduce: cannot start a local Ray runtime: The current node timed out during startup")
    assert "\n" not in text and "30 s" in text and "cnnlab run" in text
    assert calls == [("init", "local"), ("shutdown", None)]

    def refused(**kwargs):
        raise ConnectionError("Could not find any running Ray instance")

    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.setattr(ray, "shutdown", lambda: 1 / 0)  # a shutdown that fails too: the start's error is the one
    with pytest.raises(CnnlabError, match=r"^reproduce: cannot reach the Ray cluster at '10\.0\.0\.1:6379': Could not"):
        RE.start("10.0.0.1:6379")


def test_an_actor_resolves_names_where_the_driver_does(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_CONFIGS_DIR", raising=False)
    assert RE.actor_env(None) == {}
    assert RE.actor_env("/data") == {"CNNLAB_DATA_DIR": "/data"}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_CONFIGS_DIR", "my_configs")  # relative: the actor's working folder is not ours
    assert RE.actor_env("/data") == {"CNNLAB_DATA_DIR": "/data", "CNNLAB_CONFIGS_DIR": str(tmp_path / "my_configs")}
