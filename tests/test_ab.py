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
    monkeypatch.setattr(ab, "_values", lambda root, name, ref: a if name == "A" else b)
    r = ab.ab("root", "A", "B", "val_accuracy")
    assert r["n"] == 3 and [p[0][0] for p in r["pairs"]] == [1, 2, 3]
    # differences 0.05, 0.04, 0.06: mean 0.05, sd 0.01, half-width 4.303 · 0.01 / √3 = 0.024843
    assert r["diff"] == pytest.approx(0.05)
    half = 4.303 * 0.01 / math.sqrt(3)
    assert r["interval"] == pytest.approx((0.05 - half, 0.05 + half))
    text = ab.markdown(r)
    assert "| 1 | 0.8000 | 0.8500 | +0.0500 |" in text and "mean (n=3)" in text and "[+0.0252, +0.0748]" in text


def test_one_pair_has_no_interval(monkeypatch):
    monkeypatch.setattr(ab, "_values", lambda root, name, ref: {(1, "0"): 0.8 if name == "A" else 0.9})
    r = ab.ab("root", "A", "B", "val_accuracy", "last")
    assert r["interval"] is None and r["metric"] == "val_accuracy (last epoch)"
    assert "one pair: no interval" in ab.markdown(r)


def test_ab_command_errors_are_one_line(cli, tmp_path):
    code, out, err = cli("--results-dir", tmp_path, "ab", "nope", "other")
    assert code == 2 and "nope: no such results folder" in err and len(err.strip().splitlines()) == 1
