"""The belt's own colours (edge.palette): learned from frames of a running line, an empty stretch of the same belt
is known, a surface in other colours is not. Frames come from the training simulator's moving belt."""

from __future__ import annotations

import numpy as np
import pytest

from edge.palette import FOREIGN_LIMIT, READY_AFTER, BeltPalette
from edge.preprocess import resize_rgb
from edge.simulator.stream import ConveyorStream, Drop
from edge.simulator.unknown import render_unknown

GAP = Drop(20.0, 6.0)


def crop(stream: ConveyorStream, t: float) -> np.ndarray:
    return resize_rgb(stream.frame_at(t))


def learned(stream: ConveyorStream, frames: int = 30) -> BeltPalette:
    """What the pipeline teaches a palette: frames of the running line with product in view, 0.4 s apart."""
    palette = BeltPalette()
    for k in range(frames):
        palette.learn(crop(stream, 1.0 + k * 0.4))
    return palette


@pytest.mark.parametrize("seed", [100, 101, 103, 105])
def test_an_empty_stretch_of_the_same_belt_is_in_known_colours(seed: int) -> None:
    stream = ConveyorStream(seed, drops=(GAP,))
    palette = learned(stream)
    empty = [t for t in np.arange(20.0, 30.0, 0.2) if stream.truth_at(float(t)).alert]
    assert len(empty) >= 10  # the gap is in view for seconds
    shares = [palette.foreign_share(crop(stream, float(t))) for t in empty]
    assert max(s for s in shares if s is not None) <= 0.05 < FOREIGN_LIMIT, shares


def test_walls_in_other_colours_are_not_the_belt() -> None:
    """The simulator's camera knocked towards a wall, lit like the line: walls in colours the belt and product never
    showed are flagged; grey ones on a line with grey rails are not (that is the scene head's and the statistics'
    job), so over three lines a good share of the walls, and on a green belt nearly all, are flagged."""
    flagged = {}
    for seed in (100, 103, 105):
        stream = ConveyorStream(seed)
        palette = learned(stream)
        walls = [resize_rgb(render_unknown("grey_wall", stream.look, [], np.random.default_rng((seed, j)))) for j in range(12)]
        shares = [palette.foreign_share(wall) for wall in walls]
        flagged[seed] = sum(s is not None and s > FOREIGN_LIMIT for s in shares)
    assert flagged[105] >= 10 and sum(flagged.values()) >= 12, flagged


def test_a_change_of_exposure_is_not_a_new_colour() -> None:
    """Chromaticity ignores gain: the same empty belt a third darker or brighter is still known."""
    stream = ConveyorStream(101, drops=(GAP,))
    palette = learned(stream)
    t = next(float(t) for t in np.arange(20.0, 30.0, 0.2) if stream.truth_at(float(t)).alert)
    empty = crop(stream, t).astype(np.float32)
    for gain in (0.67, 1.3):
        share = palette.foreign_share(np.clip(empty * gain, 0, 255).astype(np.uint8))
        assert share is not None and share <= 0.05, (gain, share)


def test_the_palette_says_nothing_until_it_has_seen_the_line() -> None:
    stream = ConveyorStream(101)
    palette = BeltPalette()
    wall = np.full((64, 64, 3), (60, 160, 200), np.uint8)
    for k in range(READY_AFTER - 1):
        palette.learn(crop(stream, 1.0 + k * 0.4))
        assert palette.foreign_share(wall) is None
    palette.learn(crop(stream, 5.0))
    assert palette.foreign_share(wall) == 1.0
    palette.reset()
    assert palette.foreign_share(wall) is None


def test_a_new_product_colour_is_learned_within_seconds() -> None:
    """A line change to a product in a new colour: once frames with product teach it, it is known."""
    stream = ConveyorStream(105)
    palette = learned(stream)
    recoloured = crop(stream, 15.0)[:, :, [1, 2, 0]].copy()  # the same scene in other colours: a new product and belt
    before = palette.foreign_share(recoloured)
    assert before is not None and before > FOREIGN_LIMIT
    for _ in range(6):
        palette.learn(recoloured)
    after = palette.foreign_share(recoloured)
    assert after is not None and after <= 0.05, (before, after)


def test_a_dark_cover_over_most_of_the_view_is_not_the_belt() -> None:
    """A dark cover (a hand or cap in front of the lens) leaving one corner of belt in view: too dark to have a
    colour, but the places it covers were never dark. The same belt learned under a dim light keeps 'dark' known."""
    stream = ConveyorStream(105)
    palette = learned(stream)
    frame = crop(stream, 15.0)
    rng = np.random.default_rng(4)
    covered = frame.copy()
    covered[:, :52] = np.clip(rng.normal(16, 2, covered[:, :52].shape), 0, 255).astype(np.uint8)
    share = palette.foreign_share(covered)
    assert share is not None and share > FOREIGN_LIMIT
    dim = BeltPalette()
    for k in range(30):
        dim.learn((crop(stream, 1.0 + k / 3.0) * 0.12).astype(np.uint8))
    share = dim.foreign_share((frame * 0.12).astype(np.uint8))
    assert share is not None and share <= 0.05
