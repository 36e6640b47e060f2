"""benchmarks/bench_precision.py's arithmetic: the FLOP count behind the roofline column, and which bench case
stands for each experiment in the suite estimate (no benchmark is run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_precision as B  # noqa: E402

from cnnlab.config.experiment import Ctx, experiment_refs, load  # noqa: E402


def build(ref):
    from cnnlab.models.stack import build_model

    exp = load(ref, [], "full")
    return build_model(exp.config.model, exp.config.name, Ctx(str(exp.path)))


def test_mnist_convnet_flops_by_hand():
    model = build("mnist")
    # 2 × kernel × output positions: conv2d_1 2·(3·3·1·32)·26² = 389,376; conv2d_2 2·(3·3·32·64)·11² = 4,460,544;
    # conv2d_3 2·(3·3·64·64)·3² = 663,552; dense_1 2·576·64 = 73,728; dense_2 2·64·10 = 1,280
    assert B.forward_flops(model) == (5_588_480, 5_588_480)
    model.summary(print_fn=lambda *a, **k: None)  # more symbolic calls of the layers must not count twice
    assert B.forward_flops(model) == (5_588_480, 5_588_480)


def test_vgg16_base_flops_and_a_frozen_base():
    import keras

    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))
    # Σ kernel sizes × positions per block: (1,728 + 36,864)·150² + (73,728 + 147,456)·75²
    # + (294,912 + 2·589,824)·37² + (1,179,648 + 2·2,359,296)·18² + 3·2,359,296·9² = 6,615,491,328, × 2
    assert B.forward_flops(base) == (13_230_982_656, 13_230_982_656)
    base.trainable = False
    head = keras.Sequential([keras.Input((150, 150, 3)), base, keras.layers.Flatten(), keras.layers.Dense(4)])
    total, trainable = B.forward_flops(head)
    assert total == 13_230_982_656 + 2 * 8192 * 4 and trainable == 2 * 8192 * 4


@pytest.mark.parametrize(
    "ref, case",
    [
        ("mnist_no_pooling", "mnist"),
        ("imdb_capacity", "imdb_conv1d"),
        ("cats_dogs_augmented", "cats_dogs_scratch"),
        ("vgg16_finetune", B.VGG16_FORWARD),
        ("vgg16_features", B.VGG16_FORWARD),
        ("kim_mr", "kim_mr"),
        ("kim_trec:static", "kim_mr:static"),
        ("kim_sst2:multichannel", "kim_mr:non_static"),
    ],
)
def test_each_experiment_has_a_bench_family(ref, case):
    assert B.family(load(ref, [], "full", keras=False)) == case


def test_every_experiment_is_estimated_by_a_measured_case():
    cases = {*B.CASES, B.VGG16_FORWARD}
    assert all(B.family(load(ref, [], "full", keras=False)) in cases for ref in experiment_refs().values())
