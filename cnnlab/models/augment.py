"""`RandomAffine`: ImageDataGenerator's rotation, shifts, shear, zoom and horizontal flip as one Keras layer that
warps each image once, under every backend.

Reference: DLwP §5.2.5 (`ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
shear_range=0.2, zoom_range=0.2, horizontal_flip=True, fill_mode='nearest')`); Keras 3's
`keras.src.legacy.preprocessing.image.apply_affine_transform`, whose matrix this layer builds (tested against it).
Trap: Keras's stock layers (RandomRotation, RandomTranslation, RandomShear, RandomZoom) resample the image once
each, four interpolations in a row; ImageDataGenerator composes one matrix and interpolates once. This layer
does the latter: as faithful, less blurred and about twice as fast. ImageDataGenerator (Keras >= 2.2) reads
`rotation_range` and `shear_range` in degrees; the book's Keras 2.0 read `shear_range=0.2` as radians (11.46°).
The book's Keras 2.0.8 also sampled nearest-neighbour (scipy `order=0`), not bilinear, shore along the row axis
and centred a pixel off (h/2 + 0.5): `convention='keras2.0.8', interpolation='nearest'` is that warp.
"""

from __future__ import annotations

import math

import keras

from cnnlab.registry import LAYERS

FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


CONVENTIONS = ("keras3", "keras2.0.8")


def affine_transform_rows(theta, tx, ty, shear, zx, zy, flip, height: int, width: int, convention: str = "keras3"):
    """Keras `affine_transform` rows (N, 8) for ImageDataGenerator's parameters (angles in radians, shifts in
    pixels, `flip` 0/1 per image), centred as `transform_matrix_offset_center`; pure keras.ops, any backend.

    Both conventions build M = rotation · shift · shear · zoom, then flip the result.
    'keras3' (Keras >= 2.2 and Keras 3's legacy `apply_affine_transform`): M acts on (x, y) = (column, row)
    — tx, from height_shift_range, moves along x — around the centre (h/2 − 0.5, w/2 − 0.5).
    'keras2.0.8' (the book's library, keras/preprocessing/image.py at 2.0.8): M goes to scipy unswapped, so it
    acts on (row, column) — the shear slants along the row axis, tx moves rows — around (h/2 + 0.5, w/2 + 0.5).
    """
    ops = keras.ops
    c, s = ops.cos(theta), ops.sin(theta)
    m00, m01 = c * zx, -zy * ops.sin(theta + shear)
    m10, m11 = s * zx, zy * ops.cos(theta + shear)
    m02, m12 = c * tx - s * ty, s * tx + c * ty
    if convention == "keras3":
        ox, oy = height / 2.0 - 0.5, width / 2.0 - 0.5  # offset_center(matrix, h, w): x from h, y from w
        a0, a1, a2 = m00, m01, m02 + ox - m00 * ox - m01 * oy
        b0, b1, b2 = m10, m11, m12 + oy - m10 * ox - m11 * oy
    elif convention == "keras2.0.8":
        # T = offset · M · reset on (row, col): input_row = T00 r + T01 c + T02, input_col = T10 r + T11 c + T12;
        # Keras's rows read (x, y) = (col, row): x' = T11 x + T10 y + T12, y' = T01 x + T00 y + T02
        o_r, o_c = height / 2.0 + 0.5, width / 2.0 + 0.5
        t02 = m02 + o_r - m00 * o_r - m01 * o_c
        t12 = m12 + o_c - m10 * o_r - m11 * o_c
        a0, a1, a2 = m11, m10, t12
        b0, b1, b2 = m01, m00, t02
    else:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; received convention={convention!r}")
    # the horizontal flip after the warp: output column x reads the warped image at (width - 1 - x)
    sign = 1.0 - 2.0 * flip
    a2, b2 = a2 + flip * a0 * (width - 1), b2 + flip * b0 * (width - 1)
    a0, b0 = sign * a0, sign * b0
    zeros = ops.zeros_like(a0)
    return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


@LAYERS.register
@keras.saving.register_keras_serializable(package="cnnlab")
class RandomAffine(keras.layers.Layer):
    """ImageDataGenerator's geometric augmentation as one random affine warp per image, in training only."""

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | list[float] = 0.0,
        horizontal_flip: bool = False,
        fill_mode: str = "nearest",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        convention: str = "keras3",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; received convention={convention!r}")
        self.convention = convention
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)}; received fill_mode={fill_mode!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear'; received interpolation={interpolation!r}")
        for arg, value in (("width_shift_range", width_shift_range), ("height_shift_range", height_shift_range)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{arg} must be a fraction of the image in [0, 1); received {arg}={value!r}")
        if isinstance(zoom_range, (int, float)):
            zoom = (1.0 - zoom_range, 1.0 + zoom_range)
        elif len(zoom_range) == 2:
            zoom = (float(zoom_range[0]), float(zoom_range[1]))
        else:
            raise ValueError(f"zoom_range must be a float or [lower, upper]; received zoom_range={zoom_range!r}")
        if not 0.0 < zoom[0] <= zoom[1]:
            raise ValueError(f"zoom_range must give 0 < lower <= upper; received zoom_range={zoom_range!r}")
        self.rotation_range, self.shear_range = float(rotation_range), float(shear_range)
        self.width_shift_range, self.height_shift_range = float(width_shift_range), float(height_shift_range)
        self.zoom_range, self._zoom = zoom_range, zoom
        self.horizontal_flip, self.fill_mode, self.interpolation = bool(horizontal_flip), fill_mode, interpolation
        self.fill_value, self.seed = float(fill_value), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        ops = keras.ops
        x = ops.cast(images, self.compute_dtype)
        n = ops.shape(x)[0]
        height, width = int(x.shape[1]), int(x.shape[2])

        def uniform(low, high):
            return keras.random.uniform((n,), low, high, dtype="float32", seed=self.seed_generator)

        deg = math.pi / 180.0
        theta = uniform(-self.rotation_range, self.rotation_range) * deg
        tx = uniform(-self.height_shift_range, self.height_shift_range) * height
        ty = uniform(-self.width_shift_range, self.width_shift_range) * width
        shear = uniform(-self.shear_range, self.shear_range) * deg
        zx, zy = uniform(*self._zoom), uniform(*self._zoom)
        flip = ops.cast(uniform(0.0, 1.0) < 0.5, "float32") if self.horizontal_flip else ops.zeros((n,))
        rows = affine_transform_rows(theta, tx, ty, shear, zx, zy, flip, height, width, self.convention)
        out = ops.image.affine_transform(
            x, rows, interpolation=self.interpolation, fill_mode=self.fill_mode, fill_value=self.fill_value
        )
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rotation_range": self.rotation_range,
            "width_shift_range": self.width_shift_range,
            "height_shift_range": self.height_shift_range,
            "shear_range": self.shear_range,
            "zoom_range": self.zoom_range,
            "horizontal_flip": self.horizontal_flip,
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
            "convention": self.convention,
            "seed": self.seed,
        }
