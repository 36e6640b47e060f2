"""References compared like with like: statistics over epochs, ranges from a stated spread, substitutions, and
run sets that never mix two settings of one experiment."""

from __future__ import annotations

import json
import math

import pytest

from cnnlab.config.experiment import Ctx, Reference, from_mapping
from cnnlab.errors import ConfigError
from cnnlab.report import verdicts

HISTORY = {
    "val_accuracy": [0.60, 0.70, 0.74, 0.72] + [0.71] * 10,
    "accuracy": [0.5 + 0.03 * i for i in range(14)],
    "val_loss": [0.9, 0.6, 0.5, 0.55] + [0.6] * 10,
}


def _ref(**kw) -> Reference:
    return from_mapping(Reference, {"source": "s", **kw}, Ctx("t.yaml"), "reference[0]")


def test_binomial_spread_is_196_standard_errors_around_every_faithful_value():
    # TREC: 500 test questions, Kim 0.912, harvardnlp 0.882: σ = sqrt(0.912 · 0.088 / 500) = 0.012670
    ref = _ref(metric="test_accuracy", value=0.912, spread={"binomial": 500, "include": [0.882], "source": "b"})
    sigma = math.sqrt(0.912 * 0.088 / 500)
    assert ref.range == pytest.approx((0.882 - 1.96 * sigma, 0.912 + 1.96 * sigma))
    assert ref.range[0] < 0.882 < 0.912 < ref.range[1]  # a blanket ±0.02 would have excluded harvardnlp's 88.2


def test_std_spread_and_a_resolved_config_that_carries_both():
    ref = _ref(metric="test_accuracy", value=0.467, spread={"std": 0.0169, "source": "5 trials"})
    assert ref.range == pytest.approx((0.467 - 0.033124, 0.467 + 0.033124))
    again = _ref(
        metric="test_accuracy", value=0.467, spread={"std": 0.0169, "source": "5 trials"}, range=list(ref.range)
    )
    assert again.range == ref.range
    with pytest.raises(ConfigError, match="contradicts the spread"):
        _ref(metric="test_accuracy", value=0.467, spread={"std": 0.0169, "source": "x"}, range=[0.4, 0.5])


@pytest.mark.parametrize(
    "kw, says",
    [
        ({"metric": "test_accuracy", "value": 0.9}, "give 'range'"),
        ({"metric": "test_accuracy", "value": 0.9, "spread": {"source": "x"}}, "exactly one of 'binomial'"),
        ({"metric": "test_accuracy", "value": 0.9, "spread": {"binomial": 0, "source": "x"}}, "positive sample count"),
        ({"metric": "test_accuracy", "value": 0.9, "range": [0.8, 1], "statistic": "last"}, "needs a val_ or train_"),
        ({"metric": "val_accuracy", "value": 0.9, "range": [0.8, 1], "statistic": "median"}, "expected one of best"),
    ],
)
def test_bad_references_are_config_errors(kw, says):
    with pytest.raises(ConfigError, match=says):
        _ref(**kw)


def test_each_statistic_of_a_history():
    measured = {"val_accuracy": 0.74, "train_accuracy": 0.89}
    best = verdicts.value({"metric": "val_accuracy"}, measured, HISTORY)
    assert best == 0.74  # measured (best epoch) as recorded
    assert verdicts.value({"metric": "val_accuracy", "statistic": "last"}, measured, HISTORY) == 0.71
    # the last 10 epochs: 0.71 × 10
    assert verdicts.value({"metric": "val_accuracy", "statistic": "mean_last_10"}, measured, HISTORY) == pytest.approx(
        0.71
    )
    assert verdicts.value({"metric": "val_loss", "statistic": "best"}, {}, HISTORY) == 0.5  # a loss: the minimum
    assert verdicts.value({"metric": "train_accuracy", "statistic": "best"}, measured, HISTORY) == pytest.approx(
        0.5 + 0.03 * 13
    )
    assert verdicts.value({"metric": "val_auc", "statistic": "last"}, measured, HISTORY) is None
    assert (
        verdicts.metric_label({"metric": "val_accuracy", "statistic": "mean_last_10"})
        == "val_accuracy (mean of the last 10 epochs)"
    )
    assert verdicts.metric_label({"metric": "val_accuracy", "statistic": "best"}) == "val_accuracy"


