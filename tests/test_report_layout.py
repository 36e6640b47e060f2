"""The report's layout: lecture order, the scoreboard, short sources, human wall times; results.load's table."""

from __future__ import annotations

import json

import pytest

from cnnlab.report import compare
from cnnlab.store import results


def test_rows_follow_the_lectures_not_the_alphabet():
    names = [
        "kim_mr",
        "cats_dogs_scratch",
        "zzz_custom",
        "mnist_no_pooling",
        "imdb_conv1d_faithful",
        "mnist",
        "vgg16_features_book",
        "imdb_capacity_smaller",
        "kim_trec_static",
        "cats_dogs_augmented",
        "kim_mr_static",
        "mnist_dense",
        "vgg16_finetune",
    ]
    assert sorted(names, key=compare.lecture_key) == [
        "mnist",
        "mnist_dense",
        "mnist_no_pooling",
        "imdb_capacity_smaller",
        "cats_dogs_scratch",
        "cats_dogs_augmented",
        "vgg16_features_book",
        "vgg16_finetune",
        "imdb_conv1d_faithful",
        "kim_mr",
        "kim_mr_static",
        "kim_trec_static",
        "zzz_custom",
    ]


@pytest.mark.parametrize(
    "seconds, text",
    [
        (5780.2, "1 h 36 min"),
        (590.6, "9 min 51 s"),
        (59.4, "59 s"),
        (3600, "1 h 0 min"),
        (601, "10 min"),
        (None, "–"),
        (0.2, "0 s"),
    ],
)
def test_wall_times_as_people_read_them(seconds, text):
    assert compare.human_seconds(seconds) == text


@pytest.mark.parametrize(
    "source, short",
    [
        ('DLwP §5.2.5 ("you now reach an accuracy of 82%"); notebook 5.2\'s val_acc', "DLwP §5.2.5"),
        ("Kim (2014) Table 2, CNN-rand, MR (10-fold CV)", "Kim (2014) Table 2, CNN-rand, MR"),
        ("Chollet, DLwP notebook 5.1 (test_acc 0.9913 at epoch 5)", "Chollet, DLwP notebook 5.1"),
        (
            "DLwP notebook 4.4, the original model: best val_acc 0.8905 at epoch 2",
            "DLwP notebook 4.4, the original model",
        ),
        # cut at 48 characters, on a word boundary
        (
            "a very long source without any separator that goes on and on for many words",
            "a very long source without any separator that …",
        ),
        (None, "–"),
    ],
)
def test_short_source_keeps_the_head(source, short):
    assert compare.short_source(source) == short


def _row(verdict, metric="test_accuracy", run_id="r1", substitution=None, **setting):
    return {"metric": metric, "verdict": verdict, "run_id": run_id, "substitution": substitution, **setting}


def test_scoreboard_counts_each_reference_once_by_its_outcome():
    rows = [
        _row("within"),
        _row("within the noise (mean below; 95% interval [0.87, 0.89] reaches the range)"),
        _row("provisional (n=1): within"),
        _row("provisional (n=2): below", substitution="GloVe 50-d"),
        _row("below — expected: substitution: GloVe", substitution="GloVe"),
        _row("above"),
        _row("provisional (n=1): below"),
        _row("not run yet", run_id=None),
        _row("stopped: NaN loss"),
        _row("within", metric="params_total"),
        _row("below", metric="params_total"),
        # not the config as it stands: none of these is a shortfall or a reproduction
        _row("below (quick profile, not comparable)", substitution="GloVe", profile="quick"),
        _row("within (run with overrides)", profile="full", overrides="train.epochs=20"),
        _row("provisional (n=1): below (run before the config changed)", profile="full", config_changed=True),
        _row("within", profile="full", overrides="", config_changed=False),  # the published setting
    ]
    assert [compare.outcome(r) for r in rows[11:]] == ["other setting"] * 3 + ["reproduced"]
    rows = rows[:11] + rows[14:]
    assert [compare.outcome(r) for r in rows[:9]] == [
        "reproduced",
        "reproduced",
        "reproduced",
        "off, substitution",
        "off, substitution",
        "off, unexplained",
        "off, unexplained",
        "not run",
        "stopped",
    ]
    import pandas as pd

    frame = pd.DataFrame(rows, dtype=object)  # the summary as collect() hands it over
    assert compare.scoreboard(frame) == (
        "**4 of 10 references reproduced** · 2 off with a declared substitution · 2 off, unexplained · 1 not run · "
        "1 stopped (NaN loss). 3 of the measured verdicts are provisional (fewer than 3 repeats); parameter counts: "
        "1 of 2 exact."
    )
    other = pd.DataFrame(rows + [_row("below (quick profile, not comparable)", profile="quick")], dtype=object)
    assert compare.scoreboard(other).startswith(
        "**4 of 11 references reproduced** · 2 off with a declared substitution · 2 off, unexplained · "
        "1 measured only in another setting (quick profile, overrides, an older config) · 1 not run · "
    )


