"""Periodic texture tiles (cached) and smooth random fields, sampled by coordinates.

Belt textures are functions of belt coordinates, so they travel with the belt in a stream; a tile
is computed once per seed and then only indexed, which keeps a frame to a few array lookups.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
TILE = 128
# "speckled": flecks of grit or filler in a PU belt; "ribbed": ribs running along the flow.
BELT_TEXTURES = ("plain", "weave", "slats", "mesh", "fabric", "modular", "speckled", "ribbed")


def smooth_field(rng: np.random.Generator, height: int, width: int, cell: float) -> FloatArray:
    """Zero-mean, unit-ish random field varying over about ``cell`` pixels (bilinear upsampling)."""
    gh, gw = int(height / cell) + 3, int(width / cell) + 3
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    # Smoothstep weights: no visible grid creases.
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = coarse[np.ix_(y0, x0)]
    b = coarse[np.ix_(y0, x0 + 1)]
    c = coarse[np.ix_(y0 + 1, x0)]
    d = coarse[np.ix_(y0 + 1, x0 + 1)]
    return np.asarray(a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy, dtype=np.float32)


def periodic_field(rng: np.random.Generator, size: int, cell: float) -> FloatArray:
    """A seamlessly repeating size x size random field varying over about ``cell`` pixels, unit std."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
    field = np.fft.irfft2(np.fft.rfft2(white) * np.exp(-f * (np.pi * cell) ** 2 / 2), s=(size, size))
    return np.asarray(field / (field.std() + 1e-9), dtype=np.float32)


@lru_cache(maxsize=256)
def belt_tile(kind: str, seed: int, period: float) -> FloatArray:
    """A TILE x TILE multiplicative texture (around 1.0) for a belt surface of ``kind``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    k = 2 * np.pi / max(period, 2.0)
    # Frequencies rounded to whole cycles per tile so the tile repeats seamlessly.
    cycles = max(1, round(TILE * k / (2 * np.pi)))
    kk = 2 * np.pi * cycles / TILE
    blotch = periodic_field(rng, TILE, 16.0) * 0.025
    grain = rng.standard_normal((TILE, TILE)).astype(np.float32) * 0.015
    if kind == "weave":
        pattern = 0.05 * np.sin(kk * xx) * np.sin(kk * yy)
    elif kind == "slats":
        pattern = -0.12 * (np.cos(kk * xx) > 0.93)
    elif kind == "mesh":
        pattern = -0.08 * ((np.cos(kk * xx) > 0.8) | (np.cos(kk * yy) > 0.8))
    elif kind == "fabric":
        pattern = 0.04 * np.sin(kk * (xx + yy)) + 0.03 * np.sin(kk * 2 * (xx - yy))
    elif kind == "modular":
        pattern = -0.10 * (np.cos(kk * xx) > 0.9) - 0.05 * (np.cos(kk * 2 * yy) > 0.9)
    elif kind == "speckled":
        flecks = rng.random((TILE, TILE)) < 0.02 + 0.01 * (seed % 4)
        sign = np.where(rng.random((TILE, TILE)) < 0.7, -1.0, 1.0)
        pattern = (flecks * sign * rng.uniform(0.1, 0.3, (TILE, TILE))).astype(np.float32)
        pattern = pattern + np.roll(pattern, 1, axis=1) * 0.5  # flecks a pixel or two across
    elif kind == "ribbed":
        pattern = 0.06 * np.sin(kk * yy) + 0.04 * (np.cos(kk * yy) > 0.9)
    else:
        pattern = np.zeros_like(xx)
    return np.asarray(1.0 + pattern + blotch + grain, dtype=np.float32)


def sample_tile(tile: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """Nearest lookup of a periodic tile at (u, v) coordinates of any shape."""
    iu = np.floor(u).astype(np.intp) % TILE
    iv = np.floor(v).astype(np.intp) % TILE
    return tile[iv, iu]


@lru_cache(maxsize=16)
def noise_tile(seed: int, size: int = 512) -> FloatArray:
    """A square of standard normal noise to crop fine surface detail from."""
    return np.random.default_rng(seed).standard_normal((size, size)).astype(np.float32)
