"""Keras 2.0.8's RMSprop and binary accuracy (cnnlab.keras2) against hand computations."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from cnnlab.models.keras2 import BinaryAccuracyKeras2, RMSpropKeras2


def _steps(opt, grads: list[list[float]], start: list[float]) -> np.ndarray:
    var = keras.Variable(np.array(start, dtype="float32"))
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, dtype="float32")), var)])
    return keras.ops.convert_to_numpy(var)


def test_rmsprop_keras2_matches_the_2_0_8_formula_by_hand():
    # lr 0.01, rho 0.9, eps 1e-8; a large gradient 0.5 and a near-zero one 1e-6 on two entries.
    # step 1: a = 0.1·0.25 = 0.025           → Δ = 0.01·0.5 / (√0.025 + 1e-8)       = 0.0316227760
    #         a = 0.1·1e-12 = 1e-13          → Δ = 0.01·1e-6 / (3.16228e-7 + 1e-8)  = 0.0306534...
    # step 2: a = 0.9·0.025 + 0.025 = 0.0475 → Δ = 0.005 / √0.0475                   = 0.0229415734
    #         a = 0.9e-13 + 1e-13 = 1.9e-13  → Δ = 1e-8 / (4.3589e-7 + 1e-8)
    a = [0.0, 0.0]
    p = [1.0, 1.0]
    g = [0.5, 1e-6]
    for _ in range(3):
        for i in range(2):
            a[i] = 0.9 * a[i] + 0.1 * g[i] ** 2
            p[i] -= 0.01 * g[i] / (math.sqrt(a[i]) + 1e-8)
    assert p[0] == pytest.approx(1 - 0.0316227760 - 0.0229415734 - 0.01 * 0.5 / math.sqrt(0.9 * 0.0475 + 0.025))
    got = _steps(RMSpropKeras2(learning_rate=0.01), [g, g, g], [1.0, 1.0])
    np.testing.assert_allclose(got, p, rtol=1e-5)


def test_keras3_rmsprop_takes_a_far_smaller_step_on_a_near_zero_gradient():
    # Keras 3: Δ = lr·g / √(a + 1e-7): 0.01·1e-6 / √(1e-13 + 1e-7) = 3.16e-5, a thousandth of Keras 2's 0.0307
    k2 = 1.0 - _steps(RMSpropKeras2(learning_rate=0.01), [[1e-6]], [1.0])[0]
    k3 = 1.0 - _steps(keras.optimizers.RMSprop(learning_rate=0.01), [[1e-6]], [1.0])[0]
    assert k2 == pytest.approx(0.01 * 1e-6 / (math.sqrt(1e-13) + 1e-8), rel=1e-4)
    assert k3 == pytest.approx(0.01 * 1e-6 / math.sqrt(1e-13 + 1e-7), rel=1e-3)
    assert k2 / k3 > 900


def test_rmsprop_keras2_agrees_with_keras3_where_gradients_are_large():
    # a ≫ 1e-7: √a + 1e-8 ≈ √(a + 1e-7) to 1e-6 relative, the two optimizers take the same steps
    grads = [[0.3, -2.0], [0.1, 1.5], [-0.4, 0.7]]
    k2 = _steps(RMSpropKeras2(learning_rate=1e-3), grads, [0.0, 0.0])
    k3 = _steps(keras.optimizers.RMSprop(learning_rate=1e-3), grads, [0.0, 0.0])
    np.testing.assert_allclose(k2, k3, rtol=1e-4)


def test_rmsprop_keras2_round_trips_through_its_config():
    opt = RMSpropKeras2(learning_rate=1e-4, rho=0.8)
    again = RMSpropKeras2.from_config(opt.get_config())
    assert (again.rho, again.epsilon) == (0.8, 1e-8)
    assert float(again.learning_rate) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="rho"):
        RMSpropKeras2(rho=1.0)


def test_binary_accuracy_keras2_rounds_the_raw_output():
    # z:      -0.7  -0.2   0.5   0.6   1.4   1.5   2.3
    # round:   -1    0     0     1     1     2     2     (half to even, as tf.round)
    # y:        0    0     0     1     1     1     1
    # equal:    no   yes   yes   yes   yes   no    no    → 4 / 7; Keras 3's accuracy (z > 0.5): 7 / 7
    z = np.array([[-0.7], [-0.2], [0.5], [0.6], [1.4], [1.5], [2.3]], dtype="float32")
    y = np.array([[0], [0], [0], [1], [1], [1], [1]], dtype="float32")
    m = BinaryAccuracyKeras2()
    m.update_state(y, z)
    assert float(m.result()) == pytest.approx(4 / 7)
    k3 = keras.metrics.BinaryAccuracy()
    k3.update_state(y, z)
    assert float(k3.result()) == pytest.approx(1.0)
    assert m.name == "keras2_accuracy"
    flat = BinaryAccuracyKeras2()  # labels as the data layer hands them: shape (n,), output (n, 1)
    flat.update_state(y[:, 0], z)
    assert float(flat.result()) == pytest.approx(4 / 7)


def test_binary_accuracy_keras2_equals_keras3_accuracy_on_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, size=(200, 1)).astype("float32")
    y = rng.integers(0, 2, size=(200, 1)).astype("float32")
    m, k3 = BinaryAccuracyKeras2(), keras.metrics.BinaryAccuracy()
    m.update_state(y, p)
    k3.update_state(y, p)
    assert float(m.result()) == pytest.approx(float(k3.result()))


def test_configs_name_the_keras2_classes(write_config):
    from cnnlab.config.experiment import load
    from cnnlab.errors import CnnlabError
    from tests.conftest import MNIST_YAML

    assert "optimizer: RMSpropKeras2" in MNIST_YAML  # the book's listings run Keras 2.0.8's RMSprop
    exp = load(
        write_config(
            MNIST_YAML.replace("optimizer: RMSpropKeras2", "optimizer: {RMSpropKeras2: {learning_rate: 0.01}}")
        )
    )
    assert dict(exp.config.train.optimizer.kwargs) == {"learning_rate": 0.01}
    with pytest.raises(CnnlabError, match="did you mean 'RMSpropKeras2'"):
        load(write_config(MNIST_YAML.replace("optimizer: RMSpropKeras2", "optimizer: RMSpropKeras")))
    with pytest.raises(CnnlabError, match="unknown argument 'lr' of RMSpropKeras2"):
        load(write_config(MNIST_YAML.replace("optimizer: RMSpropKeras2", "optimizer: {RMSpropKeras2: {lr: 0.1}}")))


def test_a_repeated_token_is_one_dense_gradient_row():
    # one review of the token 1 three times; loss = Σ of the embedding outputs → ∂loss/∂row1 = 1 per occurrence,
    # dense (Σ) 3: Keras 2 steps a = 0.1 · 3² = 0.9, Δ = lr · 3 / (√0.9 + 1e-8) = 3.1623 · lr. Squaring TensorFlow's
    # three IndexedSlices first would give a = 0.3 and Δ = 5.477 · lr.
    model = keras.Sequential(
        [keras.Input((3,), dtype="int32"), keras.layers.Embedding(5, 2, embeddings_initializer="zeros")]
    )
    model.compile(optimizer=RMSpropKeras2(learning_rate=0.01), loss=lambda y, p: keras.ops.sum(p, axis=(1, 2)))
    model.train_on_batch(np.array([[1, 1, 1]]), np.zeros((1,)))
    row = keras.ops.convert_to_numpy(model.layers[0].embeddings)[1]
    np.testing.assert_allclose(row, [-0.01 * 3 / (math.sqrt(0.9) + 1e-8)] * 2, rtol=1e-5)


def test_adadelta_dense_squares_the_summed_gradient_as_kims_theano_code():
    """A word three times in a batch, another once, every output summed (each occurrence's gradient is 1): Kim's
    dense gradient gives row 1 an accumulator of (1 - rho)·(1 + 1 + 1)² = 0.05·9, row 2 0.05·1; Keras 3's
    Adadelta on TensorFlow's IndexedSlices adds the squared slices, 0.05·3 (on JAX both are dense: equal)."""
    import keras
    import numpy as np

    from cnnlab.models.keras2 import AdadeltaDense

    def accumulator(optimizer):
        emb = keras.layers.Embedding(5, 2, embeddings_initializer="ones")
        model = keras.Sequential([keras.Input((4,), dtype="int32"), emb])
        model.compile(optimizer=optimizer, loss=lambda y, p: keras.ops.sum(p, axis=(1, 2)))
        model.train_on_batch(np.array([[1, 1, 1, 2]]), np.zeros((1,)))
        return keras.ops.convert_to_numpy(optimizer._accumulated_grads[0])[:3, 0]

    dense = accumulator(AdadeltaDense(learning_rate=1.0, rho=0.95, epsilon=1e-6))
    np.testing.assert_allclose(dense, [0.0, 0.05 * 9, 0.05 * 1], rtol=1e-6)
    keras_own = accumulator(keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-6))
    expected_row1 = 0.05 * 3 if keras.backend.backend() == "tensorflow" else 0.05 * 9
    np.testing.assert_allclose(keras_own, [0.0, expected_row1, 0.05], rtol=1e-6)
