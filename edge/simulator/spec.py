"""The alert spec: what counts as a gap in the flow (see docs/alert-spec.md). Pure functions.

A **gap** is a stretch along the flow, across the whole flow (every lane the view covers), in which
no product lies. Its length is measured in product **pitches** (the distance between the centres of
consecutive rows), the way an operator counts missing rows:

    gap_pitches = (empty_length + product_length) / pitch - 1

so ``k`` whole rows missing from a regular flow is a gap of ``k`` pitches, a full belt is about 0,
and an empty stretch that runs out of the view is counted up to the view's edge. A frame (or a
region of interest) is an **alert** when its longest gap is at least ``min_gap_pitches`` (default 2).
A single missing item is never a gap (the other lanes still carry product across that stretch), and
one missing row (1 pitch) is acceptable. A lane's own gap counts only for a region of interest that
covers that lane alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ACCEPTABLE, ALERT = "acceptable", "alert"


@dataclass(frozen=True)
class AlertSpec:
    """When a gap is an alert; datasets render nothing between the two limits (a "don't care" band),
    so a model learns the boundary from cases just either side of it."""

    min_gap_pitches: float = 2.0
    max_acceptable_pitches: float = 1.25

    def __post_init__(self) -> None:
        if not 0.0 < self.max_acceptable_pitches <= self.min_gap_pitches:
            raise ValueError(f"expected 0 < max_acceptable_pitches <= min_gap_pitches, got {self}")

    def label(self, gap_pitches: float) -> str | None:
        """``alert``, ``acceptable``, or None inside the don't-care band."""
        if gap_pitches >= self.min_gap_pitches:
            return ALERT
        if gap_pitches <= self.max_acceptable_pitches:
            return ACCEPTABLE
        return None


DEFAULT_SPEC = AlertSpec()


def longest_empty_stretch(occupied: Iterable[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of the longest part of ``[lo, hi]`` not covered by any of the ``occupied`` intervals."""
    if hi <= lo:
        return 0.0
    spans = sorted((max(a, lo), min(b, hi)) for a, b in occupied if b > lo and a < hi)
    longest, cursor = 0.0, lo
    for start, end in spans:
        if start > cursor:
            longest = max(longest, start - cursor)
        cursor = max(cursor, end)
    return max(longest, hi - cursor)


def gap_pitches(empty_length: float, product_length: float, pitch: float) -> float:
    """An empty length along the flow expressed in missing rows (0 for a regular full flow)."""
    return max(0.0, (empty_length + product_length) / pitch - 1.0)
