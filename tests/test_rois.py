"""Every ROI the config accepts gives a real crop on every frame size the daemon accepts."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.config import Roi
from edge.pipeline import MAX_SIDE, MIN_SIDE
from edge.preprocess import Box, resize_rgb

fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=2000, deadline=None)
@given(box=st.tuples(fractions, fractions, fractions, fractions),
       height=st.integers(MIN_SIDE, MAX_SIDE), width=st.integers(MIN_SIDE, MAX_SIDE))
def test_a_validated_roi_always_crops_at_least_one_pixel_inside_the_frame(box: tuple[float, ...], height: int, width: int) -> None:
    """Validation is the only gate: whatever passes it must never index outside the frame."""
    try:
        roi = Roi(name="r", box=list(box))
    except ValidationError:
        return
    frame = np.zeros((height, width, 3), np.uint8)
    frame[-1, :, 0] = 7  # mark the last row and column: a sliver at the edge must land on them
    frame[:, -1, 1] = 9
    crop = resize_rgb(frame, Box(*roi.box))
    assert crop.shape == (64, 64, 3)


def test_a_sliver_at_the_right_edge_reads_the_last_column() -> None:
    """[0.999, 0, 0.001, 1] on a 320-wide frame: the reviewer's crash, now the last column of pixels."""
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, -1] = 200
    crop = resize_rgb(frame, Box(0.999, 0.0, 0.001, 1.0))
    assert (crop == 200).all()
