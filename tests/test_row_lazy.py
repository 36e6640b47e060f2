"""AdadeltaRowLazy (cnnlab.models.row_lazy) against Keras 3's own Adadelta: the same weights at every step, with
only the batch's rows touched."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnlab.models.row_lazy import AdadeltaRowLazy

KIM = {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6}  # Kim's Adadelta, as configs/kim_mr.yaml asks
tf_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="IndexedSlices are TensorFlow's")


def _sparse_steps(steps: int = 400, rows: int = 60, width: int = 3, seed: int = 0):
    """`steps` gradients of a (rows, width) embedding as TensorFlow hands them over: 8 occurrences a step, drawn
    from a Zipf-like law (rare rows go hundreds of steps untouched; frequent ones repeat within a step)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, rows + 1) ** 1.3
    out = []
    for _ in range(steps):
        idx = rng.choice(rows, size=8, p=p / p.sum()).astype("int32")
        vals = rng.normal(0.0, 1.0, size=(8, width)).astype("float32") * rng.choice([1e-3, 1.0, 30.0])
        out.append(tf.IndexedSlices(tf.constant(vals), tf.constant(idx), tf.constant([rows, width])))
    return out


def _train(optimizer, gradients, start):
    var = keras.Variable(start)
    history = []
    for g in gradients:
        optimizer.apply_gradients([(g, var)])
        history.append(keras.ops.convert_to_numpy(var))
    return var, history


@tf_only
def test_the_weights_are_keras_adadeltas_at_every_step_on_sparse_gradients():
    grads = _sparse_steps()
    start = np.random.default_rng(1).normal(size=(60, 3)).astype("float32")
    dense = keras.optimizers.Adadelta(**KIM)
    lazy = AdadeltaRowLazy(**KIM)
    dense_var, dense_steps = _train(dense, grads, start)
    lazy_var, lazy_steps = _train(lazy, grads, start)
    for a, b in zip(dense_steps, lazy_steps):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-7)
    # the rows the law almost never draws did go untouched for long stretches: the lag is real, not vacuous
    last = keras.ops.convert_to_numpy(lazy._last_steps[0])
    assert (400 - last).max() > 100
    # brought up to date, the lagging accumulators are the dense optimizer's
    acc_g, acc_d = lazy.current_accumulators(lazy_var)
    np.testing.assert_allclose(acc_g, keras.ops.convert_to_numpy(dense._accumulated_grads[0]), rtol=2e-5, atol=1e-30)
    np.testing.assert_allclose(
        acc_d, keras.ops.convert_to_numpy(dense._accumulated_delta_vars[0]), rtol=2e-5, atol=1e-30
    )


@tf_only
def test_a_repeated_token_is_stepped_per_occurrence_as_keras_does():
    """A word three times in a batch, another once, every output summed (each occurrence's gradient is 1): Keras 3
    squares each slice, E[g²] = (1 - rho)·3 = 0.15, and steps each occurrence: Δx = 3 · (−√1e-6 / √(0.15 + 1e-6))
    = −0.0077459; the lone word −√1e-6 / √(0.05 + 1e-6) = −0.0044721. The rows no batch contains keep zeros."""

    def trained(optimizer):
        emb = keras.layers.Embedding(5, 2, embeddings_initializer="ones")
        model = keras.Sequential([keras.Input((4,), dtype="int32"), emb])
        model.compile(optimizer=optimizer, loss=lambda y, p: keras.ops.sum(p, axis=(1, 2)))
        model.train_on_batch(np.array([[1, 1, 1, 2]]), np.zeros((1,)))
        return keras.ops.convert_to_numpy(emb.embeddings)[:, 0] - 1, optimizer

    moved, lazy = trained(AdadeltaRowLazy(**KIM))
    np.testing.assert_allclose(moved, [0.0, -0.0077459, -0.0044721, 0.0, 0.0], rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(lazy._accumulated_grads[0])[:3, 0], [0, 0.15, 0.05])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lazy._last_steps[0]), [0, 1, 1, 0, 0])
    np.testing.assert_allclose(moved, trained(keras.optimizers.Adadelta(**KIM))[0], rtol=1e-6)


def test_a_dense_gradient_takes_keras_adadeltas_own_step_bit_for_bit():
    rng = np.random.default_rng(2)
    grads = [keras.ops.convert_to_tensor(rng.normal(size=(4, 3)).astype("float32")) for _ in range(20)]
    start = rng.normal(size=(4, 3)).astype("float32")
    dense_var, _ = _train(keras.optimizers.Adadelta(**KIM), grads, start)
    lazy = AdadeltaRowLazy(**KIM)
    lazy_var, _ = _train(lazy, grads, start)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lazy_var), keras.ops.convert_to_numpy(dense_var))
    # every row stepped is every row up to date: nothing to bring forward
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(lazy._last_steps[0]), [20] * 4)
    acc_g, _ = lazy.current_accumulators(lazy_var)
    np.testing.assert_array_equal(acc_g, keras.ops.convert_to_numpy(lazy._accumulated_grads[0]))


def test_a_kim_like_model_trains_to_the_same_weights_as_with_keras_adadelta():
    """Embedding → Conv1D → max-pool → Dense under model.fit, four epochs of 12 batches: every weight within
    float32 rounding of Keras's Adadelta (under JAX and PyTorch the gradient is dense and the two are one)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 200, size=(120, 12)).astype("int32")
    y = (x[:, 0] % 2).astype("float32")

    def fitted(optimizer):
        keras.utils.set_random_seed(5)
        model = keras.Sequential(
            [
                keras.Input((12,), dtype="int32"),
                keras.layers.Embedding(200, 8),
                keras.layers.Conv1D(4, 3, activation="relu"),
                keras.layers.GlobalMaxPooling1D(),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        model.compile(optimizer=optimizer, loss="binary_crossentropy")
        model.fit(x, y, batch_size=10, epochs=4, shuffle=False, verbose=0)
        return [keras.ops.convert_to_numpy(w) for w in model.weights]

    for a, b in zip(fitted(keras.optimizers.Adadelta(**KIM)), fitted(AdadeltaRowLazy(**KIM))):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-7)


def test_it_round_trips_through_its_config_and_is_a_config_name():
    from cnnlab.config.keras_specs import lookup

    opt = AdadeltaRowLazy(**KIM)
    again = AdadeltaRowLazy.from_config(opt.get_config())
    assert (again.rho, again.epsilon) == (0.95, 1e-6)
    assert lookup("optimizer", "AdadeltaRowLazy") is AdadeltaRowLazy
