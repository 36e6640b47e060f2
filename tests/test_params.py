"""Parameter counts with their derivations, and models built from YAML equal to the lecture's hand-written Keras."""

from __future__ import annotations

import keras
from keras import layers

from cnnlab.config.experiment import ClassSpec, load
from cnnlab.models import params
from cnnlab.models.stack import build_model, build_stack, simple_convnet


def table_of(name: str, *overrides: str) -> params.Table:
    exp = load(name, overrides)
    return params.table(build_model(exp.config.model, exp.config.name), exp.config.report.dense_head_what_if)


def test_mnist_93322_as_in_lecture_002():
    t = table_of("mnist")
    # conv2d_1: 32 × (3×3×1) + 32 = 320;  conv2d_2: 64 × (3×3×32) + 64 = 18,496;  conv2d_3: 64 × (3×3×64) + 64 = 36,928
    # dense_1: 576 × 64 + 64 = 36,928 (576 = 3×3×64);  dense_2: 64 × 10 + 10 = 650
    expected = [
        ("conv2d_1", "Conv2D", (None, 26, 26, 32), 320),
        ("maxpooling2d_1", "MaxPooling2D", (None, 13, 13, 32), 0),
        ("conv2d_2", "Conv2D", (None, 11, 11, 64), 18496),
        ("maxpooling2d_2", "MaxPooling2D", (None, 5, 5, 64), 0),
        ("conv2d_3", "Conv2D", (None, 3, 3, 64), 36928),
        ("flatten_1", "Flatten", (None, 576), 0),
        ("dense_1", "Dense", (None, 64), 36928),
        ("dense_2", "Dense", (None, 10), 650),
    ]
    assert [(r.name, r.type, r.output_shape, r.params) for r in t.rows] == expected
    assert t.total == 320 + 18_496 + 36_928 + 36_928 + 650 == 93_322
    assert (t.trainable, t.non_trainable) == (93_322, 0)


def test_lecture_layout_text():
    text = params.to_text(table_of("mnist"))
    lines = text.splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert "conv2d_1 (Conv2D)" in text and "(None, 26, 26, 32)" in text
    assert "maxpooling2d_2 (MaxPooling2D)" in text and "(None, 5, 5, 64)" in text
    assert "Total params: 93,322" in lines and "Trainable params: 93,322" in lines
    assert "Non-trainable params: 0" in lines


def test_no_pooling_base_55744_and_the_15_8_million_head():
    t = table_of("mnist_no_pooling")
    # 320 + 18,496 + 36,928 = 55,744, output 22×22×64 = 30,976 features (lecture 002, "Why Pooling?")
    assert t.base_params == 320 + 18_496 + 36_928 == 55_744
    assert t.base_output == (None, 22, 22, 64) and t.base_features == 22 * 22 * 64 == 30_976
    # the lecture's Dense(512) on those features: 30,976 × 512 + 512 = 15,860,224
    assert t.what_if == ((512, 30_976 * 512 + 512),) and t.what_if[0][1] == 15_860_224
    # the trained model keeps the pooled model's head: 30,976 × 64 + 64 = 1,982,528 for dense_1
    assert [r.params for r in t.rows if r.name == "dense_1"] == [1_982_528]
    assert t.total == 55_744 + 1_982_528 + 650 == 2_038_922
    text = params.to_text(t)
    assert "Convolutional base: 55,744 params, output (None, 22, 22, 64)" in text
    assert "30,976 × 512 + 512 = 15,860,224" in text


def test_dense_baseline_407050():
    t = table_of("mnist_dense")
    # 784 × 512 + 512 = 401,920;  512 × 10 + 10 = 5,130
    assert [r.params for r in t.rows] == [401_920, 5_130]
    assert t.total == 407_050 and t.base_params is None


def test_lecture_001_first_exercise_448():
    # 16 filters of 3×3 on an RGB input: 16 × (3 × 3 × 3) + 16 = 448
    t = table_of("mnist", "model.input_shape=[28, 28, 3]", "model.layers.0.Conv2D.filters=16")
    assert t.rows[0].params == 16 * (3 * 3 * 3) + 16 == 448


def lecture_002_model():
    """Lecture 002's code, verbatim but for Keras 3's keras.Input."""
    model = keras.models.Sequential()
    model.add(keras.Input(shape=(28, 28, 1)))
    model.add(layers.Conv2D(32, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def _same_layers(a, b):
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        ca, cb = la.get_config(), lb.get_config()
        ca.pop("name"), cb.pop("name")
        assert type(la) is type(lb) and ca == cb, (la.name, lb.name)
        assert la.output.shape == lb.output.shape
        assert [w.shape for w in la.weights] == [w.shape for w in lb.weights]


def test_yaml_model_equals_hand_written_keras_layer_by_layer():
    _same_layers(build_model(load("mnist").config.model, "mnist"), lecture_002_model())


def test_builder_equals_stack():
    _same_layers(simple_convnet((28, 28, 1)), lecture_002_model())
    model = build_model(
        load(
            "mnist",
            [
                "model.layers=null",
                "model.builder=simple_convnet",
                "model.params={filters: [32, 64, 64], dense_units: [64]}",
            ],
        ).config.model,
        "m",
    )
    _same_layers(model, lecture_002_model())


def test_configs_differ_only_in_pooling():
    a, b = load("mnist").config, load("mnist_no_pooling").config
    assert a.data == b.data and a.train == b.train and a.seed == b.seed
    assert a.model.input_shape == b.model.input_shape
    without_pooling = tuple(s for s in a.model.layers if s.name != "MaxPooling2D")
    assert without_pooling == b.model.layers
    assert len(a.model.layers) - len(b.model.layers) == 2


def test_layer_names_follow_the_slides_not_keras3_counters():
    specs = [
        ClassSpec("Conv2D", {"filters": 2, "kernel_size": 3}),
        ClassSpec("Conv2D", {"filters": 2, "kernel_size": 3}),
        ClassSpec("GlobalMaxPooling2D"),
        ClassSpec("Dense", {"units": 1, "name": "classifier"}),
    ]
    for _ in range(2):  # a second model in the same process numbers from 1 again
        model = build_stack((8, 8, 1), specs, "m")
        assert [layer.name for layer in model.layers] == ["conv2d_1", "conv2d_2", "globalmaxpooling2d_1", "classifier"]


def test_csv_records_hold_raw_numbers():
    records = params.to_records(table_of("mnist"))
    assert records[0] == {
        "layer": "conv2d_1",
        "type": "Conv2D",
        "output_shape": "(None, 26, 26, 32)",
        "params": 320,
        "trainable_params": 320,
        "formula": "32 × (3×3×1) + 32",
        "formula_params": 320,
        "receptive_field": "3×3 (jump 1×1)",
    }
    md = params.to_markdown(table_of("mnist"), "mnist")
    assert "| dense_1 (Dense) | (None, 64) | 36,928 | 36,928 | 576 × 64 + 64 | whole input |" in md


def test_frozen_layers_count_as_non_trainable():
    model = build_model(load("mnist").config.model, "m")
    model.get_layer("conv2d_1").trainable = False
    t = params.table(model)
    assert (t.total, t.trainable, t.non_trainable) == (93_322, 93_322 - 320, 320)
