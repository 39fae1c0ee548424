"""The original ``ImageDataGenerator(rescale=1/255, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)``
rebuilt on ``tf.image``-level ops, since ImageDataGenerator is deprecated.

Faithful to what the original did, including its units: ``shear_range`` was an angle in
*degrees* (so +-0.2 degrees, a tiny shear), ``zoom_range=0.2`` drew independent x and y
zoom factors from [0.8, 1.2], flips were horizontal with p=0.5, and empty areas were filled
with the nearest edge pixel. Applied to 64x64 images after resizing, as
``flow_from_directory`` did. Test data is only rescaled.
"""

from __future__ import annotations

import math

import tensorflow as tf

SHEAR_DEGREES = 0.2
ZOOM_RANGE = 0.2


def _transforms(batch: int, size: float, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 4)
    shear = tf.random.stateless_uniform([batch], seeds[0], -SHEAR_DEGREES, SHEAR_DEGREES) * (math.pi / 180.0)
    zx = tf.random.stateless_uniform([batch], seeds[1], 1 - ZOOM_RANGE, 1 + ZOOM_RANGE)
    zy = tf.random.stateless_uniform([batch], seeds[2], 1 - ZOOM_RANGE, 1 + ZOOM_RANGE)
    flip = tf.cast(tf.random.stateless_uniform([batch], seeds[3]) < 0.5, tf.float32)
    sx = 1.0 - 2.0 * flip  # -1 mirrors x
    # Output pixel (x, y) samples input at M @ (x - c, y - c) + c, with M = shear @ zoom @ flip,
    # the same composition ImageDataGenerator.apply_transform used (centred on the image).
    c = (size - 1.0) / 2.0
    a0 = zx * sx
    a1 = -tf.sin(shear) * zy
    b0 = tf.zeros_like(zx)
    b1 = tf.cos(shear) * zy
    a2 = c - a0 * c - a1 * c
    b2 = c - b0 * c - b1 * c
    zeros = tf.zeros_like(zx)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Randomly shear, zoom and flip a float batch (N, H, W, 3); deterministic for ``seed`` (shape [2])."""
    shape = tf.shape(images)
    transforms = _transforms(shape[0], tf.cast(shape[2], tf.float32), seed)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
