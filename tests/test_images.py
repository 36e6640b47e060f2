"""Cats vs dogs: the image loader and its cache on tiny generated JPEGs, augmentation only while training."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from cnnlab.config.experiment import load
from cnnlab.data import cats_dogs
from cnnlab.errors import DataError
from cnnlab.models import params
from cnnlab.models.stack import build_model


def make_folder(root, splits=("train", "validation", "test"), n=3):
    """root/cats_and_dogs_small/<split>/<cats|dogs>/*.jpg with random colours and odd sizes."""
    rng = np.random.default_rng(0)
    base = root / "cats_and_dogs_small"
    for split in splits:
        for cls in cats_dogs.CLASSES:
            folder = base / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 255, (40 + 7 * i, 50 + 3 * i, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{cls[:-1]}.{i}.jpg")
    return base


def test_loader_shapes_labels_and_cache(tmp_path):
    make_folder(tmp_path)
    opts = cats_dogs.Options(image_size=(32, 24))
    a = cats_dogs.load(tmp_path, opts)
    assert a.x_train.shape == (6, 32, 24, 3) and a.x_train.dtype == np.uint8
    assert a.y_train.tolist() == [0, 0, 0, 1, 1, 1] and a.x_val.shape == a.x_test.shape == (6, 32, 24, 3)
    assert "decoded" in a.source
    again = cats_dogs.load(tmp_path, opts)
    assert "from cache" in again.source and np.array_equal(again.x_train, a.x_train)
    # another size, or other bytes in one file, never reuses the cache
    assert "decoded" in cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(16, 16))).source
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "cats_and_dogs_small/train/cats/cat.0.jpg")
    changed = cats_dogs.load(tmp_path, opts)
    assert "decoded" in changed.source and changed.x_train[0].max() < 10


def test_nearest_vs_bilinear_resizing(tmp_path):
    make_folder(tmp_path, n=1)
    near = cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(20, 20), interpolation="nearest"))
    bil = cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(20, 20), interpolation="bilinear"))
    assert not np.array_equal(near.x_train, bil.x_train)


def test_corrupt_and_missing_files_are_one_line_errors(tmp_path):
    base = make_folder(tmp_path, n=1)
    (base / "train/dogs/dog.666.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="dog.666.jpg: not a readable image"):
        cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(16, 16)))
    with pytest.raises(DataError, match="no such folder"):
        cats_dogs.load(tmp_path / "elsewhere", cats_dogs.Options())


def test_missing_test_split_is_said_clearly(tmp_path):
    make_folder(tmp_path, splits=("train", "validation"), n=1)
    with pytest.raises(DataError, match="test: missing .*missing_test=validation"):
        cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(16, 16)))
    a = cats_dogs.load(tmp_path, cats_dogs.Options(image_size=(16, 16), missing_test="validation"))
    assert "NO test split" in a.source and np.array_equal(a.x_test, a.x_val)


def test_parameter_counts():
    # conv 32×(3×3×3)+32 = 896; 64×(3×3×32)+64 = 18,496; 128×(3×3×64)+128 = 73,856; 128×(3×3×128)+128 = 147,584;
    # dense (7×7×128 = 6,272)×512+512 = 3,211,776; 512×1+1 = 513
    for name in ("cats_dogs_scratch", "cats_dogs_augmented", "cats_dogs_augmented:keras_layers"):
        t = params.table(build_model(load(name).config.model, name))
        assert t.total == 896 + 18_496 + 73_856 + 147_584 + 3_211_776 + 513 == 3_453_121


@pytest.mark.parametrize(
    "ref, layers",
    [
        # the headline: Keras 2.0.8's ImageDataGenerator warp, one composed transform (cnnlab.models.augment)
        ("cats_dogs_augmented", ["RandomAffine"]),
        # Keras 3's stock layers, four resamplings and a flip
        (
            "cats_dogs_augmented:keras_layers",
            ["RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom", "RandomFlip"],
        ),
    ],
)
def test_augmentation_only_while_training_and_seeded(ref, layers):
    def augmented(seed):
        keras.utils.set_random_seed(seed)
        model = build_model(load(ref).config.model, "m")
        augmenters = [layer for layer in model.layers if type(layer).__name__.startswith("Random")]
        assert [type(layer).__name__ for layer in augmenters] == layers
        return model, augmenters

    x = np.random.default_rng(0).uniform(0, 255, (4, 150, 150, 3)).astype("float32")
    model, augmenters = augmented(1)

    def through(training):
        h = x
        for layer in augmenters:
            h = layer(h, training=training)
        return keras.ops.convert_to_numpy(h)

    assert np.array_equal(through(False), x)  # evaluate/predict: validation and test are never augmented
    first = through(True)
    assert not np.allclose(first, x)
    assert np.array_equal(
        keras.ops.convert_to_numpy(model(x, training=False)), keras.ops.convert_to_numpy(model(x, training=False))
    )
    model2, augmenters2 = augmented(1)
    h = x
    for layer in augmenters2:
        h = layer(h, training=True)
    assert np.array_equal(keras.ops.convert_to_numpy(h), first)  # the same seed, the same augmentation


def test_config_rules_for_datasets_with_their_own_validation(cli):
    code, _, err = cli("check", "cats_dogs_scratch", "data.validation_split=0.2")
    assert code == 2 and "has its own validation split" in err
    code, _, err = cli("check", "mnist", "data.val_subset=10")
    assert code == 2 and "no validation split of its own" in err


def test_end_to_end_on_tiny_images(cli, tmp_path):
    make_folder(tmp_path, n=4)
    small = [
        "data.options.image_size=[64, 64]",
        "model.input_shape=[64, 64, 3]",
        "train.epochs=1",
        "train.batch_size=4",
        "train.steps_per_epoch=2",
        "train.validation_steps=2",
    ]
    code, _, err = cli(
        "--results-dir", tmp_path / "r", "run", "cats_dogs_augmented", *small, "--data-dir", tmp_path, "--verbose", "0"
    )
    assert code == 0, err
    (run,) = [p for p in (tmp_path / "r" / "cats_dogs_augmented").iterdir() if p.is_dir()]
    assert (run / "augmentation.png").read_bytes()[:4] == b"\x89PNG"
    m = json.loads((run / "metrics.json").read_text())
    assert (m["data"]["n_train"], m["data"]["n_val"], m["data"]["n_test"]) == (8, 8, 8)
    assert m["best_val"]["monitor"] == "val_accuracy"


@pytest.mark.slow
def test_every_real_image_decodes(data_dir):
    a = cats_dogs.load(data_dir, cats_dogs.Options())
    assert (len(a.x_train), len(a.x_val), len(a.x_test)) == (2000, 1000, 1000)
    assert a.y_train.mean() == a.y_val.mean() == a.y_test.mean() == 0.5
