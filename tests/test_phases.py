"""Fine-tuning as data: phases that unfreeze layers inside a nested base, recompile and continue the epochs."""

from __future__ import annotations

import csv
import json

from cnnlab.config.experiment import Phase, load
from cnnlab.models import params
from cnnlab.models.stack import build_model
from cnnlab.train import phases
from tests.test_images import make_folder


def test_unfreezing_block5_inside_the_frozen_base():
    model = build_model(load("vgg16_finetune").config.model, "m")
    head = 2_097_665
    assert params.table(model).trainable == head
    phases.apply(model, Phase("fine-tune", 1, unfreeze=("block5_conv1", "block5_conv2", "block5_conv3")))
    # + 3 × (512 × (3×3×512) + 512) = 3 × 2,359,808 = 7,079,424
    assert params.table(model).trainable == head + 3 * 2_359_808 == 9_177_089
    base = model.get_layer("vgg16")
    trainable = sorted(layer.name for layer in base.layers if layer.trainable and layer.weights)
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert len(model.trainable_weights) == 4 + 6
    phases.apply(model, Phase("refreeze", 1, freeze=("vgg16",)))
    assert params.table(model).trainable == head


def test_two_phase_run_on_tiny_images(cli, tmp_path):
    make_folder(tmp_path, n=3)
    small = [
        "data.options.image_size=[32, 32]",
        "model.input_shape=[32, 32, 3]",
        "model.layers.2.VGG16.weights=null",
        "train.epochs=2",
        "train.phases.0.epochs=1",
        "train.batch_size=4",
        "train.steps_per_epoch=2",
        "train.validation_steps=2",
    ]
    code, _, err = cli(
        "--results-dir", tmp_path / "r", "run", "vgg16_finetune", *small, "--data-dir", tmp_path, "--verbose", "0"
    )
    assert code == 0, err
    (run,) = [p for p in (tmp_path / "r" / "vgg16_finetune").iterdir() if p.is_dir()]
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["phase"]) for r in rows] == [("1", "1"), ("2", "1"), ("3", "2")]
    m = json.loads((run / "metrics.json").read_text())
    head = 512 * 256 + 256 + 257  # 32×32 images: the base gives 1×1×512
    assert [(p["first_epoch"], p["epochs"], p["params_trainable"]) for p in m["phases"]] == [
        (1, 2, head),
        (3, 1, head + 3 * 2_359_808),
    ]
    assert m["phases"][1]["optimizer"] == {
        "RMSpropKeras2": {"learning_rate": 1.0e-5}
    }  # the book's RMSprop(1e-5), Keras 2.0.8 step
    assert f"| 2. fine-tune block5 | 3-3 | {head + 3 * 2_359_808:,} |" in (run / "params.md").read_text()
    assert head + 3 * 2_359_808 == 7_211_009
    assert [p["block"] for p in m["pretrained"]] == ["ImageNetPreprocessing", "VGG16"]  # not the RandomAffine
    assert m["pretrained"][1] == {"where": "model.layers", "block": "VGG16", "weights": None, "trainable": False}
