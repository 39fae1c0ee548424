"""Training-time augmentation: what a line's camera does to a picture, applied per image on float batches.

Geometric (labels are invariant under all of them: the alert spec measures gaps in product pitches,
whatever the direction or scale): horizontal and vertical flips, now and then a transpose (flow running
down the picture), rotation up to 8 degrees, zoom 0.92-1.08 with +-8% aspect change, shifts up to 3%.
Border pixels are filled by reflection.

Photometric: exposure 0.67-1.4x, contrast, per-channel colour casts, gamma, a linear lighting
gradient, occasional defocus blur, sensor noise, and now and then a greyscale camera (the simulator
already renders night shifts, glare and noise; this varies each frame again on every epoch).

The original ``ImageDataGenerator(shear_range=0.2, zoom_range=0.2, horizontal_flip=True)`` is a
subset of this (its 0.2-degree shear is negligible next to the rotation). Deterministic for a seed;
validation and test data are never augmented.
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_ROTATION_DEGREES = 8.0
ZOOM_RANGE = 0.08
ASPECT_RANGE = 0.08
SHIFT_RANGE = 0.03
# Most cameras see the flow across the picture; a few turned views keep the model from failing on them
# while its capacity goes to the usual case.
TRANSPOSE_SHARE = 0.04


def _uniform(seed: tf.Tensor, shape: list[tf.Tensor] | list[int], lo: float, hi: float) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, lo, hi)


def _transforms(batch: tf.Tensor, size: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Per-image projective transforms (output pixel -> input pixel), as ImageProjectiveTransformV3 wants them."""
    s = tf.random.experimental.stateless_split(seed, 6)
    angle = _uniform(s[0], [batch], -MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES) * (math.pi / 180.0)
    zoom = _uniform(s[1], [batch], 1 - ZOOM_RANGE, 1 + ZOOM_RANGE)
    aspect = _uniform(s[2], [batch], 1 - ASPECT_RANGE, 1 + ASPECT_RANGE)
    fx = tf.where(_uniform(s[3], [batch], 0.0, 1.0) < 0.5, -1.0, 1.0)
    fy = tf.where(_uniform(s[4], [batch], 0.0, 1.0) < 0.5, -1.0, 1.0)
    shift = _uniform(s[5], [batch, 2], -SHIFT_RANGE, SHIFT_RANGE) * size
    zx, zy = fx / (zoom * aspect), fy / (zoom / aspect)
    c, n = tf.cos(angle), tf.sin(angle)
    # input = R(angle) @ diag(zx, zy) @ (output - centre) + centre + shift
    a0, a1 = c * zx, -n * zy
    b0, b1 = n * zx, c * zy
    centre = (size - 1.0) / 2.0
    a2 = centre - a0 * centre - a1 * centre + shift[:, 0]
    b2 = centre - b0 * centre - b1 * centre + shift[:, 1]
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def geometric(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(images)
    s = tf.random.experimental.stateless_split(seed, 2)
    transposed = tf.transpose(images, [0, 2, 1, 3])
    swap = tf.reshape(_uniform(s[0], [shape[0]], 0.0, 1.0) < TRANSPOSE_SHARE, [-1, 1, 1, 1])
    images = tf.where(swap, transposed, images)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=_transforms(shape[0], tf.cast(shape[2], tf.float32), s[1]),
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def photometric(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(images)
    n = shape[0]
    s = tf.random.experimental.stateless_split(seed, 11)
    x = tf.clip_by_value(images, 0.0, 1.0)
    gamma = tf.exp(_uniform(s[0], [n, 1, 1, 1], -0.25, 0.25))
    x = tf.pow(x + 1e-6, gamma)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.exp(_uniform(s[1], [n, 1, 1, 1], -0.3, 0.2))
    x = mean + (x - mean) * contrast
    gain = tf.exp(_uniform(s[2], [n, 1, 1, 1], -0.4, 0.35))
    cast = tf.exp(_uniform(s[3], [n, 1, 1, 3], -0.15, 0.15))
    x = x * gain * cast
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    ys = tf.reshape(tf.range(h) / h - 0.5, [1, -1, 1, 1])
    xs = tf.reshape(tf.range(w) / w - 0.5, [1, 1, -1, 1])
    slope = _uniform(s[4], [n, 2], -0.5, 0.5)
    x = x * (1.0 + tf.reshape(slope[:, 0], [-1, 1, 1, 1]) * xs + tf.reshape(slope[:, 1], [-1, 1, 1, 1]) * ys)
    kernel = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    kernel = tf.tile(tf.reshape(kernel, [3, 3, 1, 1]), [1, 1, 3, 1])
    blurred = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")
    blurred = tf.nn.depthwise_conv2d(blurred, kernel, [1, 1, 1, 1], "SAME")
    blur = tf.cast(_uniform(s[5], [n, 1, 1, 1], 0.0, 1.0) < 0.25, tf.float32) * _uniform(s[6], [n, 1, 1, 1], 0.3, 1.0)
    x = x * (1.0 - blur) + blurred * blur
    sigma = tf.cast(_uniform(s[7], [n, 1, 1, 1], 0.0, 1.0) < 0.5, tf.float32) * _uniform(s[8], [n, 1, 1, 1], 0.0, 0.05)
    x = x + tf.random.stateless_normal(shape, s[9]) * sigma
    grey = tf.cast(_uniform(s[10], [n, 1, 1, 1], 0.0, 1.0) < 0.05, tf.float32)
    x = x * (1.0 - grey) + tf.reduce_mean(x, axis=3, keepdims=True) * grey
    return tf.clip_by_value(x, 0.0, 1.0)


def augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Geometric then photometric augmentation of a float batch (N, H, W, 3) in [0, 1]; ``seed`` has shape [2]."""
    s = tf.random.experimental.stateless_split(seed, 2)
    return photometric(geometric(images, s[0]), s[1])
