"""The alert spec's arithmetic and the level bands derived from a model's threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.levels import AlertLevels, LevelRules, bands_from_threshold
from edge.simulator import AlertSpec, gap_pitches, longest_empty_stretch


def test_longest_empty_stretch_counts_the_edges_and_merges_overlaps() -> None:
    """Occupied [2,4] and [3,6] in [0,10]: the longest empty part is [6,10] (4); edges count too."""
    assert longest_empty_stretch([(2, 4), (3, 6)], 0, 10) == 4
    assert longest_empty_stretch([(1, 9)], 0, 10) == 1
    assert longest_empty_stretch([], 0, 10) == 10
    assert longest_empty_stretch([(-5, 20)], 0, 10) == 0


def test_missing_rows_are_pitches() -> None:
    """k whole rows missing from a regular flow is a gap of k pitches; a full belt is 0."""
    pitch, length = 40.0, 30.0
    for k in range(0, 5):
        empty = (k + 1) * pitch - length  # from the edge of one product to the edge of the next one present
        assert gap_pitches(empty, length, pitch) == pytest.approx(k)


def test_spec_labels_with_a_dont_care_band() -> None:
    """>= 2 pitches alert, <= 1.25 acceptable, between: no label (datasets render nothing there)."""
    spec = AlertSpec()
    assert spec.label(2.0) == "alert" and spec.label(1.25) == "acceptable" and spec.label(1.6) is None
    with pytest.raises(ValueError):
        AlertSpec(min_gap_pitches=1.0, max_acceptable_pitches=1.5)


@given(st.floats(0.0, 1.0, allow_nan=False))
def test_bands_are_always_valid_levels(threshold: float) -> None:
    """For any threshold: 0 < exit < enter < 1, warning below alert on both edges (what the config demands)."""
    bands = bands_from_threshold(threshold)
    (we, wx), (ae, ax) = bands.warning, bands.alert
    assert 0 < wx < we < 1 and 0 < ax < ae < 1 and we < ae and wx < ax


@pytest.mark.parametrize("threshold", [0.2, 0.45, 0.7])
def test_a_gap_arriving_goes_straight_to_alert(threshold: float) -> None:
    """Frames jump from p=0.02 to p=0.98 (a gap enters) and back: ok -> alert -> ok, no warning in between."""
    bands = bands_from_threshold(threshold)
    levels = AlertLevels("belt", LevelRules.from_bands(0.6, 0.4, 3, bands.warning, bands.alert))
    probabilities = [0.02] * 30 + [0.98] * 30 + [0.02] * 30
    changes = [c for i, p in enumerate(probabilities) if (c := levels.update(p, i / 15.0)) is not None]
    assert [(c.previous, c.level) for c in changes] == [("ok", "alert"), ("alert", "ok")]
    assert np.isclose(bands.alert[0], threshold, atol=1e-3)
