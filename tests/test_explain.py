"""Saliency, Grad-CAM, activations and filter patterns on tiny models whose answer is known, then on a real run."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from cnnlab.config.experiment import load
from cnnlab.lectures import explain
from cnnlab.models.stack import build_model


def _looks_at_one_region():
    """8×8 input; class 1's score is the sum of the pixels in rows 2-3, columns 5-6; class 0 sees nothing."""
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")])
    w = np.zeros((64, 2), dtype="float32")
    region = np.zeros((8, 8), dtype=bool)
    region[2:4, 5:7] = True
    w[region.ravel(), 1] = 1.0
    model.layers[-1].set_weights([w, np.zeros(2, dtype="float32")])
    return model, region


def test_saliency_lights_up_exactly_where_the_model_looks():
    model, region = _looks_at_one_region()
    x = np.random.default_rng(0).uniform(0, 1, (1, 8, 8, 1)).astype("float32")
    x[0, 2:4, 5:7, 0] = 50.0  # a saturated softmax: the probability's gradient would all but vanish
    sal = explain.saliency(model, x, class_index=1)
    assert np.array_equal(sal.max_map > 0, region)
    assert np.allclose(sal.max_map[region], 1.0)  # the score's gradient: the weights themselves
    assert np.allclose(sal.max_map, sal.mean_map)  # one channel: max and mean agree
    assert np.all(explain.saliency(model, x, class_index=0).max_map == 0)


def test_grad_cam_finds_the_channel_and_place_the_score_depends_on():
    """Channel 0 has a blob top-left, channel 1 bottom-right; only channel 1 feeds the score."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            layers.Conv2D(2, 1, use_bias=False),
            layers.Flatten(),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.layers[0].set_weights([np.eye(2, dtype="float32").reshape(1, 1, 2, 2)])  # A = x
    w = np.zeros((8 * 8 * 2, 1), dtype="float32")
    w[1::2] = 1.0  # channel 1 of every position
    model.layers[-1].set_weights([w, np.zeros(1, dtype="float32")])
    x = np.zeros((1, 8, 8, 2), dtype="float32")
    x[0, 0:3, 0:3, 0] = 1.0
    x[0, 5:8, 5:8, 1] = 1.0
    cam = explain.grad_cam(model, x, class_index=1)  # a single sigmoid output scores class 1
    assert cam.shape == (8, 8)
    assert np.all(cam[5:8, 5:8] == 1.0) and np.all(cam[0:3, 0:3] == 0.0) and cam.sum() == 9
    assert np.all(explain.grad_cam(model, x, class_index=0) == 0)  # evidence against class 1: none here


def test_activations_and_filter_pattern_on_the_mnist_model():
    keras.utils.set_random_seed(0)
    model = build_model(load("mnist").config.model, "mnist")
    x = np.random.default_rng(0).uniform(0, 1, (1, 28, 28, 1)).astype("float32")
    maps = explain.activations(model, x)
    assert {k: v.shape for k, v in maps.items()} == {
        "conv2d_1": (26, 26, 32),
        "maxpooling2d_1": (13, 13, 32),
        "conv2d_2": (11, 11, 64),
        "maxpooling2d_2": (5, 5, 64),
        "conv2d_3": (3, 3, 64),
    }
    # a ReLU filter silent on the grey start image has no gradient to climb (which one is silent depends on the
    # initial weights, so on the machine's kernels): the first filter alive there
    for f in range(64):
        image, before, after = explain.filter_pattern(model, 2, filter_index=f, steps=5, pixel_scale=1.0)
        if before > 0:
            break
    assert image.shape == (28, 28, 1) and 0 < before < after  # gradient ascent raises the filter's mean activation


def test_explain_a_real_run(cli, data_dir, tmp_path):
    results = tmp_path / "results"
    code, _, err = cli("--results-dir", results, "explain", "mnist")
    assert code == 2 and "no complete run with a saved model" in err and err.count("\n") == 1
    code, _, err = cli(
        "--results-dir",
        results,
        "run",
        "mnist",
        "data.train_subset=300",
        "data.test_subset=50",
        "train.epochs=1",
        "--data-dir",
        data_dir,
        "--verbose",
        "0",
        "--no-summary",
    )
    assert code == 0, err
    code, out, err = cli(
        "--results-dir",
        results,
        "explain",
        "mnist",
        "--filters",
        "2",
        "--steps",
        "2",
        "--index",
        "3",
        "--data-dir",
        data_dir,
    )
    assert code == 0, err
    (run,) = [p for p in (results / "mnist").iterdir() if p.is_dir()]
    names = sorted(p.name for p in (run / "explain").iterdir())
    assert {
        "saliency.png",
        "gradcam.png",
        "activations_conv2d_1.png",
        "filters_conv2d_3.png",
        "kernels_conv2d_1.png",
        "README.md",
    } <= set(names)
    text = (run / "explain" / "README.md").read_text()
    assert "test image 3 (label digit " in text and "(predicted digit " in text  # class names, not bare indices
    code, _, err = cli("--results-dir", results, "explain", str(run), "--class", "12", "--data-dir", data_dir)
    assert code == 2 and "--class: expected 0 to 9, received 12" in err


def test_explain_looks_inside_a_nested_vgg16():
    """The VGG16 block is expanded into its 18 layers, so Grad-CAM uses block5_conv3 inside the base."""
    model = build_model(load("vgg16_augmented", ["model.input_shape=[48, 48, 3]"]).config.model, "m")
    names = [layer.name for layer in explain.chain(model)]
    assert names[:4] == ["randomaffine_1", "imagenetpreprocessing_1", "block1_conv1", "block1_conv2"]
    assert "vgg16" not in names
    assert names[explain.last_conv_index(model)] == "block5_conv3"
    x = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 3)).astype("float32")
    direct = keras.ops.convert_to_numpy(model(x, training=False))
    h = x
    for layer in explain.chain(model):
        h = layer(h, training=False)
    assert np.allclose(keras.ops.convert_to_numpy(h), direct, atol=1e-5)  # the expanded chain is the same model
    cam = explain.grad_cam(model, x, class_index=1)
    assert cam.shape == (3, 3) and cam.max() <= 1.0


def test_filter_pattern_layers_are_spread():
    from cnnlab.lectures.explain_run import pattern_layers

    assert pattern_layers([1, 3, 5], 4) == [1, 3, 5]
    assert pattern_layers(list(range(13)), 4) == [0, 4, 8, 12]