def _fake_run(root, name, run_id, seed, measured, status="complete", fold=None):
    run = root / name / run_id
    run.mkdir(parents=True)
    for f in results.REQUIRED:
        (run / f).write_text("")
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "status": status,
                "profile": "full",
                "seed": seed,
                "repeat": {"seed": seed, "fold": fold},
                "overrides": [f"seed={seed}"],
                "precision": {"policy": "float32"},
                "measured": measured,
                "environment": {"backend": "jax", "keras": "3.15.1", "device": "CPU: test (2 cores)"},
                "finished_at": "2026-12-01T10:00:00Z",
                "epochs_run": 5,
                "timing": {"wall_seconds": 12.5},
            }
        )
    )
    return run


def test_load_is_one_row_per_run_and_metric(tmp_path):
    _fake_run(tmp_path, "mnist", "20261201-100000_full", 1, {"test_accuracy": 0.99, "params_total": 93322})
    _fake_run(tmp_path, "mnist", "20261201-110000_full", 2, {"test_accuracy": 0.98, "params_total": 93322})
    _fake_run(tmp_path, "kim_mr", "20261201-120000_full", 1, {"test_accuracy": 0.75, "note": "text"}, fold=3)
    (tmp_path / "mnist" / ".20261201-130000_full.partial").mkdir()  # never read
    df = results.load(tmp_path)
    assert len(df) == 5 and list(df.columns) == [*results.RUN_COLUMNS, "metric", "value"]
    acc = df[df.metric == "test_accuracy"].groupby("experiment").value.agg(["mean", "count"])
    assert acc.loc["mnist", "count"] == 2 and acc.loc["mnist", "mean"] == pytest.approx(0.985)
    kim = df[df.experiment == "kim_mr"].iloc[0]
    assert (kim.fold, kim.seed, kim.backend, kim.precision, kim.wall_seconds) == (3, 1, "jax", "float32", 12.5)
    assert str(df.finished_at.dtype).startswith("datetime64") and df.seed.dtype == "Int64"
    assert len(results.load(tmp_path, experiments=["kim_mr"])) == 1
    assert results.load(tmp_path / "nowhere").empty


def test_a_count_the_same_in_every_run_is_not_given_a_spread():
    from types import SimpleNamespace as Row

    from cnnlab.report.compare import _measured

    count = Row(measured=55_744, measured_std=0.0, n_runs=3, metric="params_conv_base", dead_starts=0)
    assert _measured(count) == "55,744 (all 3 runs)"  # not '55,744 ± 0.0000 (n=3)'
    same = Row(measured=0.98, measured_std=0.0, n_runs=3, metric="test_accuracy", dead_starts=0)
    assert _measured(same) == "0.9800 ± 0.0000 (n=3)"  # an accuracy keeps its spread, zero or not
    one = Row(measured=0.98, measured_std=None, n_runs=1, metric="test_accuracy", dead_starts=0)
    assert _measured(one) == "0.9800"
