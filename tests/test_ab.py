"""Seed-matched A/B (cnnlab.ab): pairs, the paired 95% interval, and the table."""

from __future__ import annotations

import math

import pytest

from cnnlab.report import ab


def test_t_quantiles():
    assert ab.t975 is __import__("cnnlab.report.verdicts").report.verdicts.t975
    assert ab.t975(1) == 12.706 and ab.t975(2) == 4.303 and ab.t975(12) == 2.228 and ab.t975(100) == 1.96


def test_pairs_by_seed_and_the_paired_interval(monkeypatch):
    a = {(1, "0"): 0.80, (2, "0"): 0.82, (3, "0"): 0.81, (4, "0"): 0.70}  # seed 4 only on side A
    b = {(1, "0"): 0.85, (2, "0"): 0.86, (3, "0"): 0.87}
    monkeypatch.setattr(ab, "_values", lambda root, name, ref: (a if name == "A" else b, set()))
    r = ab.ab("root", "A", "B", "val_accuracy")
    assert r["n"] == 3 and [p[0][0] for p in r["pairs"]] == [1, 2, 3]
    # differences 0.05, 0.04, 0.06: mean 0.05, sd 0.01, half-width 4.303 · 0.01 / √3 = 0.024843
    assert r["diff"] == pytest.approx(0.05)
    half = 4.303 * 0.01 / math.sqrt(3)
    assert r["interval"] == pytest.approx((0.05 - half, 0.05 + half))
    text = ab.markdown(r)
    assert "| 1 | 0.8000 | 0.8500 | +0.0500 |" in text and "mean (n=3)" in text and "[+0.0252, +0.0748]" in text


def test_one_pair_has_no_interval(monkeypatch):
    monkeypatch.setattr(ab, "_values", lambda root, name, ref: ({(1, "0"): 0.8 if name == "A" else 0.9}, set()))
    r = ab.ab("root", "A", "B", "val_accuracy", "last")
    assert r["interval"] is None and r["metric"] == "val_accuracy (last epoch)"
    assert "one pair: no interval" in ab.markdown(r)


def test_a_dead_start_on_either_side_leaves_its_pair_out_and_is_named(tmp_path, cli):
    """imdb_conv1d_faithful under TensorFlow: a seed whose every initial output is clipped by the cross-entropy
    never trains, whatever the setting under test; its pair would move the mean difference by ±0.3."""
    from tests.test_verdicts import _resolved_run

    results = tmp_path / "results"
    base = ["data.train_subset=200", "data.test_subset=100", "train.epochs=2"]
    learned = "epoch,loss,val_accuracy\n1,0.70,0.60\n2,0.41,0.80\n"
    dead = "epoch,loss,val_accuracy\n1,8.0808,0.5054\n2,8.0808,0.5054\n"
    for side, values in (("A", (0.80, 0.51, 0.81, 0.50)), ("B", (0.84, 0.86, 0.83, 0.52))):
        for seed, v in enumerate(values, start=1):
            history = dead if (side, seed) in {("A", 2), ("A", 4), ("B", 4)} else learned
            _resolved_run(results, f"2026010{seed}-000000_full", [*base, f"seed={seed}"], v, history)
        (results / "mnist").rename(results / side)
    r = ab.ab(results, "A", "B", "test_accuracy")
    assert [p[0][0] for p in r["pairs"]] == [1, 3] and r["n"] == 2
    # differences 0.04 and 0.02: mean 0.03 (seed 2's +0.35 and seed 4's +0.02 between dead starts left out)
    assert r["diff"] == pytest.approx(0.03)
    assert [(k[0], da, db) for k, _, _, da, db in r["dead"]] == [(2, True, False), (4, True, True)]
    text = ab.markdown(r)
    assert "| 2 | 0.5100 † | 0.8600 | left out |" in text and "| 4 | 0.5000 † | 0.5200 † | left out |" in text
    assert "mean (n=2) | 0.8050 | 0.8350 | +0.0300" in text and "† dead start" in text
    code, out, err = cli("--results-dir", results, "ab", "A", "B", "--metric", "test_accuracy")
    assert code == 0 and out == text and not err


def test_ab_command_errors_are_one_line(cli, tmp_path):
    code, out, err = cli("--results-dir", tmp_path, "ab", "nope", "other")
    assert code == 2 and "nope: no such results folder" in err and len(err.strip().splitlines()) == 1
