"""Wall-time estimates of runs that never ran (cnnlab.batch.estimate) and the report's "What is left" section."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from cnnlab.batch import estimate
from cnnlab.batch.reproduce import Job
from cnnlab.report import remaining
from cnnlab.report.compare import setting_digest

# An exactly two-factor table: seconds per epoch = base × variant, bases 10 (mr) and 40 (sst1), variants 1 (rand),
# 0.1 (static), 0.3 (non_static). SST-1 static is left out: the model must give 40 × 0.1 = 4.
CELLS = {
    ("kim_mr", ""): 10.0,
    ("kim_mr", "static"): 1.0,
    ("kim_mr", "non_static"): 3.0,
    ("kim_sst1", ""): 40.0,
    ("kim_sst1", "non_static"): 12.0,
    ("kim_trec", ""): 5.0,
    ("kim_trec", "static"): 0.5,
}


def test_the_two_factor_model_predicts_a_missing_cell_and_says_how():
    model = estimate.Model(CELLS)
    seconds, how = model.predict(("kim_sst1", "static"))
    assert how == "modelled" and seconds == pytest.approx(4.0, rel=1e-6)
    assert model.predict(("kim_sst1", "static_w2v")) == (pytest.approx(4.0, rel=1e-6), "as its variant static")
    assert model.predict(("kim_sst1", "holdout")) == (pytest.approx(40.0, rel=1e-6), "as its base")
    assert model.predict(("vgg16_finetune", "")) == (None, "no run of its base")


def test_left_one_out_error_is_measured_not_assumed():
    factor, n = estimate.leave_one_out(CELLS)
    assert factor == pytest.approx(1.0, abs=1e-6)  # an exact table: every held-out cell predicted exactly
    # every cell can be held out: its base keeps another cell (mr 3, sst1 2, trec 2) and so does its variant
    # ('' 3, static 2, non_static 2), so all 7 are predicted "modelled"
    assert n == 7
    noisy = {**CELLS, ("kim_trec", "static"): 1.0}  # off by ×2 from the model's 0.5
    assert estimate.leave_one_out(noisy)[0] > 1.0


def _run(root, name, run_id, profile, seconds, epochs, overrides=(), rate=None):
    run = root / name / run_id
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": name,
                "run_id": run_id,
                "status": "complete",
                "profile": profile,
                "overrides": list(overrides),
                "epochs_run": epochs,
                "timing": {"wall_seconds": seconds, "train_samples_per_second": rate},
            }
        )
    )


def test_cells_come_from_full_runs_that_measure_their_cost(tmp_path):
    refs = {"kim_mr": "kim_mr", "kim_mr_static": "kim_mr:static", "vgg16_finetune": "vgg16_finetune"}
    _run(tmp_path, "kim_mr", "20260101-000000_full", "full", 250.0, 25, ["data.options.fold=3"])
    _run(tmp_path, "kim_mr", "20260102-000000_full", "full", 300.0, 25, ["seed=2"])
    _run(tmp_path, "kim_mr", "20260103-000000_full", "full", 30.0, 25, ["data.train_subset=500"])  # not a cost
    _run(tmp_path, "kim_mr_static", "20260101-000000_quick", "quick", 4.0, 2)  # quick: not a cell
    _run(tmp_path, "vgg16_finetune", "20260101-000000_quick", "quick", 25.0, 2, rate=4.0)
    cells = estimate.observed(tmp_path, refs)
    assert cells == {("kim_mr", ""): pytest.approx(11.0)}  # the median of 10 and 12 s per epoch
    # with a filter (reproduce.same_cost_as_today), a run of the experiment's earlier setting is left out
    older = tmp_path / "kim_mr" / "20260101-000000_full"
    assert estimate.observed(tmp_path, refs, lambda name, run: run != older) == {("kim_mr", ""): pytest.approx(12.0)}
    assert estimate.observed(tmp_path, refs, lambda name, run: False) == {}
    rates = estimate.quick_rates(tmp_path, refs)
    assert rates == {"vgg16_finetune": 4.0}  # the quick kim_mr_static run recorded no rate
    # a vgg16_finetune variant's full run, timed by its base's quick run: 100 epochs × 100 steps × 20 images =
    # 200,000 samples at 4 a second = 50,000 s
    train = SimpleNamespace(steps_per_epoch=100, batch_size=20)
    job = Job("vgg16_finetune:keras3_rmsprop", "vgg16_finetune_keras3_rmsprop", 1, (), epochs=100)
    job = replace(job, experiment=SimpleNamespace(config=SimpleNamespace(train=train)))
    mr = Job("kim_mr:static", "kim_mr_static", 1, (), epochs=25)
    got = estimate.estimates([job, mr], cells, rates)
    assert got[job] == (pytest.approx(50_000.0), "its quick run's samples/s")
    assert got[mr] == (pytest.approx(275.0), "as its base")


def test_the_setting_digest_leaves_out_what_repeats_a_setting_only():
    plain = {
        "name": "kim_mr",
        "data": {"dataset": "kim", "options": {"set": "mr", "fold": 0}},
        "model": {"builder": "kim_cnn"},
        "train": {"epochs": 25, "batch_size": 50, "precision": "auto"},
        "seed": 1,
    }
    same = {**plain, "seed": 7, "data": {**plain["data"], "options": {"set": "mr", "fold": 9}}}
    same["train"] = {**plain["train"], "precision": "float32"}
    assert setting_digest(same) == setting_digest(plain)
    for key, value in (("epochs", 5), ("batch_size", 25)):  # a twentieth of the epochs: a twentieth of the time
        assert setting_digest({**plain, "train": {**plain["train"], key: value}}) != setting_digest(plain)
    other_set = {**plain, "data": {"dataset": "kim", "options": {"set": "sst2", "fold": 0}}}
    assert setting_digest(other_set) != setting_digest(plain)


def test_what_is_left_groups_the_plan_per_experiment(tmp_path):
    assert remaining.section(tmp_path) == []  # no plan, no section
    (tmp_path / "plan.csv").write_text(
        "# cnnlab reproduce --dry-run, 2026-12-03T21:00:00Z; timed on: CPU: AMD EPYC (2 cores)\n"
        "experiment,seed,fold,estimated_seconds,basis,why\n"
        "kim_mr,1,0,420,an earlier run of this experiment,\n"
        "kim_mr,1,1,420,an earlier run of this experiment,\n"
        "cats_dogs_scratch,2,,3600,an earlier run of this experiment,\n"
        "vgg16_finetune,1,,,no estimate: no run of its base,\n"
    )
    text = "\n".join(remaining.section(tmp_path, order=str, gpu_runs=0))
    # 420 + 420 + 3,600 = 4,440 s = 74 min
    assert "4 runs of the protocol are not done yet, about **1 h 14 min** of 2-core CPU time (1 without an" in text
    assert "| kim_mr | 2 | 14 min | an earlier run of this experiment |" in text
    assert "| vgg16_finetune | 1 | – | no estimate: no run of its base |" in text
    assert "none is on record yet" in text and "2026-12-03T21:00:00Z" in text
    assert text.index("cats_dogs_scratch") < text.index("kim_mr") < text.index("vgg16_finetune")
    (tmp_path / "plan.csv").write_text("experiment,seed,fold,estimated_seconds,basis,why\n")
    assert "Nothing: every run of the protocol is complete" in "\n".join(remaining.section(tmp_path))
    (tmp_path / "plan.csv").write_text("a,b\n1,2\n")  # not a plan: no section rather than a wrong one
    assert remaining.section(tmp_path) == []
