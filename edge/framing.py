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
where the method was made, 53 of 60 belts within 5% of the truth, 5 silent, 2 wrong inside the range (a striped
surround in a whole-frame view, irregular bars); on the second renderer's, never used to make it, 63 of 64 within 5%
(median error 0.15%), 1 silent, and the one belt under 3.5 pitches warned about.
What it cannot read (it then says nothing): a belt without product in view, product laid without rows, a view of 2
pitches or fewer or of more than 64 (or finer than 4 pixels a pitch), and square product whose rows show at twice their
rate on most readings (it cannot tell 7 pitches from 14).

Pure logic: the daemon gives it frames and logs what it finds.
"""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np
import numpy.typing as npt

from edge.preprocess import Box, crop_bounds

MIN_PITCHES, MAX_PITCHES = 3.5, 13.0  # what the bundled model was trained on (the spec advises 4 to 12)
LOW_CYCLES = 2.0  # the search band starts here, in cycles per view (a view of 2 pitches or fewer is not read)
MAX_CYCLES = 64.0  # and ends here, or at 4 pixels a cycle on a shorter profile
MIN_PROFILE = 96  # pixels along the flow: 24 cycles at 4 pixels each
PAD = 8  # zero-padding of the profile (to a power of two at least this many times its length): bins of 1/8 cycle or less
READINGS = 15  # readings in the median
AGREE_SHARE = 0.8  # the share of readings within AGREE_WITHIN of the median for the median to be reported
AGREE_WITHIN = 0.05
HALF_PEAK = 0.5  # a peak at half the rate this strong (power): the reading may be its harmonic (square product; on
# the training simulator right readings had up to 0.39, a square product read at twice its rate 0.69)


def along_flow_profile(frame: npt.NDArray[np.uint8], box: Box) -> npt.NDArray[np.float32]:
    """The region's mean brightness at each position along the flow, at the frame's own resolution."""
    top, left, height, width = crop_bounds(frame.shape[0], frame.shape[1], box)  # the pixels the model's crop samples
    region = frame[top: top + height, left: left + width]
    # Summed over contiguous memory, one axis at a time: a mean over two axes at once took 3 ms at 640x480, a sum along
    # strided rows 8 ms at 1920x1080 (an adversarial review); these take 0.06 ms (every fourth row, flow across) and
    # 0.75 ms (every pixel of a whole 1920x1080 frame, flow down).
    if box.turned:  # the flow runs down the picture: one value per row
        sums = region.reshape(region.shape[0], -1).sum(axis=1, dtype=np.uint32)
        count = region.shape[1] * 3
    else:
        rows = region[::4]
        sums = rows.sum(axis=0, dtype=np.uint32).sum(axis=1)
        count = rows.shape[0] * 3
    profile: npt.NDArray[np.float32] = (sums / float(count)).astype(np.float32)
    return profile


def pitches_in_view(profile: npt.NDArray[np.float32]) -> tuple[float, bool] | None:
    """The strongest repetition of ``profile`` in cycles per view (from 2 to 64, at least 4 pixels a cycle), and whether
    a peak at half that rate is strong enough that the reading may be its harmonic; None for a profile too short or
    flat, or whose strongest component in the band is not a peak inside it (a slow gradient rising to its low edge, a
    repetition finer than its high one: with the band ending at 24, a view of 30 pitches read 1.94 and was told to
    widen; an adversarial review)."""
    n = int(profile.size)
    if n < MIN_PROFILE:
        return None
    x = np.linspace(-1.0, 1.0, n)
    values = profile.astype(np.float64)
    values = values - np.polyval(np.polyfit(x, values, 2), x)  # the light's slow gradient is not a repetition
    if float(np.abs(values).max()) < 1.0:  # under one grey level: nothing repeats
        return None
    size = 1 << int(np.ceil(np.log2(PAD * n)))  # a power of two: an awkward length made the transform 10 times slower
    power = np.abs(np.fft.rfft(values * np.hanning(n), size)) ** 2
    per_bin = n / size  # cycles per view
    low, high = int(np.ceil(LOW_CYCLES / per_bin)), int(min(MAX_CYCLES, n / 4.0) / per_bin)
    peak = low + int(np.argmax(power[low: high + 1]))
    # A peak inside the band, stronger than anything within 4 cycles outside it (a tone just past an edge puts the side
    # lobes of its window inside: 70 cycles read 63.5).
    outside = round(4.0 / per_bin)
    beyond = np.concatenate([power[max(0, low - outside): low], power[high + 1: high + 1 + outside]])
    if (peak <= low or peak >= high or not power[peak - 1] < power[peak] > power[peak + 1]
            or (beyond.size and float(beyond.max()) >= float(power[peak]))):
        return None
    reach = max(1, round(0.5 / per_bin))  # half a cycle either side of half the rate
    half = round(peak / 2)
    near_half = power[max(0, half - reach): half + reach + 1]
    ambiguous = peak * per_bin / 2 >= LOW_CYCLES and float(near_half.max()) >= HALF_PEAK * float(power[peak])
    # Between bins: the vertex of a parabola through the log power of the peak and its neighbours (a view of 3.45
    # pitches read 3.375 or 3.5 on the bins alone, either side of the spec's limit).
    left, centre, right = np.log(power[peak - 1: peak + 2] + 1e-12)
    curvature = left - 2.0 * centre + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    return float((peak + float(np.clip(offset, -0.5, 0.5))) * per_bin), ambiguous


class FramingWatch:
    """One region's readings; :meth:`pitches` is their median once :data:`READINGS` readings mostly agree."""

    def __init__(self) -> None:
        self._readings: deque[tuple[float, bool]] = deque(maxlen=READINGS)

    def see(self, profile: npt.NDArray[np.float32]) -> None:
        """Add a reading of a frame with product in view (the caller decides that)."""
        reading = pitches_in_view(profile)
        if reading is not None:
            self._readings.append(reading)

    def pitches(self) -> float | None:
        """The median number of pitches in view, or None until enough readings agree on it, and while most readings
        may be a harmonic (square product whose rows show at twice their rate: a belt of 7 pitches read 14)."""
        if len(self._readings) < READINGS or sum(ambiguous for _, ambiguous in self._readings) > len(self._readings) / 2:
            return None
        median = statistics.median(p for p, _ in self._readings)
        agreeing = sum(abs(p / median - 1.0) <= AGREE_WITHIN for p, _ in self._readings)
        return median if agreeing >= AGREE_SHARE * len(self._readings) else None

    def outside_spec(self) -> float | None:
        """The median when it lies outside what the model was trained on, else None."""
        median = self.pitches()
        return median if median is not None and not MIN_PITCHES <= median <= MAX_PITCHES else None

    def reset(self) -> None:
        self._readings.clear()
