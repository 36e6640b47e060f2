"""Vector-Jacobian products through whichever Keras backend is active: the one autodiff entry point.

Reference: lecture 001 (max-pool backprop, saliency maps) and lecture 003 (Grad-CAM) all need the gradient of
a model output with respect to its input; Keras 3 has no backend-neutral gradient API, so each backend's own
autodiff is called here (TensorFlow's GradientTape, jax.vjp, torch.autograd).
Trap: the function must be written with keras.ops / Keras layers only, so the same code runs on every backend;
inputs and upstream gradients are float32 numpy arrays, and the result comes back as numpy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.errors import CnnlabError


def _tensorflow(fn, x, upstream):
    import tensorflow as tf

    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt)
    return np.asarray(tape.gradient(y, xt, output_gradients=tf.convert_to_tensor(upstream)))


def _jax(fn, x, upstream):
    import jax
    import jax.numpy as jnp

    _, pullback = jax.vjp(fn, jnp.asarray(x))
    return np.asarray(pullback(jnp.asarray(upstream))[0])


def _torch(fn, x, upstream):
    import torch
    from keras.src.backend.torch.core import get_device

    xt = torch.tensor(x, requires_grad=True, device=get_device())
    y = fn(xt)
    y.backward(torch.tensor(upstream, device=y.device))
    return xt.grad.detach().cpu().numpy()


VJP: dict[str, Callable] = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def vjp(fn: Callable, x: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """d(sum(upstream * fn(x))) / dx, computed by the active backend's autodiff."""
    import keras

    backend = keras.backend.backend()
    if backend not in VJP:
        raise CnnlabError(f"no gradient support for Keras backend '{backend}'; use one of {', '.join(VJP)}")
    x = np.asarray(x, dtype="float32")
    return np.array(VJP[backend](fn, x, np.asarray(upstream, dtype="float32")))  # a writable copy
