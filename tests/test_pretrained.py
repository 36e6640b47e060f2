"""VGG16 as a stack block: preprocessing modes, the offline weights file, freezing, and the feature cache."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnlab.config.experiment import ClassSpec, Ctx, load
from cnnlab.data import Splits
from cnnlab.errors import ConfigError
from cnnlab.models import params
from cnnlab.models.blocks import MEAN_CAFFE_BGR, MEAN_TORCH, STD_TORCH, ImageNetPreprocessing
from cnnlab.models.stack import build_model, build_stack
from cnnlab.train import features

WEIGHTS = "weights/vgg16_imagenet_torchvision_notop.weights.h5"


def test_preprocessing_modes():
    x = np.array([[[[255.0, 0.0, 127.5]]]], dtype="float32")  # one RGB pixel
    out = {m: keras.ops.convert_to_numpy(ImageNetPreprocessing(m)(x))[0, 0, 0] for m in ImageNetPreprocessing.MODES}
    assert np.allclose(out["rescale"], [1.0, 0.0, 0.5])
    assert np.allclose(out["torch"], (np.array([1.0, 0.0, 0.5]) - MEAN_TORCH) / STD_TORCH)
    assert np.allclose(out["caffe"], np.array([127.5, 0.0, 255.0]) - MEAN_CAFFE_BGR)  # BGR, mean pixel subtracted
    with pytest.raises(ValueError, match="mode must be one of"):
        ImageNetPreprocessing("bgr")


def test_parameter_counts_and_freezing():
    # VGG16 base: block1 1,792 + 36,928; block2 73,856 + 147,584; block3 295,168 + 2 × 590,080;
    # block4 1,180,160 + 2 × 2,359,808; block5 3 × 2,359,808 (each f × (3×3×c) + f)
    base = 1_792 + 36_928 + 73_856 + 147_584 + 295_168 + 2 * 590_080 + 1_180_160 + 5 * 2_359_808
    assert base == 14_714_688
    model = build_model(load("vgg16_augmented").config.model, "m")
    t = params.table(model)
    head = 8_192 * 256 + 256 + 256 * 1 + 1  # 2,097,408 + 257
    assert (t.total, t.trainable, t.non_trainable) == (base + head, head, base) == (16_812_353, 2_097_665, 14_714_688)
    assert len(model.trainable_weights) == 4  # after freezing the base: the head's two kernels and two biases
    assert t.base_params == base and next(r for r in t.rows if r.name == "vgg16").formula_params == base
    features_head = params.table(build_model(load("vgg16_features").config.model, "m"))
    assert features_head.total == head == 2_097_665


def test_offline_weights_load_into_the_architecture(data_dir):
    import h5py

    model = build_model(load("vgg16_augmented").config.model, "m", weights_dir=data_dir, load_weights=True)
    kernel = keras.ops.convert_to_numpy(model.get_layer("vgg16").get_layer("block1_conv1").kernel)
    with h5py.File(data_dir / WEIGHTS, "r") as f:
        stored = []
        f.visititems(
            lambda name, obj: (
                stored.append(obj[()]) if isinstance(obj, h5py.Dataset) and obj.shape == (3, 3, 3, 64) else None
            )
        )
    assert len(stored) == 1 and np.array_equal(kernel, stored[0])


def test_bad_or_missing_weights_are_one_line_config_errors(tmp_path, data_dir):
    cfg = load("vgg16_augmented").config.model
    with pytest.raises(ConfigError, match="model.layers\\[2\\].VGG16: .*nope.weights.h5: VGG16 weights file not found"):
        build_model(
            load("vgg16_augmented", [f"model.layers.2.VGG16.weights={tmp_path}/nope.weights.h5"]).config.model,
            "m",
            weights_dir=data_dir,
            load_weights=True,
        )
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(ConfigError, match="other.weights.h5: cannot load into VGG16"):
        build_model(
            load("vgg16_augmented", [f"model.layers.2.VGG16.weights={tmp_path}/other.weights.h5"]).config.model,
            "m",
            weights_dir=data_dir,
            load_weights=True,
        )
    with pytest.raises(ConfigError, match="a relative path needs a data directory"):
        build_model(cfg, "m", weights_dir=None, load_weights=True)


def _tiny_splits(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    y = np.array([0, 1, 0, 1, 0, 1], dtype="float32")
    return Splits(x[:4], y[:4], x[4:], y[4:], x[:2], y[:2], "tiny")


def test_feature_cache_is_keyed_by_images_and_stack():
    specs = (ClassSpec("ImageNetPreprocessing", {"mode": "torch"}), ClassSpec("VGG16"))  # random weights
    splits = _tiny_splits()
    out, cached = features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)
    assert not cached and out.x_train.shape == (4, 1, 1, 512) and out.x_val.shape == (2, 1, 1, 512)
    again, cached = features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)
    assert cached and np.array_equal(again.x_train, out.x_train) and "from cache" in again.source
    other_mode = (ClassSpec("ImageNetPreprocessing", {"mode": "rescale"}), ClassSpec("VGG16"))
    assert not features.extract(splits, other_mode, Ctx("t"), None, log=lambda *a: None)[1]
    assert not features.extract(_tiny_splits(seed=1), specs, Ctx("t"), None, log=lambda *a: None)[1]


def test_feature_cache_is_keyed_by_the_dtype_policy():
    """Features computed under mixed_bfloat16 are never read by a float32 run, nor the other way round; float32
    keeps the key it had before the policy was part of it (the caches of earlier runs stay valid)."""
    import keras

    specs = (ClassSpec("ImageNetPreprocessing", {"mode": "torch"}), ClassSpec("VGG16"))
    splits = _tiny_splits()
    keys = {p: features.cache_key(splits, specs, None, p) for p in ("float32", "mixed_bfloat16", "mixed_float16")}
    assert len(set(keys.values())) == 3 and keys["float32"] == features.cache_key(splits, specs, None)
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        assert not features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)[1]
        assert features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)[1]  # its own cache
    finally:
        keras.config.set_dtype_policy("float32")
    assert not features.extract(splits, specs, Ctx("t"), None, log=lambda *a: None)[1]  # float32: not those


def test_stack_block_gets_the_previous_output_shape():
    model = build_stack((48, 48, 3), (ClassSpec("VGG16"), ClassSpec("GlobalAveragePooling2D")), "m")
    assert model.get_layer("vgg16").output.shape[1:] == (1, 1, 512) and model.output_shape == (None, 512)


def test_block_arguments_are_checked(cli):
    code, _, err = cli("check", "vgg16_augmented", "model.layers.2.VGG16.weigths=x")
    assert code == 2 and "unknown parameter 'weigths' of vgg16 (did you mean 'weights'?)" in err
