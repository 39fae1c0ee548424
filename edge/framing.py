"""How many product pitches a region of interest spans along the flow: the alert spec's framing check.

The alert spec (docs/alert-spec.md) defines a gap in product pitches and asks for a view of about 4 to 12 of
them along the flow; the model was trained on 3.5 to 13. A camera framed tighter makes one missing row a large
share of the view, which the model reads as a gap (the second renderer's belt 202, 3.45 pitches: 7 false alerts in
a simulated hour, all single missing rows); framed wider, a 2-pitch gap is a sliver. Nothing else on the device
measures this, and an engineer setting up a camera cannot easily count pitches on a moving belt.

Rows of product repeat along the flow, so the region's brightness profile along the flow (each position averaged
across the flow) is periodic with one period per pitch: the peak of its spectrum, in cycles per view, is the number
of pitches in view. Each reading is one frame with product in view; :class:`FramingWatch` takes the median of
several and speaks only when most readings agree with it.

Measured (``python -m benchmarks.framing``; docs/detection.md, "Framing"): on the training simulator's streams,
where the method was made, 55 of 60 belts within 5% of the truth, 2 silent, 3 confidently wrong (a striped surround in
a whole-frame view, irregular bars, square biscuits read at twice their rate); on the second renderer's, never used to
make it, 63 of 64 within 5% (median error 0.15%), 1 silent, and the one belt under 3.5 pitches warned about.
What it cannot do: read a belt without product in view or product laid without rows (it then says nothing), or tell
a square product's rows from rows at twice their rate (it then warns only of a view too short, never too wide).

Pure logic: the daemon gives it frames and logs what it finds.
"""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np
import numpy.typing as npt

from edge.preprocess import Box

MIN_PITCHES, MAX_PITCHES = 3.5, 13.0  # what the bundled model was trained on (the spec advises 4 to 12)
LOW_CYCLES, HIGH_CYCLES = 2.0, 24.0  # the search band, in cycles per view
PAD = 8  # zero-padding of the profile: the peak is read to an eighth of a cycle per view
READINGS = 15  # readings in the median
AGREE_SHARE = 0.8  # the share of readings within AGREE_WITHIN of the median for the median to be reported
AGREE_WITHIN = 0.05
HALF_PEAK = 0.25  # a peak at half the frequency this strong (power): the reading may be a harmonic (square product)


def along_flow_profile(frame: npt.NDArray[np.uint8], box: Box) -> npt.NDArray[np.float32]:
    """The region's mean brightness at each position along the flow, at the frame's own resolution (every fourth line
    across the flow is enough)."""
    h, w = frame.shape[:2]
    top, left = min(round(box.y * h), h - 1), min(round(box.x * w), w - 1)
    bottom, right = max(top + 1, min(h, round((box.y + box.height) * h))), max(left + 1, min(w, round((box.x + box.width) * w)))
    region = frame[top:bottom, left:right]
    # Summed one axis at a time (0.05 ms at 640x480; a mean over both axes at once took 3 ms), every fourth line.
    lines = region[:, ::4] if box.turned else region[::4].transpose(1, 0, 2)  # the flow runs down, or across, the picture
    profile: npt.NDArray[np.float32] = (lines.sum(axis=1, dtype=np.uint32).sum(axis=1) / (3.0 * lines.shape[1])).astype(np.float32)
    return profile


def pitches_in_view(profile: npt.NDArray[np.float32]) -> tuple[float, bool] | None:
    """The strongest repetition of ``profile`` in cycles per view (between 2 and 24), and whether a peak at half that
    rate is strong enough that the reading may be its harmonic; None for a profile too short or flat."""
    n = int(profile.size)
    if n < 4 * HIGH_CYCLES:
        return None
    x = np.linspace(-1.0, 1.0, n)
    values = profile.astype(np.float64)
    values = values - np.polyval(np.polyfit(x, values, 2), x)  # the light's slow gradient is not a repetition
    if float(np.abs(values).max()) < 1.0:  # under one grey level: nothing repeats
        return None
    power = np.abs(np.fft.rfft(values * np.hanning(n), PAD * n)) ** 2
    cycles = np.arange(power.size) / PAD
    band = (cycles >= LOW_CYCLES) & (cycles <= HIGH_CYCLES)
    peak = int(np.argmax(np.where(band, power, 0.0)))
    half = round(peak / 2)
    near_half = power[max(0, half - PAD // 2): half + PAD // 2 + 1]
    ambiguous = cycles[peak] / 2 >= LOW_CYCLES and near_half.size > 0 and float(near_half.max()) >= HALF_PEAK * float(power[peak])
    # Between bins: the vertex of a parabola through the log power of the peak and its neighbours (a view of 3.45
    # pitches read 3.375 or 3.5 on the bins alone, either side of the spec's limit).
    left, centre, right = np.log(power[peak - 1: peak + 2] + 1e-12)
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return float((peak + float(np.clip(offset, -0.5, 0.5))) / PAD), ambiguous


class FramingWatch:
    """One region's readings; :meth:`verdict` is the median once :data:`READINGS` readings mostly agree."""

    def __init__(self) -> None:
        self._readings: deque[tuple[float, bool]] = deque(maxlen=READINGS)

    def see(self, profile: npt.NDArray[np.float32]) -> None:
        """Add a reading of a frame with product in view (the caller decides that)."""
        reading = pitches_in_view(profile)
        if reading is not None:
            self._readings.append(reading)

    def pitches(self) -> float | None:
        """The median number of pitches in view, or None until enough readings agree on it."""
        if len(self._readings) < READINGS:
            return None
        median = statistics.median(p for p, _ in self._readings)
        agreeing = sum(abs(p / median - 1.0) <= AGREE_WITHIN for p, _ in self._readings)
        return median if agreeing >= AGREE_SHARE * len(self._readings) else None

    def outside_spec(self) -> float | None:
        """The median when it lies outside what the model was trained on (a wide reading only when it cannot be the
        harmonic of a square product's rows), else None."""
        median = self.pitches()
        if median is None:
            return None
        if median < MIN_PITCHES:
            return median
        harmonic = sum(ambiguous for _, ambiguous in self._readings) > len(self._readings) / 2
        return median if median > MAX_PITCHES and not harmonic else None

    def reset(self) -> None:
        self._readings.clear()
