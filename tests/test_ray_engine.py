"""`cnnlab reproduce --engine ray` (cnnlab.batch.ray_engine): what travels back from a node and how it lands, the
slots Ray is asked for, a local batch bit-identical to the local engine's, and a two-node cluster on this machine
losing a node mid-batch (ray.cluster_utils)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from cnnlab.batch import ray_engine as RE

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
    "resources, per_gpu, slots, want",
    [
        ({"CPU": 2}, None, None, RE.Slots(1, 2.0, 0.0)),  # one run at a time, on every CPU
        ({"CPU": 16}, None, 4, RE.Slots(4, 4.0, 0.0)),
        ({"CPU": 16, "GPU": 1}, 8, None, RE.Slots(8, 2.0, 0.125)),  # eight runs packed on one GPU
        ({"CPU": 16, "GPU": 2}, None, None, RE.Slots(2, 8.0, 1.0)),
    ],
)
def test_slots(resources, per_gpu, slots, want):
    assert RE.plan_slots(resources, per_gpu, slots) == want


def test_engine_flags_are_checked_before_anything_runs(cli, tmp_path):
    code, _, err = cli("--results-dir", tmp_path, "reproduce", "mnist", "--slots", "2")
    assert code == 2 and "need --engine ray" in err
    code, _, err = cli("--results-dir", tmp_path, "reproduce", "mnist", "--engine", "ray", "--devices", "cpu")
    assert code == 2 and "--devices is the local engine's" in err


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


def _history(run):
    rows = (run / "history.csv").read_text().splitlines()
    head = rows[0].split(",")
    keep = [k for k, h in enumerate(head) if not h.endswith("_seconds")]
    return [[r.split(",")[k] for k in keep] for r in rows]


def test_a_local_ray_batch_equals_the_local_engine_bit_for_bit(ray_local, cli, data_dir, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    args = ["reproduce", "mnist", "mnist_dense", *QUICK, "--data-dir", data_dir]
    assert cli("--results-dir", local, *args)[0] == 0
    code, out, err = cli("--results-dir", remote, *args, "--engine", "ray")
    assert code == 0, err
    assert "ray: " in out and "[ray 1] mnist seed 1: done in" in out
    for name in ("mnist", "mnist_dense"):
        (a,) = [p for p in (local / name).iterdir() if p.is_dir()]
        (b,) = [p for p in (remote / name).iterdir() if p.is_dir()]
        assert _history(a) == _history(b)
        ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
        assert ma["measured"] == mb["measured"] and ma["config_hash"] == mb["config_hash"]
    report = json.loads((remote / "reproduce.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["complete", "complete"]
    # finished runs count for the next batch, whichever engine made them
    code, out, _ = cli("--results-dir", remote, *args)
    assert code == 0 and out.count("skipped (complete") == 2


def test_a_node_lost_mid_batch_fails_its_run_and_the_rest_complete(data_dir, tmp_path, capsys):
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    from cnnlab.batch import reproduce

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=1, resources={"second_node": 1})
    try:
        ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
        jobs = reproduce.plan(["mnist"], QUICK[2:], 3, "quick")  # three seeds: each some seconds in a fresh actor
        batch = reproduce.Batch(jobs, "quick", 3, ["mnist"], QUICK[2:], False, None, "test", None, False)
        lines = []
        done = threading.Event()

        def log(line):
            lines.append(line)
            if "started" in line and sum("started" in x for x in lines) == 2:
                done.set()  # both slots busy: one of them on the node about to go

        result = {}
        t = threading.Thread(
            target=lambda: result.setdefault(
                "code", RE.execute(batch, tmp_path, str(data_dir), log=log, address=cluster.address, slots=2)
            )
        )
        t.start()
        assert done.wait(120)
        time.sleep(1.5)  # both actors placed, one per node (1 CPU each); neither run can be over yet
        cluster.remove_node(doomed)
        t.join(600)
        assert not t.is_alive()
        statuses = [batch.outcomes[i].status for i in range(len(jobs))]
        assert statuses.count("failed") == 1 and statuses.count("complete") == 2, lines
        failed = next(o for o in batch.outcomes.values() if o.status == "failed")
        assert "Ray worker was lost" in failed.reason
        assert result["code"] == 1
        assert len([p for p in (tmp_path / "mnist").iterdir() if p.is_dir()]) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
