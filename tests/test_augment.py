"""RandomAffine: ImageDataGenerator's transform as one warp — equal to the legacy implementation pixel for pixel
(up to float rounding), seeded, inactive outside training."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.models.augment import RandomAffine, affine_transform_rows


def _image(h: int = 36, w: int = 36) -> np.ndarray:
    """A smooth RGB test image with structure in both directions (bilinear interpolation is exact on planes)."""
    r, c = np.mgrid[0:h, 0:w].astype("float32")
    return np.stack([r * 3 + c, 100 + 40 * np.sin(r / 5) * np.cos(c / 7), (r - c) ** 2 / 10], axis=-1)


@pytest.mark.parametrize(
    "params",
    [
        dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # identity
        dict(theta=25.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # rotation only
        dict(theta=0.0, tx=5.0, ty=-3.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # shifts: tx moves along x
        dict(theta=0.0, tx=0.0, ty=0.0, shear=11.46, zx=1.0, zy=1.0, flip=False),  # shear (0.2 rad)
        dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=0.85, zy=1.15, flip=False),  # anisotropic zoom
        dict(theta=-33.0, tx=-4.0, ty=6.0, shear=-9.0, zx=1.1, zy=0.9, flip=True),  # everything, flipped
    ],
)
def test_one_warp_equals_imagedatagenerators_apply_transform(params):
    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    img = _image()
    gen = ImageDataGenerator(fill_mode="nearest")
    expected = gen.apply_transform(
        img,
        {
            "theta": params["theta"],
            "tx": params["tx"],
            "ty": params["ty"],
            "shear": params["shear"],
            "zx": params["zx"],
            "zy": params["zy"],
            "flip_horizontal": params["flip"],
        },
    )
    deg = np.pi / 180
    one = lambda v: np.array([v], "float32")  # noqa: E731
    rows = affine_transform_rows(
        one(params["theta"] * deg),
        one(params["tx"]),
        one(params["ty"]),
        one(params["shear"] * deg),
        one(params["zx"]),
        one(params["zy"]),
        one(float(params["flip"])),
        img.shape[0],
        img.shape[1],
    )
    got = keras.ops.convert_to_numpy(
        keras.ops.image.affine_transform(img[None], rows, interpolation="bilinear", fill_mode="nearest")
    )[0]
    assert got.shape == expected.shape
    # scipy (order=1, mode 'nearest') and Keras's bilinear sampler agree to float32 rounding on the pixel values
    np.testing.assert_allclose(got, expected, atol=1e-2 * np.abs(img).max() / 100)


def test_inactive_outside_training_and_seeded_in_training():
    import keras

    x = np.stack([_image(), _image()[::-1]]).astype("float32")
    layer = RandomAffine(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=11.46,
        zoom_range=0.2,
        horizontal_flip=True,
        seed=3,
    )
    assert np.array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    same = RandomAffine(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=11.46,
        zoom_range=0.2,
        horizontal_flip=True,
        seed=3,
    )
    other = RandomAffine(
        rotation_range=40,
        width_shift_range=0.2,
        height_shift_range=0.2,
        shear_range=11.46,
        zoom_range=0.2,
        horizontal_flip=True,
        seed=4,
    )
    a, b, c = (keras.ops.convert_to_numpy(layer_(x, training=True)) for layer_ in (layer, same, other))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert not np.allclose(a[0], x[0])  # it did transform
    again = keras.ops.convert_to_numpy(layer(x, training=True))
    assert not np.array_equal(a, again)  # the seed generator moves on: a new draw each batch


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (dict(fill_mode="edge"), "fill_mode must be one of constant, nearest, wrap, mirror, reflect; received"),
        (dict(width_shift_range=1.5), "width_shift_range must be a fraction of the image in [0, 1); received"),
        (dict(zoom_range=[1.2, 0.8]), "zoom_range must give 0 < lower <= upper; received"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_value(kwargs, says):
    with pytest.raises(ValueError, match=r".*") as err:
        RandomAffine(**kwargs)
    assert says in str(err.value)


def test_the_affine_variant_of_cats_dogs_augmented_keeps_the_books_parameter_count():
    from cnnlab.config.experiment import load
    from cnnlab.models.stack import build_model

    exp = load("cats_dogs_augmented:affine")
    model = build_model(exp.config.model, exp.config.name)
    assert [type(layer).__name__ for layer in model.layers][:3] == ["RandomAffine", "Rescaling", "Conv2D"]
    assert model.count_params() == 3_453_121  # augmentation adds no parameters (DLwP listing 5.13)


def _keras_2_0_8_warp(img, theta, tx, ty, shear, zx, zy, flip):
    """The book's ImageDataGenerator.random_transform at Keras 2.0.8 with its random draws fixed, by hand:
    M = rotation · shift · shear · zoom on (row, column), centred at (h/2 + 0.5, w/2 + 0.5), each channel
    resampled by scipy's affine_transform with order=0 (nearest) and mode 'nearest', then the columns flipped."""
    from scipy import ndimage

    c, s = np.cos(theta), np.sin(theta)
    m = (
        np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        @ np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        @ np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
        @ np.diag([zx, zy, 1.0])
    )
    o_r, o_c = img.shape[0] / 2 + 0.5, img.shape[1] / 2 + 0.5
    t = np.array([[1, 0, o_r], [0, 1, o_c], [0, 0, 1]]) @ m @ np.array([[1, 0, -o_r], [0, 1, -o_c], [0, 0, 1]])
    out = np.stack(
        [
            ndimage.affine_transform(img[..., k], t[:2, :2], t[:2, 2], order=0, mode="nearest")
            for k in range(img.shape[-1])
        ],
        axis=-1,
    )
    return out[:, ::-1] if flip else out


