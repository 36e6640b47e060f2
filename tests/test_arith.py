"""The lectures' calculators checked against Keras itself and against direct computations."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import layers

from cnnlab.config.experiment import experiment_names, load
from cnnlab.lectures import arith
from cnnlab.lectures.autodiff import vjp
from cnnlab.models import params
from cnnlab.models.stack import build_model, needs_data
from cnnlab.models.text_models import kim_cnn


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_output_size_matches_keras_over_a_grid(padding):
    checked = 0
    for n, k, s, d in itertools.product([5, 7, 8, 13, 28], [1, 2, 3, 5], [1, 2, 3], [1, 2]):
        ours = arith.output_size(n, k, s, padding, d)
        if ours < 1 or (s > 1 and d > 1):  # Keras refuses strides > 1 with dilation > 1
            continue
        conv = layers.Conv1D(1, k, strides=s, padding=padding, dilation_rate=d)
        assert conv.compute_output_shape((1, n, 1))[1] == ours, (n, k, s, d, padding)
        if d == 1:
            pool = layers.MaxPooling1D(k, strides=s, padding=padding)
            assert pool.compute_output_shape((1, n, 1))[1] == ours, (n, k, s, padding)
        checked += 1
    assert checked >= 70
    conv2d = layers.Conv2D(1, (3, 5), strides=(2, 1), padding=padding, dilation_rate=1)
    assert conv2d.compute_output_shape((1, 13, 11, 1))[1:3] == (
        arith.output_size(13, 3, 2, padding),
        arith.output_size(11, 5, 1, padding),
    )


def test_slide_formulas_differ_from_keras_only_when_the_stride_does_not_divide():
    # lecture 001's example: 5×5 input, k 3, p 1, s 2 → 3×3, all three agree
    assert arith.lecture_001_size(5, 3, 2, 1) == arith.lecture_004_size(5, 3, 2, 1) == 3
    assert arith.keras_output_size_with_pad(5, 3, 2, 1) == 3
    # MNIST's maxpooling2d_2: 11 → 5 in Keras (floor); the ceiling says 6, no rounding 5.5
    assert arith.output_size(11, 2, 2) == 5
    assert arith.lecture_001_size(11, 2, 2, 0) == 6 and arith.lecture_004_size(11, 2, 2, 0) == 5.5
    for n, k, s, p in itertools.product(range(5, 30), [1, 3, 5], [1, 2, 3], [0, 1, 2]):
        keras_n = arith.keras_output_size_with_pad(n, k, s, p)
        divides = (n + 2 * p - k) % s == 0
        assert (arith.lecture_001_size(n, k, s, p) == keras_n) == divides
        assert (arith.lecture_004_size(n, k, s, p) == keras_n) == divides


def test_same_padding_is_asymmetric_like_keras():
    assert arith.same_padding(5, 3, 2) == (1, 1)
    assert arith.same_padding(6, 3, 2) == (0, 1)  # the extra zero goes after
    x = np.arange(36, dtype="float32").reshape(1, 6, 6, 1)
    ones = layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False, kernel_initializer="ones")
    padded = np.pad(x[0, :, :, 0], ((0, 1), (0, 1)))
    direct = np.array([[padded[i : i + 3, j : j + 3].sum() for j in range(0, 6, 2)] for i in range(0, 6, 2)])
    assert np.allclose(keras.ops.convert_to_numpy(ones(x))[0, :, :, 0], direct)


def _nonzero_extent(grad: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(np.abs(grad) > 0)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize(
    "stack",
    [
        [
            layers.Conv2D(2, 3),
            layers.AveragePooling2D(2),
            layers.Conv2D(2, 3),
            layers.AveragePooling2D(2),
            layers.Conv2D(2, 3),
        ],  # the MNIST geometry: 3 → 4 → 8 → 10 → 18
        [layers.Conv2D(2, 3, dilation_rate=2), layers.Conv2D(2, 3, dilation_rate=4), layers.Conv2D(2, 3)],
        [layers.Conv2D(2, 5, strides=2), layers.Conv2D(2, 3, strides=2, padding="same"), layers.Conv2D(2, (1, 3))],
        [
            layers.Conv2D(2, 7, strides=2, padding="same"),
            layers.AveragePooling2D(3, strides=2, padding="same"),
            layers.Conv2D(2, 3, padding="same"),
        ],
    ],
)
def test_receptive_field_matches_the_input_gradient(stack):
    """The non-zero region of d(one output unit)/d(input) has exactly the computed receptive-field size."""
    keras.utils.set_random_seed(0)
    for layer in stack:  # positive weights and no activation: no gradient cancels or is cut off
        if hasattr(layer, "kernel_initializer"):
            layer.kernel_initializer = keras.initializers.RandomUniform(0.5, 1.0)
    model = keras.Sequential([keras.Input((64, 64, 1)), *stack])
    field = arith.receptive_fields(model)[model.layers[-1].name]
    out = model.output_shape
    upstream = np.zeros((1, *out[1:]), dtype="float32")
    upstream[0, out[1] // 2, out[2] // 2, 0] = 1.0  # one unit near the centre, away from the borders
    x = np.random.default_rng(0).uniform(0.5, 1.0, (1, 64, 64, 1)).astype("float32")
    grad = vjp(model, x, upstream)[0, :, :, 0]
    assert _nonzero_extent(grad) == field.size


def test_mnist_receptive_fields_and_formulas():
    t = params.table(build_model(load("mnist").config.model, "mnist"))
    fields = {r.name: r.field for r in t.rows}
    # conv 3 → pool +1 → conv +2·2 → pool +1·2 → conv +2·4: 3, 4, 8, 10, 18
    assert fields["conv2d_1"] == "3×3 (jump 1×1)" and fields["conv2d_3"] == "18×18 (jump 4×4)"
    assert fields["dense_1"] == "whole input"
    assert [r.formula for r in t.rows if r.type == "Conv2D"] == [
        "32 × (3×3×1) + 32",
        "64 × (3×3×32) + 64",
        "64 × (3×3×64) + 64",
    ]
    no_pool = params.table(build_model(load("mnist_no_pooling").config.model, "m"))
    # lecture 002, "Why Pooling?": "First layer (3 × 3) → Third layer (7 × 7)"
    assert [r.field for r in no_pool.rows if r.type == "Conv2D"][-1] == "7×7 (jump 1×1)"


def test_lecture_formula_agrees_with_keras_for_every_layer_of_every_config():
    checked = 0
    for name in experiment_names():
        for profile in ("full", "quick"):
            exp = load(name, profile=profile)
            if needs_data(exp.config.model):  # Kim's CNN: sized by its vocabulary, checked below on a small one
                continue
            for row in params.table(build_model(exp.config.model, name)).rows:
                assert row.formula_params == row.params, (name, row)
                checked += 1
    assert checked >= 16
    for variant in ("rand", "multichannel"):  # Embedding, Conv1D (per channel), pooling, Dense
        data = {"vocabulary": ["w"] * 30, "num_classes": 3, "embeddings": np.ones((30, 6), "float32")}
        kim = kim_cnn((20,), data=data, variant=variant, embedding_dim=6, feature_maps=5)
        for row in params.table(kim).rows:
            assert row.formula_params == row.params, (variant, row)
    grouped = keras.Sequential([keras.Input((8, 8, 4)), layers.Conv2D(6, 3, groups=2, use_bias=False)])
    assert arith.formula(grouped.layers[0]) == ("6 × (3×3×2)", 6 * 3 * 3 * 2)
    assert grouped.count_params() == 108


def test_maxpool_backprop_lecture_001_example():
    r = arith.maxpool_backprop(arith.LECTURE_001_GRID, 3, 1, arith.LECTURE_001_UPSTREAM)
    assert r.forward.tolist() == [[9, 8, 8], [9, 6, 6], [7, 7, 7]]
    # 9 wins two windows (1 + 1), 8 two (3 + 1), 6 two (4 + 2), the 7 at (4, 1) two (6 + 2), the 7 at (4, 4) one
    expected = np.zeros((5, 5))
    expected[1, 0], expected[0, 2], expected[2, 2], expected[4, 1], expected[4, 4] = 2, 4, 6, 8, 1
    assert np.array_equal(r.autodiff, expected) and np.array_equal(r.direct, expected)
    assert r.autodiff.sum() == arith.LECTURE_001_UPSTREAM.sum() == 21


@pytest.mark.parametrize("size, pool, stride", [(6, 2, 2), (7, 3, 2), (8, 3, 1), (9, 2, 3), (5, 5, 1)])
def test_maxpool_backprop_random_grids(size, pool, stride):
    rng = np.random.default_rng(size * 100 + pool * 10 + stride)
    grid = rng.permutation(size * size).reshape(size, size).astype("float32")  # distinct values: no ties
    n_out = arith.output_size(size, pool, stride)
    upstream = rng.integers(1, 9, (n_out, n_out)).astype("float32")
    r = arith.maxpool_backprop(grid, pool, stride, upstream)
    assert np.array_equal(r.autodiff, r.direct)
    assert r.autodiff.sum() == upstream.sum()


def test_lecture_002_convolution_and_sobel():
    (response,) = arith.convolve(arith.LECTURE_002_FEATURE_MAP, [arith.LECTURE_002_X_KERNEL])
    fm, k = arith.LECTURE_002_FEATURE_MAP, arith.LECTURE_002_X_KERNEL
    direct = np.array([[(fm[i : i + 3, j : j + 3] * k).sum() for j in range(3)] for i in range(3)])
    assert response[0, 0] == 4 and np.array_equal(response, direct)
    step = np.zeros((8, 8), dtype="float32")
    step[:, 4:] = 1.0  # a vertical edge between columns 3 and 4
    gx, gy, g = arith.sobel(step)
    assert np.allclose(gy[1:-1], 0) and gx[4, 3] == gx[4, 4] == 4 and np.allclose(gx[:, :2], 0)
    assert np.allclose(g, np.sqrt(gx**2 + gy**2))


def test_cli_maxpool_and_report(cli, tmp_path):
    code, out, _ = cli("arith", "maxpool-backprop")
    assert code == 0 and "9  8  8" in out and "agrees" in out
    code, _, err = cli("arith", "maxpool-backprop", "--grid", "1 2; 3")
    assert code == 2 and "rectangular" in err and err.count("\n") == 1
    code, out, _ = cli("arith", "size", "11", "2", "--stride", "2")
    assert code == 0 and "n_out = 5" in out and "= 6   ≠ Keras" in out
    code, out, _ = cli("--results-dir", tmp_path, "arith", "report")
    text = (tmp_path / "arith.md").read_text()
    assert code == 0 and "18×18 (jump 4×4)" in text and "Direct computation agrees: True" in text
    assert (tmp_path / "arith_sobel.png").read_bytes()[:4] == b"\x89PNG"
