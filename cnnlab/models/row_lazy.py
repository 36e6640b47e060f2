"""Adadelta that touches only the embedding rows a batch contains: Keras 3's Adadelta, step for step, at the cost
of the rows it changes instead of the whole matrix.

Reference: issue 13 ("CNN-rand and CNN-non-static train ~10x slower than CNN-static (5.99 M embedding weights
updated densely by Adadelta) — fix it without changing the optimizer's semantics"); Keras 3's
``Adadelta.update_step`` (keras/src/optimizers/adadelta.py), whose every step decays both accumulators of every
row; Zeiler (2012), Algorithm 1. results/bench_cpu.md measured that dense update as about half of CNN-rand's
training step on 2 CPU cores.

A row whose gradient is zero at a step only decays: ``E[g²] <- rho·E[g²]``, ``Δx = 0``, ``E[Δx²] <- rho·E[Δx²]``,
the weights unchanged. So a row untouched for ``k - 1`` steps and touched at the ``k``-th is exactly the dense
optimizer's row if its accumulators are first multiplied by ``rho**k`` and ``rho**(k - 1)``: each row keeps the
step it was last brought up to date (``last_step``), and only the rows of the batch's tokens are read and
written. The weights equal the dense optimizer's at every step; the stored accumulators of untouched rows lag
behind (``current_accumulators`` brings them up to date, for reading).

Trap: this is Keras 3's per-occurrence arithmetic, not Kim's Theano one (``AdadeltaDense``): under TensorFlow
an Embedding's gradient arrives as IndexedSlices, one slice per token occurrence, and Keras squares each slice
into ``E[g²]`` and steps each occurrence separately (measured: a word three times in a batch gets ``E[g²] =
(1 - rho)·3``, not ``(1 - rho)·9``). The lazy path needs those slices; a dense gradient (JAX, PyTorch, any
non-embedding weight) takes Keras's own dense step, bit for bit. ``rho**k`` in one power is not ``k``
multiplications: accumulators agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import keras
import numpy as np

from cnnlab.registry import OPTIMIZERS


def _slices(gradient) -> bool:
    """Whether `gradient` is TensorFlow's IndexedSlices (an Embedding's gradient under that backend)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # only under the TensorFlow backend, where it is loaded already

    return isinstance(gradient, tf.IndexedSlices)


@OPTIMIZERS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class AdadeltaRowLazy(keras.optimizers.Adadelta):
    """Keras 3's Adadelta (same arguments, same steps) whose sparse updates read and write only the rows a batch
    contains; see the module docstring for why that is exact."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # the step each row's accumulators were last brought up to date (0: never; both accumulators are zero)
        self._last_steps = [
            self.add_variable(shape=(v.shape[0] if len(v.shape) else 1,), dtype="int32", name="last_step")
            for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        if not _slices(gradient):
            super().update_step(gradient, variable, learning_rate)  # every row stepped: all up to date
            last = self._last_steps[self._get_variable_index(variable)]
            self.assign(last, keras.ops.full(last.shape, keras.ops.cast(self.iterations, "int32") + 1, "int32"))
            return
        import tensorflow as tf  # only under the TensorFlow backend (the slices are TensorFlow's)

        i = self._get_variable_index(variable)
        acc_g, acc_d, last = self._accumulated_grads[i], self._accumulated_delta_vars[i], self._last_steps[i]
        dtype = variable.dtype
        values = tf.cast(gradient.values, dtype)
        rows, occurrence = tf.unique(gradient.indices)  # the batch's rows; each slice's position among them
        step = tf.cast(self.iterations, "int32") + 1
        missed = tf.cast(step - tf.gather(last, rows), dtype)  # >= 1: this step and the untouched ones before
        column = tf.concat([[-1], tf.ones([tf.rank(values) - 1], "int32")], 0)  # one factor per row

        def decayed(accumulator, times):
            factor = tf.reshape(tf.pow(tf.constant(self.rho, dtype), times), column)
            return tf.gather(accumulator, rows) * factor

        n = tf.shape(rows)[0]
        new_g = decayed(acc_g, missed) + (1 - self.rho) * tf.math.unsorted_segment_sum(values**2, occurrence, n)
        old_d = decayed(acc_d, missed - 1)
        eps = self.epsilon
        delta = -(tf.sqrt(tf.gather(old_d, occurrence) + eps) * values) / tf.sqrt(tf.gather(new_g, occurrence) + eps)
        new_d = self.rho * old_d + (1 - self.rho) * tf.math.unsorted_segment_sum(delta**2, occurrence, n)
        self.assign(acc_g, tf.IndexedSlices(new_g, rows))
        self.assign(acc_d, tf.IndexedSlices(new_d, rows))
        self.assign(last, tf.IndexedSlices(tf.fill([n], step), rows))
        lr = tf.cast(learning_rate, dtype)
        self.assign_add(variable, tf.IndexedSlices(lr * delta, gradient.indices))

    def current_accumulators(self, variable) -> tuple:
        """``(E[g²], E[Δx²])`` of `variable` as the dense optimizer holds them after the last step (numpy)."""
        i = self._get_variable_index(variable)
        acc_g, acc_d, last = (
            keras.ops.convert_to_numpy(v)
            for v in (self._accumulated_grads[i], self._accumulated_delta_vars[i], self._last_steps[i])
        )
        if acc_g.ndim == 0:
            return acc_g, acc_d
        behind = int(keras.ops.convert_to_numpy(self.iterations)) - last
        factor = np.power(np.float64(self.rho), behind).reshape((-1,) + (1,) * (acc_g.ndim - 1))
        return (acc_g * factor).astype(acc_g.dtype), (acc_d * factor).astype(acc_d.dtype)