@pytest.mark.parametrize(
    "params",
    [
        dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # identity
        dict(theta=0.0, tx=5.0, ty=-3.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # tx moves rows here
        dict(theta=0.0, tx=0.0, ty=0.0, shear=0.2, zx=1.0, zy=1.0, flip=False),  # shear 0.2 rad along rows
        dict(theta=25.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip=False),  # rotation
        dict(theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=0.85, zy=1.15, flip=False),  # anisotropic zoom
        dict(theta=-33.0, tx=-4.3, ty=6.1, shear=-0.15, zx=1.1, zy=0.9, flip=True),  # everything, flipped
    ],
)
def test_the_keras_2_0_8_convention_is_the_books_warp_pixel_for_pixel(params):
    import keras

    img = np.round(_image(40, 36))  # integer pixel values, as the JPEGs; a non-square image catches axis swaps
    deg = np.pi / 180
    expected = _keras_2_0_8_warp(
        img,
        params["theta"] * deg,
        params["tx"],
        params["ty"],
        params["shear"],
        params["zx"],
        params["zy"],
        params["flip"],
    )
    one = lambda v: np.array([v], "float32")  # noqa: E731
    rows = affine_transform_rows(
        one(params["theta"] * deg),
        one(params["tx"]),
        one(params["ty"]),
        one(params["shear"]),
        one(params["zx"]),
        one(params["zy"]),
        one(float(params["flip"])),
        img.shape[0],
        img.shape[1],
        convention="keras2.0.8",
    )
    got = keras.ops.convert_to_numpy(
        keras.ops.image.affine_transform(
            img[None].astype("float32"), rows, interpolation="nearest", fill_mode="nearest"
        )
    )[0]
    # nearest neighbour copies pixels: equal, except where a sample point lies within float rounding of a
    # pixel boundary (none here)
    mismatched = np.mean(np.any(got != expected, axis=-1))
    assert mismatched == 0.0, f"{mismatched:.2%} of the pixels differ"


def test_the_keras3_convention_differs_from_the_books_on_a_shear():
    import keras

    img = np.round(_image(40, 36)).astype("float32")
    one = lambda v: np.array([v], "float32")  # noqa: E731
    args = (one(0.0), one(0.0), one(0.0), one(0.2), one(1.0), one(1.0), one(0.0), 40, 36)
    book = keras.ops.image.affine_transform(
        img[None], affine_transform_rows(*args, convention="keras2.0.8"), interpolation="nearest", fill_mode="nearest"
    )
    k3 = keras.ops.image.affine_transform(
        img[None], affine_transform_rows(*args, convention="keras3"), interpolation="nearest", fill_mode="nearest"
    )
    assert np.mean(keras.ops.convert_to_numpy(book) != keras.ops.convert_to_numpy(k3)) > 0.3
    with pytest.raises(ValueError, match="convention"):
        RandomAffine(convention="keras2")
