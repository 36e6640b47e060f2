"""Keras 2.0.8 semantics that Keras 3 changed quietly, as named classes a config can ask for.

The book's numbers (Chollet, *Deep Learning with Python*, 1st ed.) were measured on Keras 2.0.8. Two of its
computations differ in Keras 3 in ways that move those numbers (and one of Kim's, on Theano: ``AdadeltaDense``):

* ``RMSpropKeras2`` — Keras 2.0.8's ``RMSprop.get_updates`` (keras/optimizers.py at 2.0.8)::

      a  <- rho * a + (1 - rho) * g**2
      p  <- p - lr * g / (sqrt(a) + epsilon)          epsilon = 1e-8

  Keras 3's ``RMSprop.update_step`` (keras/src/optimizers/rmsprop.py) steps ``lr * g / sqrt(a + 1e-7)``.
* ``BinaryAccuracyKeras2`` — Keras 2.0.8's ``metrics.binary_accuracy``: ``mean(equal(y, round(z)))`` on the raw
  output ``z``, which ``compile(metrics=['accuracy'])`` picked for a one-unit output under binary cross-entropy.

Trap: the two RMSprop steps agree only where the running mean ``a`` of squared gradients is well above 1e-7.
Where it is below — the embedding rows of words a batch does not contain, most of the 3.2 M weights of the
cats-vs-dogs Dense(512), the first-layer weights of rare words in the multi-hot IMDB models — Keras 3's step is
``sqrt(a) / sqrt(a + 1e-7)`` of Keras 2's: at ``a = 1e-9`` a tenth, at ``a = 1e-11`` a hundredth. That is most
entries, not a corner case. And ``round`` is not a threshold: a linear output of 1.7 rounds to 2, which equals
neither label, so Keras 2 counted it wrong where Keras 3's ``accuracy`` (``z > 0.5``) counts it right.
"""

from __future__ import annotations

import keras
from keras import ops

from cnnlab.registry import METRICS, OPTIMIZERS


def _dense(gradient):
    """An Embedding's gradient as Keras 2.0.8 saw it: dense, repeated rows summed. TensorFlow hands Keras 3 an
    IndexedSlices with one slice per token occurrence, and squaring those slices before adding them gives
    Σg² where Keras 2 had (Σg)² (a word three times in a review: a third of the accumulator)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only under the TensorFlow backend, where it is loaded already

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


@OPTIMIZERS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class RMSpropKeras2(keras.optimizers.Optimizer):
    """RMSprop exactly as Keras 2.0.8 stepped it: ``p - lr * g / (sqrt(a) + epsilon)``, epsilon 1e-8.

    Reference: Keras 2.0.8 keras/optimizers.py, ``RMSprop.get_updates`` (lr=0.001, rho=0.9, epsilon=1e-8 by
    default); DLwP 1st ed. listings 5.3, 5.5, 6.46, 4.4's ``optimizer='rmsprop'``.
    Trap: epsilon sits *outside* the square root here, and is 1e-8, not Keras 3's 1e-7 inside it; passing
    ``epsilon=1e-8`` to Keras 3's RMSprop does not make it this optimizer. The update is dense, as Keras 2's
    was: an embedding's sparse gradient is summed per row first (`_dense`), and the accumulator of every row
    decays every step. (Keras 3's own RMSprop under TensorFlow squares the per-occurrence slices instead.)
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        epsilon: float = 1e-8,
        name: str = "rmsprop_keras2",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1); received rho={rho}")
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0; received epsilon={epsilon}")
        self.rho = rho
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = [self.add_variable_from_reference(v, "accumulator") for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(_dense(gradient), variable.dtype)
        a = self._accumulators[self._get_variable_index(variable)]
        self.assign(a, ops.add(ops.multiply(self.rho, a), ops.multiply(1.0 - self.rho, ops.square(g))))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, g), ops.add(ops.sqrt(a), self.epsilon)))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@OPTIMIZERS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class AdadeltaDense(keras.optimizers.Adadelta):
    """Adadelta on the dense gradient, as Kim's own code stepped it: an embedding row's gradient is summed over
    the batch's occurrences of its word before it is squared into the accumulator.

    Reference: yoonkim/CNN_sentence, conv_net_sentence.py `sgd_updates_adadelta`: `gp = T.grad(cost, param)` (for
    `Words`, Theano's gradient of a lookup is the dense matrix, repeated rows summed), `up_exp_sg = rho * exp_sg
    + (1 - rho) * T.sqr(gp)`, `step = -(sqrt(exp_su + eps) / sqrt(up_exp_sg + eps)) * gp` — which is Keras 3's
    Adadelta update_step (keras/src/optimizers/adadelta.py) on a dense gradient.
    Trap: under TensorFlow an Embedding's gradient reaches Keras 3 as IndexedSlices, one slice per occurrence,
    and its Adadelta squares the slices before adding them: Σg² where Kim had (Σg)² (a word three times in a
    batch: a third of Kim's accumulator). Under JAX the gradient is dense already and the two are the same.
    """

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(_dense(gradient), variable, learning_rate)


def binary_accuracy_keras2(y_true, y_pred):
    """Keras 2.0.8 ``metrics.binary_accuracy``: ``mean(equal(y_true, round(y_pred)), axis=-1)``."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    # Keras 2 fed the labels through a target of the output's shape, (n, 1); labels of shape (n,) against an
    # output of (n, 1) would broadcast to (n, n) and score about 0.5 whatever the model does
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
    # ops.round rounds half to even on every backend, as tf.round (K.round) did: round(0.5) = 0, round(1.5) = 2
    return ops.mean(ops.cast(ops.equal(y_true, ops.round(y_pred)), "float32"), axis=-1)


@METRICS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class BinaryAccuracyKeras2(keras.metrics.MeanMetricWrapper):
    """Keras 2.0.8's binary accuracy of the raw output, logged as ``keras2_accuracy``.

    Reference: Keras 2.0.8 keras/metrics.py ``binary_accuracy`` and keras/engine/training.py (``'accuracy'`` with
    one output unit → binary_accuracy); DLwP notebook 6.4, whose 0.838 was measured with it on a linear output.
    Trap: on a sigmoid output it equals Keras 3's ``accuracy`` (``round(p) = 1`` iff ``p > 0.5``); on a linear
    output it does not: outputs >= 1.5 or < -0.5 round to no label and count as errors.
    """

    def __init__(self, name: str = "keras2_accuracy", dtype=None):
        super().__init__(binary_accuracy_keras2, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
