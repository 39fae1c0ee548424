"""Where the camera looks: a homography between image pixels and belt coordinates.

Belt coordinates: ``u`` along the flow (product travels towards +u), ``v`` across the belt (0 on
its centre line), both in belt pixels. The camera may be tilted, shifted across the belt, zoomed,
slightly keystoned (not square to the belt) and turned so the flow runs down the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Camera:
    """The view of one camera; ``centre_u``/``centre_v`` is the belt point under the image centre."""

    width: int
    height: int
    tilt_deg: float = 0.0
    vertical: bool = False  # the flow runs down the image instead of left to right
    zoom: float = 1.0  # image pixels per belt pixel
    centre_u: float = 0.0
    centre_v: float = 0.0
    keystone: tuple[float, float] = (0.0, 0.0)  # relative stretch of the far side, per image axis

    @property
    def flow_axis(self) -> int:
        """The image axis the flow runs along: 1 (x) or 0 (y)."""
        return 0 if self.vertical else 1

    def _affine_to_belt(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        theta = np.deg2rad(self.tilt_deg) + (np.pi / 2 if self.vertical else 0.0)
        dx, dy = (x - self.width / 2.0) / self.zoom, (y - self.height / 2.0) / self.zoom
        c, s = np.cos(theta), np.sin(theta)
        return dx * c + dy * s, -dx * s + dy * c

    @cached_property
    def image_to_belt(self) -> FloatArray:
        """3x3 homography taking image (x, y, 1) to belt (u, v, 1) up to scale."""
        xs = np.array([0.0, self.width, self.width, 0.0])
        ys = np.array([0.0, 0.0, self.height, self.height])
        u, v = self._affine_to_belt(xs, ys)
        nx, ny = np.sign(xs - self.width / 2.0), np.sign(ys - self.height / 2.0)
        k = 1.0 + self.keystone[0] * nx + self.keystone[1] * ny
        # Keystone: the corners on one side of the image see a wider stretch of belt.
        return _homography(xs, ys, u * k + self.centre_u, v * k + self.centre_v)

    @cached_property
    def belt_to_image(self) -> FloatArray:
        return np.asarray(np.linalg.inv(self.image_to_belt), dtype=np.float64)

    def to_belt(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _apply(self.image_to_belt, x, y)

    def to_image(self, u: FloatArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _apply(self.belt_to_image, u, v)

    def belt_bounds(self, margin: float) -> tuple[float, float, float, float]:
        """(u_min, u_max, v_min, v_max) of the belt area the image shows, plus ``margin``."""
        u, v = self.to_belt(np.array([0.0, self.width, self.width, 0.0]), np.array([0.0, 0.0, self.height, self.height]))
        return float(u.min() - margin), float(u.max() + margin), float(v.min() - margin), float(v.max() + margin)

    def flow_range(self, box: tuple[float, float, float, float]) -> tuple[float, float]:
        """The ``u`` range of the flow seen along the middle of ``box`` (x0, y0, x1, y1 in image pixels)."""
        x0, y0, x1, y1 = box
        if self.vertical:
            xs, ys = np.array([(x0 + x1) / 2.0] * 2), np.array([y0, y1])
        else:
            xs, ys = np.array([x0, x1]), np.array([(y0 + y1) / 2.0] * 2)
        u, _ = self.to_belt(xs, ys)
        return float(u.min()), float(u.max())

    def pil_perspective(self, origin_u: float, origin_v: float) -> tuple[float, ...]:
        """Coefficients for PIL's PERSPECTIVE transform from a canvas whose pixel (0, 0) is belt (origin_u, origin_v)."""
        shift = np.array([[1.0, 0.0, -origin_u], [0.0, 1.0, -origin_v], [0.0, 0.0, 1.0]])
        h = shift @ self.image_to_belt
        h = h / h[2, 2]
        return (h[0, 0], h[0, 1], h[0, 2], h[1, 0], h[1, 1], h[1, 2], h[2, 0], h[2, 1])


def _apply(h: FloatArray, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    return (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w


def _homography(xs: FloatArray, ys: FloatArray, us: FloatArray, vs: FloatArray) -> FloatArray:
    """The 3x3 homography mapping four (x, y) points onto four (u, v) points."""
    rows, rhs = [], []
    for x, y, u, v in zip(xs, ys, us, vs, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.asarray(rows, np.float64), np.asarray(rhs, np.float64))
    return np.asarray(np.append(h, 1.0).reshape(3, 3), dtype=np.float64)
