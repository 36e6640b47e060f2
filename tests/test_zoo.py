"""Classic architectures built with weights=None: parameter counts pinned with their derivations and sources."""

from __future__ import annotations

import csv

import pytest

from cnnlab.lectures import zoo


def test_alexnet_single_tower_is_the_lectures_62_3_million():
    # conv1 96×(11×11×3)+96 = 34,944; conv2 256×(5×5×96)+256 = 614,656; conv3 384×(3×3×256)+384 = 885,120;
    # conv4 384×(3×3×384)+384 = 1,327,488; conv5 256×(3×3×384)+256 = 884,992; fc1 (6×6×256)×4096+4096 = 37,752,832;
    # fc2 4096×4096+4096 = 16,781,312; fc3 4096×1000+1000 = 4,097,000
    expected = 34_944 + 614_656 + 885_120 + 1_327_488 + 884_992 + 37_752_832 + 16_781_312 + 4_097_000
    model = zoo.alexnet()
    assert zoo.count(model) == expected == 62_378_344  # lecture 004: "62.3 million"
    assert [tuple(model.get_layer(n).output.shape[1:]) for n in ("conv1", "maxpool1", "maxpool2", "maxpool3")] == [
        (55, 55, 96),
        (27, 27, 96),
        (13, 13, 256),
        (6, 6, 256),
    ]  # lecture 004's "Size of feature map" column
    assert zoo.weight_layers(model) == 8


def test_alexnet_two_towers_is_the_papers_60_million():
    # groups=2 halves the input channels of conv2 (96 → 48), conv4 (384 → 192) and conv5 (384 → 192):
    # 62,378,344 − 256×5×5×48 − 384×3×3×192 − 256×3×3×192 = 62,378,344 − 307,200 − 663,552 − 442,368
    assert zoo.count(zoo.alexnet(groups=2)) == 62_378_344 - 307_200 - 663_552 - 442_368 == 60_965_224


def test_lenet5():
    # c1 6×(5×5×1)+6 = 156; c3 16×(5×5×6)+16 = 2,416; c5 120×(5×5×16)+120 = 48,120; f6 120×84+84 = 10,164;
    # output 84×10+10 = 850
    assert zoo.count(zoo.lenet5()) == 156 + 2_416 + 48_120 + 10_164 + 850 == 61_706


def test_googlenet_blocks():
    model = zoo.googlenet()
    blocks = {b["block"]: b for b in zoo.googlenet_blocks(model)}
    # inception (3a) on 192 channels: 1×1 192×64; reduce 192×96; 3×3 96×9×128; reduce 192×16; 5×5 16×25×32;
    # pool proj 192×32 → 12,288 + 18,432 + 110,592 + 3,072 + 12,800 + 6,144 = 163,328 kernel weights (159.5 K of 1,024)
    assert blocks["inception (3a)"]["weights_only"] == 163_328
    assert blocks["inception (3a)"]["keras_params"] == 163_328 + 64 + 96 + 128 + 16 + 32 + 32
    assert tuple(model.get_layer("inception_5b_output").output.shape[1:]) == (7, 7, 1024)  # the table's 7×7×1024
    assert zoo.count(model) == 6_998_552


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """results/zoo.md and zoo.csv, built once for the tests below (every architecture is built once)."""
    out = zoo.report(tmp_path_factory.mktemp("zoo") / "zoo.md")
    with open(out.with_suffix(".csv"), newline="") as f:
        return out.read_text(), {r["architecture"]: r for r in csv.DictReader(f)}


@pytest.mark.parametrize(
    "name, params, depth",
    [
        ("VGG16", 138_357_544, 16),
        ("VGG19", 143_667_240, 19),
        ("ResNet50", 25_636_712, 54),
        ("DenseNet121", 8_062_504, 121),
        ("MobileNet", 4_253_864, 28),
    ],
)
def test_keras_applications(report, name, params, depth):
    """Counts as keras.io/api/applications lists them (138.4M, 143.7M, 25.6M, 8.1M, 4.3M); ResNet50's 54 weight
    layers are 49 + 1 on the main path (its 50) plus 4 projection shortcuts."""
    row = report[1][name]
    assert (int(row["params"]), int(row["weight_layers"])) == (params, depth)


def test_report(report):
    text, rows = report
    assert "| AlexNet | 227×227×3 | 8 | 62,378,344 | 62.3 M |" in text
    assert "inception (3a) | 163,696 | 163,328 | 159.5K | 159K | +0.3% |" in text
    assert set(rows) == set(zoo.ZOO)
