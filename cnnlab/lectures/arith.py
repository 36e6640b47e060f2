"""The lectures' calculators: output size, receptive field, parameter formula, max-pool backprop, worked convolutions.

Reference: lecture 001 ("Layer's Receptive Field": n_out = ceil((n_in + 2p - k) / s) + 1; "Backward propagation
of Maximum Pooling Layer"; first exercise 16 × (3×3×3) + 16 = 448), lecture 002 (the 5×5 feature map and
the 'X' kernel), lecture 004 (OutputD = (InputD - KernelD + 2 PaddingD) / StrideD + 1; Sobel filters).
Trap: Keras rounds *down* for 'valid' ((n - k) // s + 1) and pads asymmetrically for 'same' (ceil(n / s));
the slides' ceiling (001) and unrounded division (004) agree with Keras only when s divides n + 2p - k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.lectures.autodiff import vjp

# --------------------------------------------------------------------------------------------------
# Output size
# --------------------------------------------------------------------------------------------------


def output_size(n: int, kernel: int, stride: int = 1, padding: str = "valid", dilation: int = 1) -> int:
    """Keras's output length along one axis of a convolution or pooling layer (<= 0: the layer does not fit)."""
    k = dilation * (kernel - 1) + 1
    if padding == "valid":
        return (n - k) // stride + 1
    if padding in ("same", "causal"):
        return -(-n // stride)
    raise ValueError(f"padding must be 'valid', 'same' or 'causal', received {padding!r}")


def same_padding(n: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """The (before, after) zero padding Keras/TensorFlow add for 'same'; the extra pixel goes after."""
    k = dilation * (kernel - 1) + 1
    total = max((-(-n // stride) - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def lecture_001_size(n: int, kernel: int, stride: int, pad: int) -> int:
    """Lecture 001: n_out = ceil((n_in + 2p - k) / s) + 1."""
    return math.ceil((n + 2 * pad - kernel) / stride) + 1


def lecture_004_size(n: int, kernel: int, stride: int, pad: int) -> float:
    """Lecture 004: OutputD = (InputD - KernelD + 2 PaddingD) / StrideD + 1, with no rounding."""
    return (n - kernel + 2 * pad) / stride + 1


def keras_output_size_with_pad(n: int, kernel: int, stride: int, pad: int) -> int:
    """What Keras computes for symmetric zero padding `pad` (ZeroPadding + 'valid'): a floor."""
    return (n + 2 * pad - kernel) // stride + 1


# --------------------------------------------------------------------------------------------------
# Receptive field and parameter formula of each layer
# --------------------------------------------------------------------------------------------------

GLOBAL = (
    "Flatten",
    "Dense",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling3D",
)


@dataclass(frozen=True)
class Field:
    """A layer's receptive field on the model input: size and jump (input pixels between neighbouring units)."""

    size: tuple[int, ...] | None  # None: the whole input (after Flatten, Dense, global pooling)
    jump: tuple[int, ...] | None

    def text(self) -> str:
        if self.size is None:
            return "whole input"
        return "×".join(map(str, self.size)) + f" (jump {'×'.join(map(str, self.jump))})"


def _window(layer) -> tuple[tuple, tuple, tuple] | None:
    """(kernel, stride, dilation) of a sliding-window layer, else None."""
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        return tuple(layer.kernel_size), tuple(layer.strides), tuple(getattr(layer, "dilation_rate", (1,)) or (1,))
    if hasattr(layer, "pool_size") and hasattr(layer, "strides"):
        return tuple(layer.pool_size), tuple(layer.strides), (1,) * len(layer.pool_size)
    return None


def receptive_fields(model) -> dict[str, Field | None]:
    """Receptive field of every layer of a layer chain, by r += (k_eff - 1) · j and j *= s per axis.

    Layers that do not move or mix pixels (activations, dropout, normalisation, rescaling, random
    augmentation) keep the field; a layer whose geometry is unknown ends the calculation (None from there on).
    """
    fields: dict[str, Field | None] = {}
    ndim = len(model.input_shape) - 2 if model.input_shape and len(model.input_shape) > 2 else 0
    field: Field | None = Field((1,) * ndim, (1,) * ndim) if ndim else Field(None, None)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if field is not None and field.size is not None:
            window = _window(layer)
            if kind in GLOBAL:
                field = Field(None, None)
            elif window is not None:
                k, s, d = window
                d = d if len(d) == len(k) else d * len(k)
                size = tuple(r + (di * (ki - 1)) * j for r, ki, di, j in zip(field.size, k, d, field.jump))
                field = Field(size, tuple(j * si for j, si in zip(field.jump, s)))
            elif layer.weights and kind not in ("BatchNormalization", "LayerNormalization"):
                field = None  # a weighted layer of unknown geometry
            elif kind.startswith(("UpSampling", "Reshape", "Permute", "Cropping", "ZeroPadding", "Resizing")):
                field = None
        fields[layer.name] = field
    return fields


def _in_channels(layer) -> int:
    shape = layer.input.shape
    return shape[1] if getattr(layer, "data_format", "channels_last") == "channels_first" else shape[-1]


def formula(layer) -> tuple[str, int] | None:
    """The lecture's parameter formula for one layer and its value, or None for a layer it does not cover.

    Convolution: filters × (kernel h × kernel w × input channels / groups) + filters (biases);
    Dense: inputs × units + units; Embedding: vocabulary × dimension; BatchNormalization: 4 × channels.
    """
    kind = type(layer).__name__
    bias = lambda n: (f" + {n}", n) if getattr(layer, "use_bias", False) else ("", 0)  # noqa: E731
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        cin = _in_channels(layer) // getattr(layer, "groups", 1)
        f, k = layer.filters, tuple(layer.kernel_size)
        btxt, b = bias(f)
        return f"{f} × ({'×'.join(map(str, k))}×{cin}){btxt}", f * math.prod(k) * cin + b
    if kind == "Dense":
        n_in = layer.input.shape[-1]
        btxt, b = bias(layer.units)
        return f"{n_in} × {layer.units}{btxt}", n_in * layer.units + b
    if kind == "Embedding":
        return f"{layer.input_dim} × {layer.output_dim}", layer.input_dim * layer.output_dim
    if kind == "BatchNormalization":
        c = _in_channels(layer)
        return f"4 × {c}", 4 * c
    if not layer.weights:
        return "0", 0
    inner = getattr(layer, "layers", None)
    if inner:  # a nested model (a pretrained base): the sum of its layers' formulas
        parts = [formula(sub) for sub in inner if type(sub).__name__ != "InputLayer"]
        if all(p is not None for p in parts):
            weighted = sum(1 for p in parts if p[1])
            return f"sum over its {weighted} weighted layers", sum(p[1] for p in parts)
    return None


# --------------------------------------------------------------------------------------------------
# Max-pool backprop (lecture 001)
# --------------------------------------------------------------------------------------------------

LECTURE_001_GRID = np.array(
    [[2, 4, 8, 3, 6], [9, 3, 4, 2, 5], [5, 4, 6, 3, 1], [2, 3, 1, 3, 4], [2, 7, 4, 5, 7]], dtype="float32"
)
LECTURE_001_UPSTREAM = np.array([[1, 3, 1], [1, 4, 2], [6, 2, 1]], dtype="float32")


@dataclass(frozen=True)
class PoolBackprop:
    forward: np.ndarray  # the pooled maxima
    autodiff: np.ndarray  # gradient routed to the input by the backend's autodiff through MaxPooling2D
    direct: np.ndarray  # the same by hand: each window's winner receives that window's upstream gradient


def maxpool_backprop(grid: np.ndarray, pool: int, stride: int, upstream: np.ndarray) -> PoolBackprop:
    """Forward maxima and backward routing of a 2-D max pooling, through Keras and directly."""
    import keras

    grid = np.asarray(grid, dtype="float32")
    layer = keras.layers.MaxPooling2D(pool_size=pool, strides=stride)
    x = grid[None, :, :, None]
    forward = keras.ops.convert_to_numpy(layer(x))[0, :, :, 0]
    upstream = np.asarray(upstream, dtype="float32")
    if upstream.shape != forward.shape:
        raise CnnlabError(
            f"upstream gradients: expected a {forward.shape[0]}×{forward.shape[1]} grid for a "
            f"{grid.shape[0]}×{grid.shape[1]} input, pool {pool}, stride {stride}; "
            f"received {upstream.shape[0]}×{upstream.shape[1] if upstream.ndim > 1 else 1}"
        )
    grad = vjp(layer, x, upstream[None, :, :, None])[0, :, :, 0]
    direct = np.zeros_like(grid)
    for i in range(forward.shape[0]):
        for j in range(forward.shape[1]):
            window = grid[i * stride : i * stride + pool, j * stride : j * stride + pool]
            a, b = np.unravel_index(int(np.argmax(window)), window.shape)
            direct[i * stride + a, j * stride + b] += upstream[i, j]
    return PoolBackprop(forward, grad, direct)


# --------------------------------------------------------------------------------------------------
# Worked convolutions (lectures 002 and 004)
# --------------------------------------------------------------------------------------------------

LECTURE_002_FEATURE_MAP = np.array(
    [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], dtype="float32"
)
LECTURE_002_X_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype="float32")
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype="float32")
SOBEL_Y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype="float32")


def convolve(image: np.ndarray, kernels: list[np.ndarray], padding: str = "valid") -> list[np.ndarray]:
    """Each 2-D kernel applied to a 2-D image by one Keras Conv2D layer with fixed weights (no kernel flip,
    as deep-learning 'convolution' is cross-correlation: lecture 004, figure 9.1)."""
    import keras

    image = np.asarray(image, dtype="float32")
    k = kernels[0].shape
    layer = keras.layers.Conv2D(len(kernels), k, padding=padding, use_bias=False)
    layer.build((1, *image.shape, 1))
    layer.set_weights([np.stack(kernels, axis=-1)[:, :, None, :].astype("float32")])
    out = keras.ops.convert_to_numpy(layer(image[None, :, :, None]))[0]
    return [out[:, :, i] for i in range(len(kernels))]


def sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G_x = W_x * X, G_y = W_y * X and G = sqrt(G_x² + G_y²) (lecture 004), 'same' padding."""
    gx, gy = convolve(image, [SOBEL_X, SOBEL_Y], padding="same")
    return gx, gy, np.sqrt(gx**2 + gy**2)


def demo_image(size: int = 64) -> np.ndarray:
    """A synthetic grey image with straight and curved edges: a bright square and a darker disc."""
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), 0.1, dtype="float32")
    img[size // 8 : size // 2, size // 8 : size // 2] = 0.9
    img[(yy - 0.65 * size) ** 2 + (xx - 0.65 * size) ** 2 < (0.22 * size) ** 2] = 0.5
    return img