@pytest.mark.parametrize(
    "value, substitution, expected",
    [
        (0.70, None, "below"),
        (0.70, "GloVe 50-d", "below — expected: substitution: GloVe 50-d"),
        (0.80, "GloVe 50-d", "within (substitution: GloVe 50-d)"),
        (0.95, "GloVe 50-d", "above — expected: substitution: GloVe 50-d"),
        (None, "GloVe 50-d", "not measured"),
    ],
)
def test_verdict_names_a_declared_substitution(value, substitution, expected):
    assert verdicts.verdict(value, (0.75, 0.85), "full", (), substitution) == expected


def test_validation_on_the_test_set_is_for_curves_only(write_config):
    from cnnlab.config.experiment import load
    from tests.conftest import MNIST_YAML

    assert "validation: test" in MNIST_YAML  # notebook 5.1 fits all 60,000: the curves come from the test set
    exp = load(write_config(MNIST_YAML))
    assert exp.config.data.validation == "test" and exp.config.data.validation_split == 0.0
    with pytest.raises(ConfigError, match="data.validation: 'test' validates on the test set"):
        load(write_config(MNIST_YAML), ["data.validation_split=0.1"])
    with pytest.raises(ConfigError, match="train.restore_best: would pick the epoch on the test set"):
        load(write_config(MNIST_YAML), ["train.restore_best=true"])


def test_split_hands_the_test_set_over_as_validation():
    import numpy as np

    from cnnlab import data as data_mod
    from cnnlab.data import Arrays, split

    arrays = Arrays(np.arange(10)[:, None], np.arange(10), np.arange(4)[:, None] + 100, np.arange(4), "src")
    s = split(arrays, 0.0, None, None, seed=1)
    assert s.x_val is None

    class Cfg:
        dataset, validation_split, train_subset, test_subset, val_subset, options = "x", 0.0, None, None, None, None
        validation = "test"

    original = data_mod.DATASETS.get("x")
    data_mod.DATASETS["x"] = data_mod.Dataset(lambda d, o: arrays, object, "test set")
    try:
        got = data_mod.load(Cfg, None, seed=1)
    finally:
        data_mod.DATASETS.pop("x") if original is None else data_mod.DATASETS.__setitem__("x", original)
    assert got.x_val is got.x_test and len(got.x_train) == 10
    assert "validation data: the test set" in got.source


def _resolved_run(results, run_id, overrides, accuracy, history="epoch,accuracy,val_accuracy\n1,0.5,0.5\n"):
    """A complete run folder as the runner writes it (resolved config.yaml, metrics.json, history.csv), without
    training: the run-set logic reads nothing else."""
    from cnnlab.config.experiment import load

    exp = load("mnist", overrides)
    run = results / "mnist" / run_id
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(exp.resolved_yaml())
    (run / "history.csv").write_text(history)
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": "mnist",
                "run_id": run_id,
                "status": "complete",
                "profile": "full",
                "overrides": overrides,
                "config_hash": exp.config_hash(),
                "seed": exp.config.seed,
                "repeat": {"seed": exp.config.seed, "fold": None},
                "measured": {"test_accuracy": accuracy},
                "timing": {},
                "environment": {},
            }
        )
    )
    return run


def test_run_sets_never_average_two_settings(tmp_path):
    from cnnlab.report import compare
    from cnnlab.report.compare import collect

    results = tmp_path / "results"
    base = ["data.train_subset=200", "data.test_subset=100", "train.epochs=1"]
    _resolved_run(results, "20260101-000000_full", base, 0.90)
    newest = _resolved_run(results, "20260102-000000_full", [*base, "seed=2"], 0.92)
    compare._SETTING_HASHES.clear()
    frame, *_ = collect(results)
    row = frame[(frame["experiment"] == "mnist") & (frame["metric"] == "test_accuracy")].iloc[0]
    assert row["n_runs"] == 2 and row["measured"] == pytest.approx(0.91)  # seeds 1 and 2 of one setting
    # the same experiment's config edited afterwards (here: its optimizer written into the newest run's config.yaml,
    # as if the YAML had changed between the runs): the runs no longer form one set
    text = (newest / "config.yaml").read_text()
    assert "optimizer: RMSpropKeras2" in text
    (newest / "config.yaml").write_text(text.replace("optimizer: RMSpropKeras2", "optimizer: rmsprop"))
    compare._SETTING_HASHES.clear()
    frame, *_ = collect(results)
    row = frame[(frame["experiment"] == "mnist") & (frame["metric"] == "test_accuracy")].iloc[0]
    assert row["n_runs"] == 1 and row["config_changed"] is True
    assert "(run before the config changed)" in row["verdict"]
    json.loads((newest / "metrics.json").read_text())  # the run itself is untouched


