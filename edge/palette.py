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
DARK_SUM = 60  # R+G+B below this: the chromaticity is mostly noise, so such a block only counts as "dark" (a colour of
# its own: a dark cover over a place that was never dark is foreign there; a dark belt or a night shift is learned)
EDGE_SPREAD = 90  # a 2x2 block whose channels span more than this in total straddles an edge (sensor noise spans ~30-80)
KNOWN_MASS = 0.01  # a colour is known in a place when this share of its learned pixels had it (or a neighbouring bin)
LEARN_RATE = 1.0 / 8.0  # once ready, each learned frame weighs this much (one every 10 s: about a minute of memory)
READY_AFTER = 9  # learned frames (under 4 s of a running line at the pipeline's cadence) before the judge speaks
FOREIGN_LIMIT = 0.25  # more than this share of a frame's judged blocks in colours never seen there: not the belt


def place_and_colour(rgb64: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    """For each 4x4 block of the crop that is one surface (not an edge between two): its place (cell) and colour (a
    chromaticity bin, or "dark") as one flat index into a (CELLS * CELLS, PER_PLACE) table.

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
    keep = spread <= EDGE_SPREAD
    total = total[keep]
    rg: npt.NDArray[np.int32] = np.minimum(summed[keep][:, :2] * BINS // np.maximum(total, 1)[:, None], BINS - 1)
    colour = np.where(total >= 4 * DARK_SUM, rg[:, 0] * BINS + rg[:, 1], DARK_BIN)
    index: npt.NDArray[np.intp] = (_place_offsets(keep.shape[0])[keep] + colour).astype(np.intp)
    return index


@lru_cache(maxsize=2)
def _place_offsets(side: int) -> npt.NDArray[np.int32]:
    """Each block's table offset for its place: row-major CELLS x CELLS places over a side x side grid of blocks."""
    cell = np.arange(side) * CELLS // side
    return ((cell[:, None] * CELLS + cell[None, :]) * PER_PLACE).astype(np.int32)


PER_PLACE = BINS * BINS + 1  # the chromaticity bins and one for "dark"
DARK_BIN = BINS * BINS
TABLE = CELLS * CELLS * PER_PLACE


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
        place = index // PER_PLACE
        blocks_per_place = np.bincount(place, minlength=CELLS * CELLS)
        rate = max(LEARN_RATE, 1.0 / (self.learned + 1))  # a plain mean over the first frames, then a moving one
        # mass <- (1 - rate) * mass + rate * (each place's colour shares in this frame), in two passes
        self._mass *= 1.0 - rate
        self._mass += np.bincount(index, weights=rate / blocks_per_place[place], minlength=TABLE)
        self.learned += 1
        self._known = None

    def foreign_share(self, rgb64: npt.NDArray[np.uint8]) -> float | None:
        """The share of the frame's judged blocks in colours never seen at their place; None until the palette is
        ready (or when every block straddles an edge)."""
        if not self.ready:
            return None
        index = place_and_colour(rgb64)
        if index.size == 0:
            return None
        if self._known is None:
            seen = self._mass.reshape(CELLS * CELLS, PER_PLACE) >= KNOWN_MASS
            colours = _with_neighbours(seen[:, :DARK_BIN].reshape(CELLS * CELLS, BINS, BINS)).reshape(CELLS * CELLS, DARK_BIN)
            self._known = np.concatenate([colours, seen[:, DARK_BIN:]], axis=1).reshape(-1)
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
