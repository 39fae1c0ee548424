"""Draw a belt seen from above with round chocolate cookies on it, as a camera would see it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

FloatImage = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Cookie:
    """One cookie in belt coordinates (pixels): ``u`` along the flow, ``v`` across the belt."""

    u: float
    v: float
    radius: float
    tone: float  # brightness factor of this cookie's bake
    chips: int  # seed for its chocolate-chip pattern


@dataclass(frozen=True)
class CameraLook:
    """What the camera and the lighting do to the scene: everything a real line varies."""

    width: int
    height: int
    tilt_deg: float
    belt_offset: float  # belt centre line, pixels from frame centre (across the belt)
    belt_half_width: float
    belt_rgb: tuple[float, float, float]
    rail_rgb: tuple[float, float, float]
    cookie_rgb: tuple[float, float, float]
    gain: float
    gradient: tuple[float, float]  # lighting slope across x and y, fraction per frame
    cast: tuple[float, float, float]
    noise_sigma: float
    blur: int  # box-blur size in pixels (1 = none)
    texture_seed: int


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[FloatImage, FloatImage]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy, xx


@lru_cache(maxsize=8)
def _belt_texture(height: int, width: int, seed: int) -> FloatImage:
    # Low-frequency weave: a coarse random grid blown up, so the belt is not a flat colour.
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, size=(height // 8 + 2, width // 8 + 2)).astype(np.float32)
    fine = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, :width]
    return 1.0 + 0.04 * fine


def _box_blur(img: FloatImage, size: int) -> FloatImage:
    if size <= 1:
        return img
    pad = size // 2
    out = img
    for axis in (0, 1):
        padded = np.pad(out, [(pad, pad) if a == axis else (0, 0) for a in range(3)], mode="edge")
        csum = np.cumsum(padded, axis=axis, dtype=np.float32)
        csum = np.concatenate([np.zeros_like(np.take(csum, [0], axis=axis)), csum], axis=axis)
        n = out.shape[axis]
        window = np.take(csum, np.arange(size, size + n), axis=axis) - np.take(csum, np.arange(n), axis=axis)
        out = (window / size).astype(np.float32)
    return out.astype(np.float32)


def _to_screen(look: CameraLook, u: float, v: float) -> tuple[float, float]:
    theta = np.deg2rad(look.tilt_deg)
    cx, cy = look.width / 2.0, look.height / 2.0
    vv = v + look.belt_offset
    return cx + u * np.cos(theta) - vv * np.sin(theta), cy + u * np.sin(theta) + vv * np.cos(theta)


def _draw_cookie(img: FloatImage, look: CameraLook, cookie: Cookie) -> None:
    x, y = _to_screen(look, cookie.u, cookie.v)
    r = cookie.radius
    shadow = r * 0.18
    x0, x1 = int(max(0, np.floor(x - r - 2))), int(min(look.width, np.ceil(x + r + shadow + 3)))
    y0, y1 = int(max(0, np.floor(y - r - 2))), int(min(look.height, np.ceil(y + r + shadow + 3)))
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = _grid(look.height, look.width)
    py, px = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
    patch = img[y0:y1, x0:x1]
    # Soft shadow first, offset down-right, then the cookie over it.
    ds = np.hypot(px - x - shadow, py - y - shadow)
    shade = np.clip((r + 1.5 - ds) / 3.0, 0.0, 1.0) * 0.35
    patch *= (1.0 - shade)[:, :, None]
    d = np.hypot(px - x, py - y)
    alpha = np.clip(r - d + 0.5, 0.0, 1.0)[:, :, None]
    rel = np.clip(d / r, 0.0, 1.0)
    dome = (1.05 - 0.35 * rel**2)[:, :, None]
    colour = np.asarray(look.cookie_rgb, dtype=np.float32) * cookie.tone * dome
    rng = np.random.default_rng(cookie.chips)
    for _ in range(int(rng.integers(3, 7))):
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.7) * r
        cxp, cyp = x + rad * np.cos(ang), y + rad * np.sin(ang)
        chip = np.clip(r * 0.16 - np.hypot(px - cxp, py - cyp) + 0.5, 0.0, 1.0)[:, :, None]
        colour = colour * (1.0 - 0.55 * chip)
    patch[...] = patch * (1.0 - alpha) + colour * alpha


def render_frame(look: CameraLook, cookies: list[Cookie], noise_rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Render one HxWx3 uint8 RGB frame of the belt carrying ``cookies``."""
    h, w = look.height, look.width
    yy, xx = _grid(h, w)
    theta = np.deg2rad(look.tilt_deg)
    across = -(xx - w / 2.0) * np.sin(theta) + (yy - h / 2.0) * np.cos(theta) - look.belt_offset
    on_belt = np.clip(look.belt_half_width - np.abs(across) + 0.5, 0.0, 1.0)[:, :, None]
    belt = np.asarray(look.belt_rgb, dtype=np.float32) * _belt_texture(h, w, look.texture_seed)[:, :, None]
    rail = np.asarray(look.rail_rgb, dtype=np.float32) * (0.9 + 0.1 * np.sin(xx / 3.0))[:, :, None]
    img = (belt * on_belt + rail * (1.0 - on_belt)).astype(np.float32)
    for cookie in cookies:
        _draw_cookie(img, look, cookie)
    light = look.gain * (1.0 + look.gradient[0] * (xx / w - 0.5) + look.gradient[1] * (yy / h - 0.5))
    img *= light[:, :, None] * np.asarray(look.cast, dtype=np.float32)
    img = _box_blur(img, look.blur)
    if look.noise_sigma > 0:
        img += noise_rng.normal(0.0, look.noise_sigma, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)
