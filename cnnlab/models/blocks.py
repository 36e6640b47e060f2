"""Pretrained blocks and cnnlab's own layers that a config's layer stack may name besides keras.layers.

Reference: lecture 003 and DLwP §5.3 ("Using a pretrained convnet": `VGG16(weights='imagenet',
include_top=False, input_shape=(150, 150, 3))`, 14,714,688 parameters); ../shared/data/README.md (the
offline torchvision weights and their torch-style preprocessing).
Trap: preprocessing must match the weights. Keras's `weights="imagenet"` are Caffe-converted (BGR, mean pixel
subtracted: mode 'caffe'); the offline torchvision file needs RGB scaled to [0, 1], minus mean, over std
(mode 'torch'); the book's first edition fed the Caffe weights images merely rescaled to [0, 1] ('rescale').
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import keras

from cnnlab.errors import CnnlabError, one_line
from cnnlab.models.augment import RandomAffine  # noqa: F401 - a registered layer, also blocks.RandomAffine
from cnnlab.registry import BLOCKS, LAYERS

MEAN_TORCH = (0.485, 0.456, 0.406)
STD_TORCH = (0.229, 0.224, 0.225)
MEAN_CAFFE_BGR = (103.939, 116.779, 123.68)


@LAYERS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class ImageNetPreprocessing(keras.layers.Layer):
    """RGB pixels in [0, 255] → what ImageNet weights expect ('caffe', 'torch' or the book's 'rescale')."""

    MODES = ("caffe", "torch", "rescale")
    PRETRAINED_INPUT = True  # recorded in metrics.json's `pretrained` beside the block it feeds (not so RandomAffine)

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}; received mode={mode!r}")
        self.mode = mode

    def call(self, x):
        x = keras.ops.cast(x, self.compute_dtype)
        if self.mode == "rescale":
            return x / 255.0
        if self.mode == "torch":
            mean = keras.ops.convert_to_tensor(MEAN_TORCH, dtype=self.compute_dtype)
            std = keras.ops.convert_to_tensor(STD_TORCH, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        bgr = keras.ops.flip(x, axis=-1)
        return bgr - keras.ops.convert_to_tensor(MEAN_CAFFE_BGR, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@BLOCKS.register("VGG16")
def vgg16(
    input_shape: tuple[int, ...],
    weights: str | None = None,
    trainable: bool = False,
    _weights_dir: Path | None = None,
    _load: bool = True,
):
    """The VGG16 convolutional base (include_top=False) as one nested model named 'vgg16'.

    weights: null (random), 'imagenet' (Keras's download of the Caffe weights) or a path to a Keras
    .weights.h5 file; a relative path is looked up in the data directory (e.g. weights/vgg16_...h5).
    """
    resolved = None
    if _load and weights == "imagenet":
        resolved = "imagenet"
    elif _load and weights:
        path = Path(weights)
        if not path.is_absolute():
            if _weights_dir is None:
                raise CnnlabError(
                    f"VGG16 weights '{weights}': a relative path needs a data directory (--data-dir or CNNLAB_DATA_DIR)"
                )
            path = Path(_weights_dir) / path
        if not path.is_file():
            raise CnnlabError(f"{path}: VGG16 weights file not found")
        resolved = str(path)
    try:
        base = keras.applications.VGG16(
            include_top=False, weights=resolved if resolved == "imagenet" else None, input_shape=tuple(input_shape)
        )
        if resolved not in (None, "imagenet"):
            _check_weights_file(Path(resolved), base)
            base.load_weights(resolved)
    except (ValueError, OSError) as exc:  # a file of another architecture, a truncated file, no network
        raise CnnlabError(
            f"{resolved}: cannot load into VGG16 (include_top=False, input {tuple(input_shape)}): {one_line(exc)}"
        ) from None
    base.trainable = trainable
    return base


def _check_weights_file(path: Path, model) -> None:
    """Refuse a weights file whose arrays are not exactly the model's (Keras may only warn and keep random
    weights for parts it cannot match)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            shapes: list[tuple] = []
            f.visititems(
                lambda name, obj: (
                    shapes.append(tuple(obj.shape)) if isinstance(obj, h5py.Dataset) and obj.ndim > 0 else None
                )
            )
    except OSError as exc:
        raise ValueError(f"not an HDF5 weights file ({exc})") from None
    wanted = sorted(tuple(w.shape) for w in model.weights)
    if sorted(shapes) != wanted:
        raise ValueError(
            f"the file holds {len(shapes)} arrays that do not match the {len(wanted)} weights of "
            f"{model.name} (e.g. first kernel {wanted[0] if wanted else None})"
        )


ImageNetMode = Literal["caffe", "torch", "rescale"]
