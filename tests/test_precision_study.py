"""The precision study (cnnlab.report.precision, `cnnlab precision`): which runs make each arm, Welch's interval,
the verdict, and the files, on synthetic run folders (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cnnlab.config.experiment import load
from cnnlab.report import precision as P


def write_run(root, ref, run_id, seed, policy, value, overrides=(), profile="full", device="CPU: X (2 cores)"):
    """A complete-looking run folder: the config.yaml the runner would write, and a metrics.json."""
    exp = load(ref, [*overrides, f"seed={seed}"], profile, keras=False)
    run = root / exp.config.name / run_id
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(exp.resolved_yaml())
    m = {
        "status": "complete",
        "profile": profile,
        "seed": seed,
        "overrides": [*overrides, f"seed={seed}"],
        "precision": {"requested": policy, "policy": policy, "reason": "test"},
        "measured": {"test_accuracy": value},
        "environment": {"device": device},
        "timing": {"wall_seconds": 100.0 if policy == "float32" else 40.0},
    }
    (run / "metrics.json").write_text(json.dumps(m))
    return run


def test_welch_interval_by_hand():
    a = P.Arm(3, 0.99, 0.001, (1, 2, 3), ())
    b = P.Arm(3, 0.98, 0.002, (1, 2, 3), ())
    diff, (low, high) = P.welch(a, b)
    # variances of the means 1e-6/3 and 4e-6/3: se = √(5e-6/3) = 0.0012910; Welch–Satterthwaite
    # df = (5/3)² / ((1/3)²/2 + (4/3)²/2) = 25 / 8.5 = 2.94 → t(2) = 4.303; half-width 4.303 · 0.0012910 = 0.005555
    assert diff == pytest.approx(-0.01)
    half = 4.303 * math.sqrt(5e-6 / 3)
    assert (low, high) == pytest.approx((-0.01 - half, -0.01 + half))
    assert P.verdict(a, b)[0] == "differs"  # the interval [-0.0156, -0.0044] leaves out 0


def test_verdict_needs_zero_in_the_interval_and_a_difference_within_the_spread():
    a = P.Arm(3, 0.800, 0.010, (1, 2, 3), ())
    assert P.verdict(a, P.Arm(3, 0.805, 0.010, (1, 2, 3), ()))[0] == "equivalent"  # 0.005 ≤ spread 0.010
    wide = P.Arm(3, 0.830, 0.040, (1, 2, 3), ())  # interval contains 0, but 0.030 > spread √((1+16)/2)·0.01 = 0.029
    word, numbers = P.verdict(a, wide)
    assert numbers["low"] < 0 < numbers["high"] and numbers["spread"] == pytest.approx(0.01 * math.sqrt(8.5))
    assert word == "differs"
    assert P.verdict(a, P.Arm(2, 0.8, 0.01, (1, 2), ()))[0] == "too few runs"
    assert P.verdict(None, a)[0] == "too few runs"


def test_arms_take_only_the_published_setting_on_the_case_fold(tmp_path):
    case = P.Case("kim_mr:static", fold=0)
    for seed, v in ((1, 0.71), (2, 0.72), (3, 0.73)):
        write_run(tmp_path, "kim_mr:static", f"2026120{seed}-000000_full", seed, "float32", v)
        write_run(
            tmp_path, "kim_mr:static", f"2026120{seed}-000001_full", seed, "mixed_bfloat16", v + 0.01,
            overrides=["train.precision=mixed_bfloat16"],
        )  # fmt: skip
    # left out: another fold, another override, the quick profile
    write_run(tmp_path, "kim_mr:static", "20261204-000000_full", 4, "float32", 0.1, overrides=["data.options.fold=3"])
    write_run(tmp_path, "kim_mr:static", "20261205-000000_full", 5, "float32", 0.1, overrides=["train.epochs=2"])
    write_run(tmp_path, "kim_mr:static", "20261206-000000_quick", 6, "float32", 0.1, profile="quick")
    got = P.arms(tmp_path, case)
    assert sorted(got) == ["float32", "mixed_bfloat16"]
    assert sorted(m["seed"] for _, m in got["float32"]) == [1, 2, 3]
    df = P.table(tmp_path, (case,))
    row = df.iloc[0]
    assert (row.f32_n, row.bf16_n) == (3, 3) and row["diff"] == pytest.approx(0.01)
    assert row.verdict == "equivalent"  # 0.01 ≤ spread 0.01; interval ± 4.303 · 0.01 · √(2/3)
    assert (row.f32_wall_seconds, row.bf16_wall_seconds) == (100.0, 40.0)


def test_wall_times_compare_only_one_machine(tmp_path):
    case = P.Case("mnist")
    for seed in (1, 2, 3):
        write_run(tmp_path, "mnist", f"2026120{seed}-000000_full", seed, "float32", 0.99, device="CPU: A")
        write_run(
            tmp_path, "mnist", f"2026120{seed}-000001_full", seed, "mixed_bfloat16", 0.99,
            overrides=["train.precision=mixed_bfloat16"], device="CPU: B",
        )  # fmt: skip
    row = P.table(tmp_path, (case,)).iloc[0]
    assert row.wall_device == "" and P._nan(row.f32_wall_seconds)
    text = P.markdown(P.table(tmp_path, (case,)))
    assert "float32 on CPU: A" in text and "mixed_bfloat16 on CPU: B" in text


def test_precision_command_writes_both_files(cli, tmp_path):
    for seed in (1, 2, 3):
        write_run(tmp_path, "mnist", f"2026120{seed}-000000_full", seed, "float32", 0.990 + seed / 1000)
    code, out, err = cli("--results-dir", tmp_path, "precision")
    assert code == 0, err
    assert (tmp_path / "precision.csv").is_file() and (tmp_path / "precision.md").is_file()
    assert "| mnist (test_accuracy) | 0.9920 ± 0.0010 (3) | – |" in out and "too few runs" in out


def test_a_precision_request_is_not_a_setting_but_its_policy_is():
    from cnnlab.report.compare import setting_overrides, signature

    overrides = ["seed=2", "train.precision=float32", "train.epochs=3", "data.options.fold=1"]
    assert setting_overrides(overrides) == ("train.epochs=3",)
    f32 = {"profile": "full", "overrides": ["train.precision=float32"], "precision": {"policy": "float32"}}
    plain = {"profile": "full", "overrides": [], "precision": {"policy": "float32"}}
    bf16 = {"profile": "full", "overrides": [], "precision": {"requested": "auto", "policy": "mixed_bfloat16"}}
    assert signature(f32) == signature(plain) != signature(bf16)


def test_every_experiment_is_governed_by_one_case():
    from cnnlab.config.experiment import experiment_refs

    assert P.governing("kim_trec:static_w2v").ref == "kim_mr:static"
    assert P.governing("kim_sst2:multichannel").ref == "kim_mr:static"
    assert P.governing("kim_sst2:non_static").ref == "kim_mr" and P.governing("kim_cr").ref == "kim_mr"
    assert P.governing("vgg16_finetune").ref == "vgg16_features"
    ungoverned = [ref for ref in experiment_refs().values() if P.governing(ref) is None]
    assert ungoverned == ["imdb_conv1d_faithful", "imdb_conv1d_faithful:keras3_rmsprop"]  # float32, and why


def test_the_configs_follow_the_committed_study():
    """A full profile is `auto` exactly where results/precision.csv calls its family equivalent; every quick
    profile is float32 (tests and smoke runs never depend on the machine's bfloat16)."""
    import pandas as pd

    from cnnlab.config.experiment import experiment_refs

    study = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "precision.csv")
    verdict = dict(zip(study.experiment, study.verdict))
    wrong = []
    for ref in experiment_refs().values():
        case = P.governing(ref)
        expected = "auto" if case is not None and verdict.get(case.ref) == "equivalent" else "float32"
        full = load(ref, [], "full", keras=False).config.train.precision
        quick = load(ref, [], "quick", keras=False).config.train.precision
        if (full, quick) != (expected, "float32"):
            wrong.append(f"{ref}: full {full}, quick {quick}; the study says {expected}")
    assert not wrong, "\n".join(wrong)
