"""Models: a config's layer stack or named builder → `keras.Model`, with the lectures' layer names.

Reference: lecture 002 ("CNN Modell": conv2d_1, maxpooling2d_1, ..., dense_2) and Keras 2's naming, which the
lectures' and the book's `model.summary()` tables show.
Trap: Keras 3 names layers `conv2d`, `conv2d_1`, ... per process (the first has no suffix and numbers keep
counting across models); names are therefore set here explicitly, numbered per model from 1.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections import Counter
from collections.abc import Sequence

from cnnlab.config.keras_specs import make
from cnnlab.config.schema import ClassSpec, Ctx, join
from cnnlab.errors import CnnlabError, one_line
from cnnlab.models.text_models import dense_classifier, kim_cnn  # noqa: F401 - registered builders, also models.kim_cnn
from cnnlab.registry import MODELS

if typing.TYPE_CHECKING:
    from cnnlab.config.experiment import ModelConfig


def keras2_name(class_name: str) -> str:
    """Keras 2's layer-name stem: the class name lower-cased ('MaxPooling2D' → 'maxpooling2d')."""
    return re.sub(r"[^0-9a-z]", "", class_name.lower())


def layer_names(specs: Sequence[ClassSpec]) -> list[str]:
    """conv2d_1, maxpooling2d_1, conv2d_2, ...: numbered per class from 1, unless a spec sets `name`."""
    counts: Counter[str] = Counter()
    names = []
    for spec in specs:
        stem = keras2_name(spec.name)
        counts[stem] += 1
        names.append(spec.kwargs.get("name") or f"{stem}_{counts[stem]}")
    return names


def build_stack(
    input_shape: Sequence[int],
    specs: Sequence[ClassSpec],
    name: str,
    ctx: Ctx | None = None,
    path: str = "model.layers",
    weights_dir=None,
    load_weights: bool = False,
):
    """A `keras.Sequential` of the given layers; a layer that cannot follow the previous one is a ConfigError.

    Pretrained blocks (cnnlab.blocks.BLOCKS, e.g. VGG16) load their weights only with `load_weights`, so that
    `cnnlab params` and `check` never need the weights file.
    """
    import keras

    from cnnlab.models.blocks import BLOCKS  # Keras

    ctx = ctx or Ctx("<config>")
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape)))
    for i, (spec, layer_name) in enumerate(zip(specs, layer_names(specs))):
        if spec.name in BLOCKS:
            make("layer", spec, ctx, join(path, i))
            try:
                previous = model.output_shape[1:] if model.layers else tuple(input_shape)
                layer = BLOCKS[spec.name](
                    input_shape=previous, **spec.kwargs, _weights_dir=weights_dir, _load=load_weights
                )
            except CnnlabError as exc:
                ctx.error(join(join(path, i), spec.name), str(exc))
        else:
            layer = make("layer", ClassSpec(spec.name, {**spec.kwargs, "name": layer_name}), ctx, join(path, i))
        try:
            model.add(layer)
        except Exception as exc:  # shape errors: the layer does not fit its input
            ctx.error(join(join(path, i), spec.name), f"cannot follow the previous layer: {one_line(exc)}")
    return model


@MODELS.register
def simple_convnet(
    input_shape: tuple[int, ...],
    filters: tuple[int, ...] = (32, 64, 64),
    kernel_size: int = 3,
    pool_size: int | None = 2,
    dense_units: tuple[int, ...] = (64,),
    num_classes: int = 10,
    dropout: float = 0.0,
    name: str = "simple_convnet",
):
    """The lecture-002/book-5.1 convnet family: Conv2D+ReLU blocks (each pooled unless pool_size is null),
    Flatten, Dense+ReLU layers, optional Dropout before the classifier, Dense softmax.

    Reference: lecture 002 "Convolutional Layer" exercise ("what happens if you change the number of layers,
    the window or stride sizes, the number of channels?"); Chollet, DLwP §5.1.
    Trap: pooling after the *last* conv block is omitted, as in the lecture's model (3 convs, 2 pools).
    """
    import keras
    from keras import layers

    specs: list[ClassSpec] = []
    for i, f in enumerate(filters):
        specs.append(ClassSpec("Conv2D", {"filters": f, "kernel_size": kernel_size, "activation": "relu"}))
        if pool_size and i < len(filters) - 1:
            specs.append(ClassSpec("MaxPooling2D", {"pool_size": pool_size}))
    specs.append(ClassSpec("Flatten"))
    for units in dense_units:
        specs.append(ClassSpec("Dense", {"units": units, "activation": "relu"}))
    if dropout:
        specs.append(ClassSpec("Dropout", {"rate": dropout}))
    specs.append(ClassSpec("Dense", {"units": num_classes, "activation": "softmax"}))
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape)))
    for spec, layer_name in zip(specs, layer_names(specs)):
        model.add(getattr(layers, spec.name)(**spec.kwargs, name=layer_name))
    return model


def needs_data(model_cfg: ModelConfig) -> bool:
    """Whether the model's builder takes the dataset's `data` (so the data must be loaded first)."""

    return model_cfg.builder is not None and "data" in inspect.signature(MODELS[model_cfg.builder]).parameters


def build_model(
    model_cfg: ModelConfig, name: str, ctx: Ctx | None = None, weights_dir=None, load_weights: bool = False, data=None
):
    """The `keras.Model` a config describes (pretrained weights loaded only with `load_weights`)."""
    if model_cfg.layers is not None:
        return build_stack(
            model_cfg.input_shape, model_cfg.layers, name, ctx, weights_dir=weights_dir, load_weights=load_weights
        )
    extra = {"data": data} if needs_data(model_cfg) else {}
    try:
        return MODELS[model_cfg.builder](input_shape=tuple(model_cfg.input_shape), **dict(model_cfg.params), **extra)
    except ValueError as exc:  # a builder's own check of parameters against the data
        (ctx or Ctx("<config>")).error(join("model", "params"), f"{model_cfg.builder}: {exc}")
