"""The belt's own colours: a region that shows mostly colours its belt and product never showed is not the belt.

The alert model cannot tell an empty stretch of belt from a camera knocked towards a wall: both are a surface
without product. Nor can the image statistics when the wall has texture, and the scene head misses walls that
look like no wall it was trained on (an evaluator's textured blue-grey wall: the bundled model's alert output
said "gap" on every frame and its scene head said "unknown" on 18%). What tells them apart on a running line is
colour: an empty belt has the colour the belt showed between products all day; a wall, a cover or a glove
rarely has. So each region learns the colours of what it saw while the line ran normally (frames with product
in view that the other judges call a belt) and a frame whose pixels mostly fall outside them is not the belt.

Colours are chromaticities (the red and green shares of R+G+B), which an exposure or gain change leaves alone;
a slow change in the light's colour is followed because the region keeps learning, and a new product or belt
colour is learned within seconds of product being in view. Pure logic on the 64x64 crop the model sees.

What it cannot do, by construction: tell a wall in the belt's own colour from an empty belt, or judge anything
before it has seen product (a daemon started while the camera already faces a wall): it abstains until then.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

BINS = 32  # chromaticity bins per axis: 1/32 of the range, about the spread of one surface under sensor noise
CELLS = 4  # the view is judged in CELLS x CELLS places: the camera is fixed, so each place has its own colours
DARK_SUM = 60  # R+G+B below this: the chromaticity is mostly noise (shadows, chips), so such pixels are not judged
EDGE_SPREAD = 90  # a 2x2 block whose channels span more than this in total straddles an edge (sensor noise spans ~30-80)
KNOWN_MASS = 0.01  # a colour is known in a place when this share of its learned pixels had it (or a neighbouring bin)
LEARN_RATE = 1.0 / 20.0  # once ready, each learned frame weighs this much (one every 3 s: about a minute of memory)
READY_AFTER = 9  # learned frames (3 s of a running line at the pipeline's cadence) before the judge speaks
FOREIGN_LIMIT = 0.25  # more than this share of a frame's judged blocks in colours never seen there: not the belt


def place_and_colour(rgb64: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """For each 4x4 block of the crop that is one surface (not an edge between two) and bright enough to judge: its
    place (cell) and chromaticity bin as one flat index into a (CELLS * CELLS, BINS, BINS) table.

    A block is judged by four of its pixels, two apart (a sixteenth of the crop: a few tens of microseconds).
    Edges are left out because their pixels blend two colours: between an orange product and a blue belt the
    blend passes through grey, which would make a grey wall a "known" colour."""
    a, b, c, d = rgb64[0::4, 0::4], rgb64[0::4, 2::4], rgb64[2::4, 0::4], rgb64[2::4, 2::4]
    spread = (np.maximum(np.maximum(a, b), np.maximum(c, d)) - np.minimum(np.minimum(a, b), np.minimum(c, d))).sum(axis=2, dtype=np.int32)
    summed = a.astype(np.int32)
    summed += b
    summed += c
    summed += d
    total = summed.sum(axis=2)
    keep = (total >= 4 * DARK_SUM) & (spread <= EDGE_SPREAD)
    rg: npt.NDArray[np.int32] = np.minimum(summed[keep][:, :2] * BINS // total[keep][:, None], BINS - 1)
    index: npt.NDArray[np.intp] = (_place_offsets(keep.shape[0])[keep] + rg[:, 0] * BINS + rg[:, 1]).astype(np.intp)
    return index


@lru_cache(maxsize=2)
def _place_offsets(side: int) -> npt.NDArray[np.int32]:
    """Each block's table offset for its place: row-major CELLS x CELLS places over a side x side grid of blocks."""
    cell = np.arange(side) * CELLS // side
    return ((cell[:, None] * CELLS + cell[None, :]) * (BINS * BINS)).astype(np.int32)


TABLE = CELLS * CELLS * BINS * BINS


class BeltPalette:
    """The colours one region showed, place by place, while the line ran normally; :meth:`foreign_share` judges a
    new frame."""

    def __init__(self) -> None:
        self._mass = np.zeros(TABLE, np.float64)
        self._known: npt.NDArray[np.bool_] | None = None
        self.learned = 0

    @property
    def ready(self) -> bool:
        return self.learned >= READY_AFTER

    def learn(self, rgb64: npt.NDArray[np.uint8]) -> None:
        """Add a frame that shows the belt with product (the caller decides that)."""
        index = place_and_colour(rgb64)
        if index.size == 0:
            return
        counts = np.bincount(index, minlength=TABLE).reshape(CELLS * CELLS, -1).astype(np.float64)
        frame = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)  # each place's colour shares
        rate = max(LEARN_RATE, 1.0 / (self.learned + 1))  # a plain mean over the first frames, then a moving one
        self._mass += rate * (frame.reshape(-1) - self._mass)
        self.learned += 1
        self._known = None

    def foreign_share(self, rgb64: npt.NDArray[np.uint8]) -> float | None:
        """The share of the frame's judged pixels in colours never seen at their place; None until the palette is
        ready (or when the whole frame is too dark to judge: the statistics' brightness limit judges that)."""
        if not self.ready:
            return None
        index = place_and_colour(rgb64)
        if index.size == 0:
            return None
        if self._known is None:
            self._known = _with_neighbours(self._mass.reshape(CELLS * CELLS, BINS, BINS) >= KNOWN_MASS).reshape(-1)
        return float(np.count_nonzero(~self._known[index])) / index.size

    def reset(self) -> None:
        self._mass[:] = 0.0
        self._known = None
        self.learned = 0


def _with_neighbours(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Each place's (..., BINS, BINS) ``mask`` grown by one bin in every direction (a colour next to a learned one
    is the same surface)."""
    grown = mask.copy()
    grown[..., 1:, :] |= mask[..., :-1, :]
    grown[..., :-1, :] |= mask[..., 1:, :]
    rows = grown.copy()
    grown[..., 1:] |= rows[..., :-1]
    grown[..., :-1] |= rows[..., 1:]
    return grown
