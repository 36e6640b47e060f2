"""Builders of the text models: lecture 002's densely connected IMDB family and Kim's (2014) sentence CNN.

Reference: lecture 002 "Decreasing Network Capacity", "Weight Regularization", "Dropout" (DLwP §4.4);
lecture 004 / Kim (2014), "Convolutional Neural Networks for Sentence Classification", §2 and Figure 1.
Trap: in Kim's multichannel model "each filter is applied to both channels and the results are added". Read as a
2-channel convolution, a filter has its own weights per channel (`multichannel_filters: separate`); harvardnlp's
Torch reimplementation (model/convNN.lua) applies one and the same convolution module to both lookup tables and
adds the outputs (CAddTable) — one weight set for both, i.e. a convolution of their sum (`shared`). Kim's own
released code has no multichannel model. The static channel's embedding layer is frozen, so only the non-static
channel moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from cnnlab.registry import MODELS

KIM_VARIANTS = ("rand", "static", "non_static", "multichannel")


@MODELS.register
def dense_classifier(
    input_shape: tuple[int, ...],
    units: tuple[int, ...] = (16, 16),
    l2: float | None = None,
    dropout: float | None = None,
    outputs: int = 1,
    activation: str = "sigmoid",
    name: str = "dense_classifier",
):
    """Dense(units[0], relu) → … → Dense(outputs, activation), optionally with L2 on the hidden kernels and
    Dropout after each hidden layer: the lecture's 16-16-1 IMDB model and its capacity/regularisation variants.

    Reference: lecture 002 slides "Decreasing Network Capacity II/III", "Weight Regularization II", "Dropout II".
    Trap: `kernel_regularizer=l2(0.001)` adds 0.001·Σw² to the loss Keras reports in training *and* in evaluation
    (val_loss too), so the L2 variant's losses are cross-entropy plus the penalty, not on the same scale as the other
    variants' (the lecture's figure compares them anyway); dropout, in contrast, changes only the training loss.
    """
    import keras
    from keras import layers

    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=tuple(input_shape)))
    for i, n in enumerate(units, start=1):
        model.add(
            layers.Dense(
                n, activation="relu", name=f"dense_{i}", kernel_regularizer=keras.regularizers.L2(l2) if l2 else None
            )
        )
        if dropout:
            model.add(layers.Dropout(dropout, name=f"dropout_{i}"))
    model.add(layers.Dense(outputs, activation=activation, name=f"dense_{len(units) + 1}"))
    return model


_ZERO_ROW = None


def _zero_padding_row():
    """Kim's code resets the padding word's vector (row 0) to zeros after every update: as a Keras constraint
    (the class is made on first use, so that importing cnnlab imports no framework)."""
    global _ZERO_ROW
    import keras

    if _ZERO_ROW is None:

        @keras.saving.register_keras_serializable(package="cnnlab")
        class ZeroPaddingRow(keras.constraints.Constraint):
            def __call__(self, w):
                keep = keras.ops.concatenate(
                    [keras.ops.zeros((1, 1), w.dtype), keras.ops.ones((w.shape[0] - 1, 1), w.dtype)]
                )
                return w * keep

        _ZERO_ROW = ZeroPaddingRow
    return _ZERO_ROW()


@MODELS.register
def kim_cnn(
    input_shape: tuple[int, ...],
    data: Mapping[str, Any] | None = None,
    variant: Literal["rand", "static", "non_static", "multichannel"] = "rand",
    filter_windows: tuple[int, ...] = (3, 4, 5),
    feature_maps: int = 100,
    dropout: float = 0.5,
    max_norm: float | None = 3.0,
    embedding_dim: int = 300,
    vocab_size: int | None = None,
    num_classes: int | None = None,
    multichannel_filters: Literal["separate", "shared"] = "separate",
    init: Literal["keras", "kim"] = "keras",
    name: str = "kim_cnn",
):
    """Kim's CNN: embeddings → Conv1D of each window size (ReLU) → max-over-time → concatenate → Dropout →
    softmax with a max-norm constraint on each class's weight vector.

    `data` is what the dataset loader reports (vocabulary, embeddings, num_classes): the runner passes it in.
    `rand` learns `embedding_dim`-d embeddings from uniform noise (Kim: U[-0.25, 0.25]); the other variants
    start from `data["embeddings"]` (their dimension wins over `embedding_dim`).
    Reference: Kim (2014) §2 (model), §3.1 (hyper-parameters: windows 3, 4, 5 × 100 maps, dropout 0.5, s = 3),
    Figure 1 (two channels); lecture 004 "Multi-channel CNNs".
    `init`: 'keras' (Glorot-uniform kernels, Keras's default) or 'kim' (his conv_net_classes.py: ReLU convolution
    kernels from U[−0.01, 0.01], the softmax layer's weights zeros; every bias zeros either way).
    Trap: Keras's `MaxNorm(3, axis=0)` on a Dense kernel of shape (features, classes) constrains each *column* —
    one class's weight vector, the paper's "l2-norms of the weight vectors" — after every update, as Kim rescales.
    """
    import keras
    from keras import layers

    data = dict(data or {})
    vocab_size = vocab_size or (len(data["vocabulary"]) if "vocabulary" in data else None)
    num_classes = num_classes or data.get("num_classes")
    if vocab_size is None or num_classes is None:
        raise ValueError("kim_cnn needs vocab_size and num_classes (from the dataset or as parameters)")
    vectors = data.get("embeddings")
    if variant != "rand" and vectors is None:
        raise ValueError(f"variant '{variant}' needs pretrained vectors: set data.options.vectors")
    if variant == "rand":
        dim = embedding_dim
        uniform = keras.initializers.RandomUniform(-0.25, 0.25)
    else:
        vectors = np.array(vectors, dtype="float32")  # a copy: row 0 (padding) is set to zero below
        vectors[0] = 0.0
        if vectors.shape[0] != vocab_size:
            raise ValueError(f"the embedding matrix has {vectors.shape[0]} rows for a vocabulary of {vocab_size}")
        dim = vectors.shape[1]

    if variant == "rand":  # the padding word starts at zero too (Kim's code: a zero row 0)
        vectors = keras.ops.convert_to_numpy(uniform((vocab_size, dim)))
        vectors[0] = 0.0
    # The matrix is assigned once the layers exist, not passed as a Constant initializer: that would write
    # all V × d numbers into the model's JSON config (saving a Kim model took 10-20 s).
    zero_pad = _zero_padding_row()  # the padding vector stays zero while the embeddings train
    tokens = keras.Input(shape=tuple(input_shape), dtype="int32", name="tokens")
    if variant == "multichannel":
        static = layers.Embedding(
            vocab_size, dim, embeddings_initializer="zeros", trainable=False, name="embedding_static"
        )(tokens)
        tuned = layers.Embedding(
            vocab_size, dim, embeddings_initializer="zeros", embeddings_constraint=zero_pad, name="embedding_non_static"
        )(tokens)
        channels = [static, tuned]
        if multichannel_filters == "shared":
            channels = [layers.Add(name="channels_sum")(channels)]
    else:
        channels = [
            layers.Embedding(
                vocab_size,
                dim,
                embeddings_initializer="zeros",
                trainable=variant != "static",
                embeddings_constraint=zero_pad,
                name=f"embedding_{variant}",
            )(tokens)
        ]
    conv_init = keras.initializers.RandomUniform(-0.01, 0.01) if init == "kim" else "glorot_uniform"
    pooled = []
    for h in filter_windows:
        if len(channels) == 1:
            c = layers.Conv1D(feature_maps, h, activation="relu", kernel_initializer=conv_init, name=f"conv1d_{h}")(
                channels[0]
            )
        else:  # a 2-channel filter: one weight set per channel, the results added, one bias, then ReLU
            parts = [
                layers.Conv1D(feature_maps, h, use_bias=i == 1, kernel_initializer=conv_init, name=f"conv1d_{h}_{tag}")(
                    ch
                )
                for i, (tag, ch) in enumerate(zip(("static", "non_static"), channels))
            ]
            c = layers.Activation("relu", name=f"relu_{h}")(layers.Add(name=f"conv1d_{h}")(parts))
        pooled.append(layers.GlobalMaxPooling1D(name=f"max_over_time_{h}")(c))
    x = layers.Concatenate(name="concatenate")(pooled) if len(pooled) > 1 else pooled[0]
    x = layers.Dropout(dropout, name="dropout")(x)
    constraint = keras.constraints.MaxNorm(max_norm, axis=0) if max_norm else None
    out = layers.Dense(
        num_classes,
        activation="softmax",
        kernel_constraint=constraint,
        name="softmax",
        kernel_initializer="zeros" if init == "kim" else "glorot_uniform",
    )(x)
    model = keras.Model(tokens, out, name=name)
    for layer in model.layers:
        if isinstance(layer, layers.Embedding):
            layer.embeddings.assign(vectors)
    return model
