"""Seeing inside a trained convnet: saliency maps, Grad-CAM, intermediate activations and filter patterns.

Reference: lecture 001 "Saliency maps" (Simonyan et al. 2013: gradient of the class *score* w.r.t. the pixels;
max or mean of |gradient| over colour channels); lecture 003 "Visualizing convnets" (intermediate activations,
filter patterns by gradient ascent with the normalised gradient, Grad-CAM of Selvaraju et al.); lecture 004
(filters of the first layer).
Trap: gradients are taken of the score *before* the final softmax/sigmoid: after the squashing a confident
prediction has a vanishing gradient and the map goes blank. Everything runs through keras.ops and the backend's
autodiff (cnnlab/lectures/autodiff.py), so it works under TensorFlow, JAX and PyTorch; the model must be a chain of
layers (Sequential), as every cnnlab stack is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.lectures.autodiff import vjp

SQUASHING = ("softmax", "sigmoid")
SPATIAL = ("Conv1D", "Conv2D", "MaxPooling2D", "AveragePooling2D", "SeparableConv2D", "DepthwiseConv2D")


def chain(model) -> list:
    """The model's layers in order, a nested base (VGG16 inside the stack) expanded into its own layers.

    A nested model can be expanded only if it is itself a chain: every layer reads the previous one's output.
    """
    import keras

    if not isinstance(model, keras.Sequential):
        raise CnnlabError(f"model '{model.name}' is not a chain of layers (keras.Sequential); explain needs one")
    out = []
    for layer in model.layers:
        inner = [sub for sub in getattr(layer, "layers", []) if type(sub).__name__ != "InputLayer"]
        if inner and _is_chain(layer, inner):
            out += inner
        elif inner:
            raise CnnlabError(
                f"layer '{layer.name}' of model '{model.name}' is not a chain of layers; explain cannot look inside it"
            )
        else:
            out.append(layer)
    return out


def _is_chain(model, layers) -> bool:
    try:
        return (
            all(layer.input is prev.output for prev, layer in zip(layers, layers[1:]))
            and layers[0].input is model.inputs[0]
        )
    except (AttributeError, ValueError, IndexError):  # a layer used twice, several inputs
        return False


def score_fn(model, start: int = 0):
    """x → class scores: the model's layers from index `start`, the last one without its softmax/sigmoid."""
    import keras

    layers = chain(model)[start:]
    last = layers[-1]
    squashed = getattr(getattr(last, "activation", None), "__name__", "") in SQUASHING

    def fn(x):
        h = x
        for layer in layers[:-1]:
            h = layer(h, training=False)
        if squashed:  # the pre-activation of the final Dense layer: the "score" of the lecture
            return keras.ops.matmul(h, last.kernel) + (last.bias if last.use_bias else 0.0)
        return last(h, training=False)

    return fn


def _one_hot_upstream(n_classes: int, class_index: int) -> np.ndarray:
    """Which score to differentiate: class `class_index`; a single sigmoid output scores class 1 (its logit), so
    class 0 is its negative (a cat is evidence against 'dog')."""
    if n_classes == 1:
        return np.array([[1.0 if class_index == 1 else -1.0]], dtype="float32")
    up = np.zeros((1, n_classes), dtype="float32")
    up[0, class_index] = 1.0
    return up


def n_classes(model) -> int:
    """Classes a model tells apart: its outputs, or 2 for a single sigmoid output."""
    return max(2, model.output_shape[-1])


def predicted_class(model, x: np.ndarray) -> int:
    import keras

    out = keras.ops.convert_to_numpy(model(x, training=False))[0]
    return int(np.argmax(out)) if out.shape[-1] > 1 else int(out[0] > 0.5)


@dataclass(frozen=True)
class Saliency:
    gradient: np.ndarray  # d score / d input, shape of one input
    max_map: np.ndarray  # max over channels of |gradient| (Simonyan et al.)
    mean_map: np.ndarray  # mean over channels of |gradient|


