"""`cnnlab zoo`: parameter counts of the classic architectures the lectures walk through, beside the published ones.

Reference: lecture 004 (AlexNet layer table, 227×227 input, "62.3 million"; GoogLeNet/Inception-v1 table),
lecture 001 ("A bit of history": LeNet, AlexNet, VGG, GoogLeNet, ResNet); the original papers for the rest.
Trap: every model is built with `weights=None` (nothing is downloaded) and freed after counting; AlexNet's
"62.3 M" is the single-tower network, while the paper's two-GPU network groups conv2/4/5 and has 61.0 M.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.models.params import count_weights
from cnnlab.store.files import atomic_write
from cnnlab.store.results import csv_text


def lenet5(input_shape=(32, 32, 1), num_classes=10):
    """LeNet-5 (LeCun et al. 1998) with today's simplifications: full C3 connections, plain average pooling,
    a softmax output instead of the RBF units."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(6, 5, activation="tanh", name="c1"),
            layers.AveragePooling2D(2, name="s2"),
            layers.Conv2D(16, 5, activation="tanh", name="c3"),
            layers.AveragePooling2D(2, name="s4"),
            layers.Conv2D(120, 5, activation="tanh", name="c5"),
            layers.Flatten(name="flatten"),
            layers.Dense(84, activation="tanh", name="f6"),
            layers.Dense(num_classes, activation="softmax", name="output"),
        ],
        name="lenet5",
    )