def test_a_run_that_never_learned_is_left_out_of_the_verdict_and_counted(tmp_path):
    """imdb_conv1d_faithful under TensorFlow, seeds 2 and 3: every initial output of the linear Dense(1) below 0,
    clipped by the cross-entropy, no gradient: the training loss identical in all ten epochs. Averaged in, the
    set would read 0.61 and "below" for a model that never trained; left out, n is the runs that learned."""
    from cnnlab.report import compare
    from cnnlab.report.compare import collect

    results = tmp_path / "results"
    base = ["data.train_subset=200", "data.test_subset=100", "train.epochs=1"]
    learned = "epoch,loss,val_accuracy\n1,0.70,0.60\n2,0.41,0.80\n"
    dead = "epoch,loss,val_accuracy\n1,8.0808,0.5054\n2,8.0808,0.5054\n"
    first = _resolved_run(results, "20260101-000000_full", base, 0.83, learned)
    _resolved_run(results, "20260102-000000_full", [*base, "seed=2"], 0.51, dead)
    _resolved_run(results, "20260103-000000_full", [*base, "seed=3"], 0.50, dead)
    compare._SETTING_HASHES.clear()
    frame, *_ = collect(results)
    row = frame[(frame["experiment"] == "mnist") & (frame["metric"] == "test_accuracy")].iloc[0]
    assert (row["n_runs"], row["dead_starts"]) == (1, 2) and row["measured"] == pytest.approx(0.83)
    assert row["verdict"] == "below (run with overrides)"  # of the one run that learned (a sliced mnist here)
    # a single epoch, or a loss that moved by its last digit only, is not a dead start
    assert not compare.dead_start(first)
    (first / "history.csv").write_text("epoch,loss\n1,8.0808\n")
    assert not compare.dead_start(first)
    (first / "history.csv").write_text("epoch,loss\n1,8.0808\n2,8.0807\n")
    assert not compare.dead_start(first)
    # seed 6 of the faithful IMDB model: 68 reviews inside the band push themselves out in epoch 1, then nothing
    # moves; the two losses differ by 1.2e-7 relative, float32 rounding of the epoch mean, so it never learned
    (first / "history.csv").write_text("epoch,loss\n1,8.007473945617676\n2,8.00747299194336\n3,8.00747299194336\n")
    assert compare.dead_start(first)
    (first / "history.csv").write_text(dead)  # every run dead: nothing to average, and the verdict says why
    compare._SETTING_HASHES.clear()
    frame, *_ = collect(results)
    row = frame[(frame["experiment"] == "mnist") & (frame["metric"] == "test_accuracy")].iloc[0]
    assert row["verdict"] == "never learned (3 dead starts)" and row["n_runs"] == 0


@pytest.mark.parametrize(
    "mean, std, n, profile, overrides, expected",
    [
        (0.80, 0.0, 1, "full", (), "provisional (n=1): within"),
        (0.70, 0.01, 2, "full", (), "provisional (n=2): below"),
        (0.80, 0.01, 3, "full", (), "within"),
        # n = 3: half-width 4.303 · 0.01 / √3 = 0.0248; 0.74 + 0.0248 reaches 0.75: not significantly below
        (0.74, 0.01, 3, "full", (), "within the noise (mean below; 95% interval [0.7152, 0.7648] reaches the range)"),
        # 0.70 + 0.0248 < 0.75: below
        (0.70, 0.01, 3, "full", (), "below"),
        (0.90, 0.001, 10, "full", (), "above"),
        (0.70, 0.0, 1, "quick", (), "below (quick profile, not comparable)"),
        (0.70, 0.0, 1, "full", ("train.epochs=2",), "below (run with overrides)"),
        (None, None, 0, "full", (), "not measured"),
    ],
)
def test_the_verdict_rule_over_repeats(mean, std, n, profile, overrides, expected):
    assert verdicts.set_verdict(mean, std, n, (0.75, 0.85), profile, overrides) == expected


def test_the_rule_names_a_substitution_too():
    assert (
        verdicts.set_verdict(0.70, 0.005, 10, (0.75, 0.85), substitution="GloVe")
        == "below — expected: substitution: GloVe"
    )
    assert "Verdict rule" in verdicts.RULE and "provisional" in verdicts.RULE


def test_a_binomial_spread_needs_a_proportion():
    with pytest.raises(ConfigError, match=r"spread.binomial: a binomial spread is for a proportion in \[0, 1\]"):
        _ref(metric="val_loss", value=2.3, spread={"binomial": 100, "source": "x"})