def saliency(model, x: np.ndarray, class_index: int) -> Saliency:
    """Gradient of one class score with respect to the input pixels (x: one sample with batch axis)."""
    n_classes = model.output_shape[-1]
    grad = vjp(score_fn(model), x, _one_hot_upstream(n_classes, class_index))[0]
    mag = np.abs(grad)
    return Saliency(grad, mag.max(axis=-1), mag.mean(axis=-1))


def last_conv_index(model) -> int:
    idx = [i for i, layer in enumerate(chain(model)) if type(layer).__name__.startswith(("Conv", "SeparableConv"))]
    if not idx:
        raise CnnlabError(f"model '{model.name}' has no convolutional layer for Grad-CAM")
    return idx[-1]


def grad_cam(model, x: np.ndarray, class_index: int, layer_index: int | None = None) -> np.ndarray:
    """Grad-CAM heatmap in [0, 1] at the conv layer's resolution: ReLU(sum_k mean(dS/dA_k) · A_k)."""
    import keras

    layers = chain(model)
    i = last_conv_index(model) if layer_index is None else layer_index
    h = x
    for layer in layers[: i + 1]:
        h = layer(h, training=False)
    feature_maps = keras.ops.convert_to_numpy(h)
    grads = vjp(score_fn(model, start=i + 1), feature_maps, _one_hot_upstream(model.output_shape[-1], class_index))
    weights = grads[0].mean(axis=tuple(range(grads.ndim - 2)))  # pooled over the spatial axes
    cam = np.maximum((feature_maps[0] * weights).sum(axis=-1), 0.0)
    return cam / cam.max() if cam.max() > 0 else cam


def activations(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every conv/pool layer's output for one input: {layer name: (h, w, channels)}."""
    import keras

    out, h = {}, x
    for layer in chain(model):
        h = layer(h, training=False)
        if type(layer).__name__ in SPATIAL and len(h.shape) == 4:
            out[layer.name] = keras.ops.convert_to_numpy(h)[0]
    return out


def filter_pattern(
    model,
    layer_index: int,
    filter_index: int,
    steps: int = 30,
    step_size: float = 1.0,
    seed: int = 0,
    pixel_scale: float = 255.0,
) -> tuple[np.ndarray, float, float]:
    """Gradient ascent in input space from a grey noise image, maximising one filter's mean activation.

    As in lecture 003 / DLwP §5.4.2: start from grey (128) plus uniform noise of 20, and take steps of 1 in
    0-255 pixel units along the gradient divided by its RMS ("normalise the gradient"), so the step does not
    depend on the layer's scale. `pixel_scale` is what the model's input calls white (255 for raw pixels, 1.0
    for inputs already scaled to [0, 1]). Returns (image, mean activation before, after).
    """
    import keras

    layers = chain(model)[: layer_index + 1]
    shape = (1, *model.input_shape[1:])

    def fn(x):
        h = x
        for layer in layers:
            h = layer(h, training=False)
        return h[..., filter_index]

    rng = np.random.default_rng(seed)
    unit = pixel_scale / 255.0
    x = ((128.0 + 20.0 * rng.random(shape)) * unit).astype("float32")
    out_shape = keras.ops.convert_to_numpy(fn(x)).shape
    upstream = np.full(out_shape, 1.0 / math.prod(out_shape[1:]), dtype="float32")  # d mean / d activation
    start = float(keras.ops.convert_to_numpy(fn(x)).mean())
    for _ in range(steps):
        grad = vjp(fn, x, upstream)
        grad /= np.sqrt(np.mean(grad**2)) + 1e-5
        x = x + step_size * unit * grad
    end = float(keras.ops.convert_to_numpy(fn(x)).mean())
    return x[0], start, end


def deprocess(img: np.ndarray) -> np.ndarray:
    """An array of any range as a displayable image in [0, 1] (centred, 0.1 std, clipped), as in lecture 003."""
    img = img - img.mean()
    img = img / (img.std() + 1e-5) * 0.1 + 0.5
    return np.clip(img, 0, 1)
