"""Which way a metric improves: one rule for the best epoch, restore_best, EarlyStopping and the report."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnlab import direction
from cnnlab.config.experiment import load
from cnnlab.errors import ConfigError
from cnnlab.models.keras2 import BinaryAccuracyKeras2
from cnnlab.report import verdicts
from cnnlab.train import runner


@pytest.mark.parametrize(
    "name, way",
    [
        ("loss", "down"),
        ("val_loss", "down"),
        ("accuracy", "up"),
        ("val_accuracy", "up"),
        ("test_keras2_accuracy", "up"),
        ("mae", "down"),
        ("val_mae", "down"),
        ("mse", "down"),
        ("mean_absolute_error", "down"),
        ("val_binary_crossentropy", "down"),
        ("train_categorical_crossentropy", "down"),
        ("auc", "up"),
        ("precision", "up"),
        ("recall", "up"),
        ("hinge", "down"),
        ("kl_divergence", "down"),
        ("log_cosh_error", "down"),
        ("root_mean_squared_error", "down"),
        ("perplexity", "down"),
        ("top_k_categorical_accuracy", "up"),
    ],
)
def test_direction_from_the_name(name, way):
    assert direction.of_name(name) == way


def test_recorded_directions_override_the_name():
    assert direction.of_name("val_score", {"score": "down"}) == "down" and direction.of_name("val_score") == "up"
    assert direction.minimised("val_mae") and not direction.minimised("val_mae", {"mae": "up"})
    assert direction.better(0.2, 0.3, "val_mae") and not direction.better(0.2, 0.3, "val_accuracy")
    assert direction.better(0.3, 0.3, "val_accuracy") and direction.better(0.3, 0.3, "val_mae")  # ties: the later
    assert direction.mode("val_mae") == "min" and direction.mode("val_auc") == "max"


def test_a_metric_object_says_its_own_direction():
    assert direction.of_metric(keras.metrics.MeanAbsoluteError(), "mean_absolute_error") == "down"
    assert direction.of_metric(keras.metrics.BinaryCrossentropy(), "binary_crossentropy") == "down"
    assert direction.of_metric(keras.metrics.AUC(), "auc") == "up"
    assert direction.of_metric(BinaryAccuracyKeras2(), "keras2_accuracy") == "up"
    assert direction.of_metric(None, "val_mse") == "down"


def test_best_epoch_and_measured_val_of_an_error_metric_are_its_minimum():
    history = {
        "loss": [0.9, 0.5, 0.4],
        "val_loss": [0.8, 0.6, 0.7],
        "mae": [0.5, 0.3, 0.2],
        "val_mae": [0.50, 0.20, 0.40],
    }
    best = runner.best_epoch(history, ["loss", "mae"])
    assert best == {"monitor": "val_mae", "epoch": 2, "value": 0.20}  # 'loss' not in the name: still a minimum
    measured = runner.measured_metrics(history, {"mae": 0.21}, ["loss", "mae"], {})
    assert measured["val_mae"] == 0.20 and measured["val_loss"] == 0.6 and measured["train_mae"] == 0.2
    # a run's recorded directions win (a custom 'score' that improves downwards)
    history = {"val_score": [0.3, 0.1, 0.2]}
    assert runner.best_epoch(history, ["loss", "score"], {"score": "down"})["epoch"] == 2
    assert runner.best_epoch(history, ["loss", "score"])["epoch"] == 1
    ref = {"metric": "val_mae", "statistic": "best"}
    assert verdicts.value(ref, {}, {"val_mae": [0.5, 0.2, 0.4]}) == 0.2
    assert verdicts.value(ref, {}, {"val_mae": [0.5, 0.2, 0.4]}, {"mae": "up"}) == 0.5


def test_best_weights_callback_keeps_the_lowest_error_epoch():
    cb = runner.BestWeights(["loss", "mae"])
    cb.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    for epoch, v in enumerate([0.5, 0.2, 0.4, 0.2]):
        cb.on_epoch_end(epoch, {"val_loss": 1.0, "val_mae": v})
    assert (cb.epoch, cb.best, cb.monitor) == (4, 0.2, "val_mae")  # the minimum, ties to the later epoch


def test_compiled_metrics_and_callbacks_follow_one_rule():
    exp = load("mnist", ["train.metrics=[accuracy, MeanAbsoluteError]", "train.directions={accuracy: up}"])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(
        optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy", keras.metrics.MeanAbsoluteError()]
    )
    model.evaluate(np.zeros((4, 3), "float32"), np.zeros((4, 1), "int64"), verbose=0)  # builds the metric objects
    directions = runner.metric_directions(model, exp.config.train)
    assert directions == {"loss": "down", "accuracy": "up", "mean_absolute_error": "down"}
    stops = [
        keras.callbacks.EarlyStopping(monitor="val_mean_absolute_error"),
        keras.callbacks.EarlyStopping(monitor="val_accuracy"),
        keras.callbacks.ReduceLROnPlateau(monitor="val_mean_absolute_error", mode="max"),
    ]  # the user's choice
    runner.set_monitor_modes(stops, directions)
    assert [cb.mode for cb in stops] == ["min", "max", "max"]


def test_train_directions_are_checked_against_the_run_metrics():
    with pytest.raises(
        ConfigError,
        match=r"train\.directions\.acuracy: not a metric of this run \(did you mean "
        r"'accuracy'\?\); its metrics: loss, accuracy",
    ):
        load("mnist", ["train.directions={acuracy: up}"])
    with pytest.raises(ConfigError, match=r"train\.directions\.accuracy: expected one of up, down, received 'higher'"):
        load("mnist", ["train.directions={accuracy: higher}"])