def alexnet(input_shape=(227, 227, 3), num_classes=1000, groups: int = 1):
    """AlexNet as lecture 004's table lists it (227×227 input); `groups=2` splits conv2, conv4 and conv5 over
    two towers as the original two-GPU network did."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1"),
            layers.MaxPooling2D(3, strides=2, name="maxpool1"),
            layers.Conv2D(256, 5, padding="same", groups=groups, activation="relu", name="conv2"),
            layers.MaxPooling2D(3, strides=2, name="maxpool2"),
            layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3"),
            layers.Conv2D(384, 3, padding="same", groups=groups, activation="relu", name="conv4"),
            layers.Conv2D(256, 3, padding="same", groups=groups, activation="relu", name="conv5"),
            layers.MaxPooling2D(3, strides=2, name="maxpool3"),
            layers.Dropout(0.5, name="dropout1"),
            layers.Flatten(name="flatten"),
            layers.Dense(4096, activation="relu", name="fc1"),
            layers.Dropout(0.5, name="dropout2"),
            layers.Dense(4096, activation="relu", name="fc2"),
            layers.Dense(num_classes, activation="softmax", name="fc3"),
        ],
        name="alexnet" if groups == 1 else f"alexnet_{groups}_towers",
    )


# lecture 004's GoogLeNet table: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, and its params column
INCEPTION_V1 = {
    "3a": ((64, 96, 128, 16, 32, 32), "159K"),
    "3b": ((128, 128, 192, 32, 96, 64), "380K"),
    "4a": ((192, 96, 208, 16, 48, 64), "364K"),
    "4b": ((160, 112, 224, 24, 64, 64), "437K"),
    "4c": ((128, 128, 256, 24, 64, 64), "463K"),
    "4d": ((112, 144, 288, 32, 64, 64), "580K"),
    "4e": ((256, 160, 320, 32, 128, 128), "840K"),
    "5a": ((256, 160, 320, 32, 128, 128), "1072K"),
    "5b": ((384, 192, 384, 48, 128, 128), "1388K"),
}


def googlenet(input_shape=(224, 224, 3), num_classes=1000):
    """GoogLeNet / Inception-v1 (Szegedy et al. 2014) as lecture 004's table lists it, without the two auxiliary
    classifiers and the local response normalisation (no weights)."""
    import keras
    from keras import layers

    def conv(x, filters, k, name, strides=1):
        return layers.Conv2D(filters, k, strides=strides, padding="same", activation="relu", name=name)(x)

    def inception(x, name):
        (c1, r3, c3, r5, c5, pp), _ = INCEPTION_V1[name]
        p = f"inception_{name}"
        b1 = conv(x, c1, 1, f"{p}_1x1")
        b3 = conv(conv(x, r3, 1, f"{p}_3x3_reduce"), c3, 3, f"{p}_3x3")
        b5 = conv(conv(x, r5, 1, f"{p}_5x5_reduce"), c5, 5, f"{p}_5x5")
        bp = conv(layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}_pool")(x), pp, 1, f"{p}_pool_proj")
        return layers.Concatenate(name=f"{p}_output")([b1, b3, b5, bp])

    inputs = keras.Input(input_shape)
    x = conv(inputs, 64, 7, "conv1_7x7", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool1")(x)
    x = conv(x, 64, 1, "conv2_3x3_reduce")
    x = conv(x, 192, 3, "conv2_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool2")(x)
    for name in ("3a", "3b"):
        x = inception(x, name)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool3")(x)
    for name in ("4a", "4b", "4c", "4d", "4e"):
        x = inception(x, name)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool4")(x)
    for name in ("5a", "5b"):
        x = inception(x, name)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="linear")(x)
    return keras.Model(inputs, outputs, name="googlenet")


def _application(name: str) -> Callable:
    def build():
        import keras

        return getattr(keras.applications, name)(weights=None)

    build.__name__ = name
    return build


@dataclass(frozen=True)
class Entry:
    """One architecture: how to build it, and the published parameter count with its source."""

    build: Callable
    published: str
    source: str
    note: str = ""


ZOO: dict[str, Entry] = {
    "LeNet-5": Entry(
        lenet5,
        "60,000",
        "LeCun et al. 1998",
        "the paper's C3 connects each map to a subset of S2's maps (1,516 params, not 2,416) and its "
        "pooling layers have a trainable coefficient and bias per map",
    ),
    "AlexNet": Entry(
        alexnet,
        "62.3 M",
        "lecture 004, 'AlexNet: the architecture'",
        "single tower, 227×227 input, as the lecture's table",
    ),
    "AlexNet, 2 towers": Entry(
        lambda: alexnet(groups=2),
        "60 M",
        "Krizhevsky et al. 2012, abstract",
        "conv2, conv4 and conv5 see only their own GPU's half of the maps (groups=2)",
    ),
    "VGG16": Entry(_application("VGG16"), "138 M", "Simonyan & Zisserman 2014, Table 2 (config D)"),
    "VGG19": Entry(_application("VGG19"), "144 M", "Simonyan & Zisserman 2014, Table 2 (config E)"),
    "GoogLeNet": Entry(
        googlenet,
        "≈ 6.8 M (sum of the table's params column)",
        "lecture 004, 'Parameters in GoogleLeNet'",
        "no auxiliary classifiers; see the per-block table below",
    ),
    "ResNet50": Entry(_application("ResNet50"), "25.6 M", "keras.io/api/applications (He et al. 2016)"),
    "DenseNet121": Entry(_application("DenseNet121"), "8.1 M", "keras.io/api/applications (Huang et al. 2017)"),
    "MobileNet": Entry(_application("MobileNet"), "4.2 M", "Howard et al. 2017 (1.0 MobileNet-224)"),
}


def weight_layers(model) -> int:
    """Depth as the papers count it: layers with a kernel (convolutions and dense layers)."""
    return sum(
        1 for layer in _all_layers(model) if hasattr(layer, "kernel") and "Normalization" not in type(layer).__name__
    )


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        else:
            yield layer


def count(model) -> int:
    return count_weights(model.weights)


def measure(name: str) -> dict:
    """Build one architecture, count it, and free it."""
    import keras

    entry = ZOO[name]
    t0 = time.perf_counter()
    model = entry.build()
    seconds = time.perf_counter() - t0
    row = {
        "architecture": name,
        "input": "×".join(str(d) for d in model.input_shape[1:]),
        "weight_layers": weight_layers(model),
        "params": count(model),
        "build_seconds": seconds,
        "published": entry.published,
        "source": entry.source,
        "note": entry.note,
    }
    if name == "GoogLeNet":
        row["blocks"] = googlenet_blocks(model)
    del model
    keras.backend.clear_session()
    return row


def googlenet_blocks(model) -> list[dict]:
    """Per inception block: Keras's count (with biases), the weights alone, and the lecture's params column."""
    rows = []
    for block, (_, lecture) in INCEPTION_V1.items():
        layers = [layer for layer in model.layers if layer.name.startswith(f"inception_{block}_")]
        total = sum(count_layer(layer) for layer in layers)
        kernels = sum(math.prod(layer.kernel.shape) for layer in layers if hasattr(layer, "kernel"))
        rows.append(
            {
                "block": f"inception ({block})",
                "keras_params": total,
                "weights_only": kernels,
                "weights_only_in_K_of_1024": kernels / 1024,
                "lecture": lecture,
            }
        )
    return rows


def count_layer(layer) -> int:
    return count_weights(layer.weights)


def report(out: Path) -> Path:
    """Write results/zoo.md and results/zoo.csv."""
    import keras

    rows = [measure(name) for name in ZOO]
    fields = ["architecture", "input", "weight_layers", "params", "build_seconds", "published", "source", "note"]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out.with_suffix(".csv"), csv_text([{k: r[k] for k in fields} for r in rows], fields))
    md = [
        "# Classic architectures: parameters",
        "",
        f"Generated by `cnnlab zoo` (Keras {keras.__version__}, backend {keras.backend.backend()}): every model "
        "built with `weights=None` (keras.applications where Keras has it, cnnlab/lectures/zoo.py otherwise) and "
        "counted. "
        "Raw numbers: [zoo.csv](zoo.csv).",
        "",
        "| Architecture | Input | Weight layers | Parameters (Keras) | Published | Source | Note |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['architecture']} | {r['input']} | {r['weight_layers']} | {r['params']:,} | {r['published']} "
            f"| {r['source']} | {r['note']} |"
        )
    blocks = next(r["blocks"] for r in rows if r["architecture"] == "GoogLeNet")
    for b in blocks:
        b["difference"] = b["weights_only_in_K_of_1024"] / float(b["lecture"].rstrip("K")) - 1
    close = [b for b in blocks if abs(b["difference"]) <= 0.01]
    worst = max(blocks, key=lambda b: abs(b["difference"]))
    md += [
        "",
        "Weight layers count convolutions and dense layers as built: ResNet50 has 50 on its main path plus 4 "
        "projection shortcuts; GoogLeNet's paper counts 22 layers, taking each inception module's parallel "
        "branches as one; LeNet-5's 7 layers include its two subsampling layers.",
        "",
        "## GoogLeNet: lecture 004's params column",
        "",
        f"Counting only the convolution kernels (no biases) in units of 1,024 reproduces the lecture's figure within "
        f"1% for {len(close)} of the {len(blocks)} inception blocks ({', '.join(b['block'] for b in close)}); "
        f"the largest gap is {worst['block']} ({worst['difference']:+.1%}). Keras's counts include the biases.",
        "",
        "| Block | Keras params | Kernel weights only | Kernel weights / 1,024 | Lecture 004 | Difference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in blocks:
        md.append(
            f"| {b['block']} | {b['keras_params']:,} | {b['weights_only']:,} | "
            f"{b['weights_only_in_K_of_1024']:.1f}K | {b['lecture']} | {b['difference']:+.1%} |"
        )
    atomic_write(out, "\n".join(md) + "\n")
    return out
