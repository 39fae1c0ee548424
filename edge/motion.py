"""Is the belt moving? Frame-to-frame belt motion by phase correlation on a small grey image. Pure, no I/O.

A full belt that has stopped starves packaging as surely as a gap, and the alert model cannot see it
(a still belt full of product looks fine). So each frame is reduced to a small grey image
(:func:`small_grey`), and consecutive images are phase-correlated: the peak of the inverse
transform of the normalised cross-power spectrum sits at the shift between them, and its height
says how much of the picture moved together (the reading's confidence).

Made robust on purpose:

* **lighting flicker**: each image is divided by its mean, and phase correlation ignores contrast;
* **static structure** (rails, belt edges, gradients): the mean of every row and every column is
  removed, which erases whatever is constant along either image axis, and the lowest frequencies
  are weighted out; **noise**: the highest frequencies are weighted out too;
* **no texture** (an empty, plain belt): the peak is low, the reading is marked unreliable and the
  last state is kept, so a long gap on a moving belt is not reported as a stopped belt.

A window's speed is the median of its readings, taken **per axis** while they are all sub-pixel: a still
picture's readings are noise around zero (about 0.13 pixels a frame in the small image, as fast as the stopped
limit), which cancels in each axis while a belt's motion does not. Readings of a pixel or more are lengths (a belt
moving half a product pitch a frame can read that shift either way on alternate frames).

The belt is reported **stopped** once every reliable reading for ``stopped_after_s`` was slower than
``stopped_below`` frame widths per second, and moving again once readings are faster for
``moving_after_s``. A belt that moves more than about half a product pitch between two frames is
ambiguous to any frame-to-frame method (the rows look the same one pitch on); keep frame rates up.

The readings also say which way the belt runs in the picture (``across`` or ``down``): the model is
shown every ROI with the flow across (``rois[].flow: down`` turns a box), and :class:`FlowWatch` tells
once when the belt plainly runs the other way than a ROI's ``flow`` says.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

SMALL_WIDTH = 64
# Readings under this many pixels of the small image are what noise does to a still picture as much as motion: a
# window of them is measured per axis (signed), where noise cancels (see BeltMotion._speed).
SUB_PIXEL = 1.0
# Reliable readings (about 0.2 s at 15 frames/s) it takes to call a view still (BeltMotion.still_since).
MIN_STILL_READINGS = 3
# ... judged on at most this many of the latest (about 0.7 s of a running belt at 15 frames/s; a still cloth under
# sensor noise gives a reliable reading on one frame in two or three, so they can span a few seconds; with 6, their
# noise let 4 of 40 noisy covers through, against 2).
STILL_READINGS = 10
# A view counts as still when it moves at under this share of the belt's speed before (BeltMotion.still_since).
STILL_SHARE = 0.2
# ... unless this share of its readings move the belt's way before (and their median at least the stopped limit).
ALONG_SHARE = 0.8
# Seconds of reliable readings kept for that comparison.
HISTORY_S = 4.0
# A picture replaced all at once (BeltMotion.appeared_at), besides the first one: two consecutive images, both with
# texture, whose phase correlation peaks under this. Unrelated pictures peak at 0.17-0.3; a running belt's consecutive
# images at 15 frames/s, gaps and stops included, never under 0.41 (training simulator, 40 streams, 6560 pairs).
JUMP_PEAK = 0.3
# ... both images at least this textured (band-passed energy of the mean-normalised image, _texture): a plain empty
# belt correlates weakly too (peaks of 0.2-0.3 on the second renderer's plainest, whose energy is 0.02-0.04), and it can
# stop with a gap's alert up. A running belt with product: 0.05 and over on 99% of the training simulator's pairs.
JUMP_TEXTURE = 0.05
# ... no further apart than this: at under 4 frames/s a running belt moves so far between frames that its pictures
# correlate by chance or not at all (2-3 frames/s on a fast belt gave jumps after chance readings; an adversarial
# review), and a longer span is frames the daemon skipped while a ROI read unknown ...
JUMP_SPAN_S = 0.25
# ... and the pair before them followed the view (a reliable reading) moving under this many small-image pixels a frame
# (a tenth of its width). A belt that moves a third of the frame between frames (2-5 frames/s on a fast belt) peaks at
# 0.15-0.26 on every pair: each would be a jump, and its stop a held picture (an adversarial review).
JUMP_AFTER_SHIFT = 6.0
# A picture that appeared all at once must be read still and surely (a reading peaking at APPEAR_CONFIRM_PEAK or more,
# under a pixel) within this many pairs, or it did not appear: it was a view the readings cannot follow rather than a
# picture held up. A picture held still peaks at 0.8-1.0 under sensor noise; a belt moving half the frame between
# frames (2 frames/s) peaked at 0.29-0.38 and, taking one chance reading for a still one, read its stop as a held
# picture (an adversarial review).
APPEAR_CONFIRM_PAIRS = 3
APPEAR_CONFIRM_PEAK = 0.6
# One reliable reading: (time, signed frame widths per second across and down, their length, shift in small-image
# pixels, direction).
Reading = tuple[float, float, float, float, float, str | None]


@dataclass(frozen=True)
class MotionRules:
    """When the belt counts as stopped or moving."""

    stopped_below: float = 0.03  # frame widths per second
    stopped_after_s: float = 1.5
    moving_after_s: float = 0.5
    min_confidence: float = 0.35  # phase-correlation peak height (0-1) for a reading to count; unrelated images reach 0.3
    window_s: float = 1.0  # speeds are the median of the reliable readings over this window


@dataclass(frozen=True)
class MotionReading:
    """The belt speed (frame pixels per second; None without a reliable reading in the window) and the stopped state."""

    speed_px_s: float | None
    stopped: bool
    confidence: float
    direction: str | None = None  # "across" or "down" the picture: what most moving readings in the window say


def small_grey(frame: npt.NDArray[np.uint8], width: int = SMALL_WIDTH) -> npt.NDArray[np.float32]:
    """A ~``width``-pixel-wide grey image of an HxWx3 frame: the green channel, averaged over column blocks,
    every block-th row (cheap: it touches a small fraction of the frame)."""
    w = frame.shape[1]
    block = max(1, w // width)
    cols = (w // block) * block
    rows = frame[block // 2 :: block, :cols, 1]
    return np.asarray(rows.reshape(rows.shape[0], cols // block, block).mean(axis=2, dtype=np.float32), dtype=np.float32)


@lru_cache(maxsize=8)
def _weights(shape: tuple[int, int]) -> tuple[npt.NDArray[np.float32], float, npt.NDArray[np.float32]]:
    """Band-pass weights over the real FFT's half plane, their full-plane sum, and the Hann window."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f2 = fx * fx + fy * fy
    # Band-pass: drop what the lighting and the lens do (lowest frequencies) and pixel noise (highest).
    weights = (np.exp(-f2 / (2 * 0.12**2)) * (1.0 - np.exp(-f2 / (2 * 0.02**2)))).astype(np.float32)
    full = np.fft.fftfreq(shape[1])[None, :]
    full_sum = float((np.exp(-(full**2 + fy**2) / (2 * 0.12**2)) * (1.0 - np.exp(-(full**2 + fy**2) / (2 * 0.02**2)))).sum())
    window = np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)
    return weights, full_sum, window


def _prepare(grey: npt.NDArray[np.float32]) -> npt.NDArray[np.complex64]:
    g = grey / np.float32(max(float(grey.mean()), 1.0))
    g = g - g.mean(axis=1, keepdims=True) - g.mean(axis=0, keepdims=True) + g.mean()
    return np.fft.rfft2(g * _weights(g.shape)[2]).astype(np.complex64)


def _texture(spectrum: npt.NDArray[np.complex64], shape: tuple[int, int]) -> float:
    """How much texture a :func:`_prepare` spectrum holds in the band the correlation uses (0 for a plain picture)."""
    return float(np.sum(np.abs(spectrum) ** 2 * _weights(shape)[0])) / (shape[0] * shape[1])


def phase_correlate(a: npt.NDArray[np.complex64], b: npt.NDArray[np.complex64], shape: tuple[int, int]) -> tuple[float, float, float]:
    """(dx, dy, peak) such that image b is image a moved by (dx, dy); both given as :func:`_prepare` spectra
    of images of ``shape``. The peak is 1.0 for identical images and near 0 for unrelated ones."""
    weights, full_sum, _ = _weights(shape)
    product = b * np.conj(a)
    cross = product / np.maximum(np.abs(product), np.float32(1e-12)) * weights
    surface = np.fft.irfft2(cross, s=shape) * (shape[0] * shape[1] / full_sum)
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    peak = float(surface[iy, ix])
    h, w = surface.shape

    def refine(minus: float, centre: float, plus: float) -> float:
        denominator = minus - 2 * centre + plus
        return 0.0 if abs(denominator) < 1e-12 else float(np.clip(0.5 * (minus - plus) / denominator, -0.5, 0.5))

    dx = ix + refine(surface[iy, (ix - 1) % w], peak, surface[iy, (ix + 1) % w])
    dy = iy + refine(surface[(iy - 1) % h, ix], peak, surface[(iy + 1) % h, ix])
    dx = dx - w if dx > w / 2 else dx
    dy = dy - h if dy > h / 2 else dy
    return float(dx), float(dy), peak


def direction_of(dx: float, dy: float) -> str | None:
    """"across" or "down" the picture for a shift of (dx, dy) pixels; None when neither axis is twice the other
    (a camera turned by 30-60 degrees, or a reading too small to say)."""
    if abs(dx) >= 2 * abs(dy) and dx != 0:
        return "across"
    if abs(dy) >= 2 * abs(dx) and dy != 0:
        return "down"
    return None


class FlowWatch:
    """Says once per ROI when the belt has run the other way than the ROI's ``flow`` for ``hold_s``. Pure.

    The model reads a flow across the picture far better than one down it (docs/detection.md, "A flow down the
    picture"), and a camera can be mounted either way: an installer who missed ``rois[].flow`` learns it from the log.
    """

    def __init__(self, hold_s: float = 10.0) -> None:
        self.hold_s = hold_s
        self._since: dict[str, float] = {}
        self._told: set[str] = set()

    def update(self, direction: str | None, flows: Mapping[str, str], now: float) -> list[str]:
        """The ROIs whose ``flow`` the belt's ``direction`` has contradicted for ``hold_s``, each named once."""
        newly: list[str] = []
        if direction is None:  # no agreed reading (a stopped belt, a plain empty one): neither for nor against
            return newly
        for roi, flow in flows.items():
            if direction == flow:
                self._since.pop(roi, None)
                continue
            since = self._since.setdefault(roi, now)
            if now - since >= self.hold_s and roi not in self._told:
                self._told.add(roi)
                newly.append(roi)
        return newly

    def reset(self) -> None:
        """Forget (a new config: its ROIs may say otherwise)."""
        self._since.clear()
        self._told.clear()


class BeltMotion:
    """Belt speed and the stopped condition from a stream of :func:`small_grey` images and their times."""

    def __init__(self, rules: MotionRules, frame_width: int) -> None:
        self.rules = rules
        self.frame_width = frame_width
        self._previous: tuple[npt.NDArray[np.complex64], float, tuple[int, int], float] | None = None
        # When the picture appeared all at once (the first one, or one that replaced the last), until seen moving since.
        self.appeared_at: float | None = None
        # The picture before it appeared (its spectrum and shape) and appeared_at then: if that picture comes back (a hand
        # over a stopped belt, gone again; the camera reopened on the same view), so does that state.
        self._before: tuple[npt.NDArray[np.complex64], tuple[int, int], float | None] | None = None
        self._appeared_pairs: int | None = 0  # pairs since it appeared without a sure still reading (None: one came)
        self._followed = False  # whether the last pair gave a reliable reading under JUMP_AFTER_SHIFT
        self._readings: deque[Reading] = deque()
        self._history: deque[Reading] = deque()  # the same, HISTORY_S long
        self._slow_since: float | None = None
        self._fast_since: float | None = None
        self.stopped = False

    def reset(self) -> None:
        """Forget the past (after the camera was reopened), but for the last picture: if the reopened camera shows it
        again, it did not appear all at once."""
        if self._before is None and self._previous is not None:
            self._before = (self._previous[0], self._previous[2], self.appeared_at)
        self._previous, self._slow_since, self._fast_since, self.appeared_at = None, None, None, None
        self._followed = False
        self._readings.clear()
        self._history.clear()
        self.stopped = False

    def update(self, grey: npt.NDArray[np.float32], now: float) -> MotionReading:
        """Feed one small grey image taken at monotonic time ``now``."""
        shape = (int(grey.shape[0]), int(grey.shape[1]))
        spectrum = _prepare(grey)
        texture = _texture(spectrum, shape)
        previous, self._previous = self._previous, (spectrum, now, shape, texture)
        confidence, reliable, sure_still = 0.0, False, False
        if previous is None:  # the first picture (since start, or since the camera was reopened) has no past either
            self._appear(now, None)
        elif previous[2] == shape and now > previous[1]:
            dx, dy, confidence = phase_correlate(previous[0], spectrum, shape)
            shift = math.hypot(dx, dy)
            if (confidence < JUMP_PEAK and min(texture, previous[3]) >= JUMP_TEXTURE and self._followed
                    and now - previous[1] <= JUMP_SPAN_S):
                self._appear(now, (previous[0], shape))
            reliable = confidence >= self.rules.min_confidence
            self._followed = reliable and shift < JUMP_AFTER_SHIFT
            sure_still = confidence >= APPEAR_CONFIRM_PEAK and shift < SUB_PIXEL
            if reliable:
                per_s = 1.0 / grey.shape[1] / (now - previous[1])
                reading = (now, dx * per_s, dy * per_s, shift * per_s, shift, direction_of(dx, dy))
                self._readings.append(reading)
                self._history.append(reading)
        while self._readings and self._readings[0][0] < now - self.rules.window_s:
            self._readings.popleft()
        while self._history and self._history[0][0] < now - HISTORY_S:
            self._history.popleft()
        if self.appeared_at is not None:
            self._settle_appearance(spectrum, shape, sure_still, now)
        speed = self._speed()
        self._update_state(speed, now)
        return MotionReading(None if speed is None else speed * self.frame_width, self.stopped, confidence, self._direction())

    def still_since(self, since: float) -> bool:
        """Whether nothing in the view has moved since monotonic time ``since``, judged on the last
        :data:`STILL_READINGS` reliable readings since then (so a view that moves again counts as moving within a
        few readings): at least :data:`MIN_STILL_READINGS` of them, and their speed (as :meth:`_speed` measures a
        window) under ``stopped_below``, or under :data:`STILL_SHARE` of the speed the belt ran at in the seconds
        before ``since`` while not moving steadily the way it ran (a cloth held still reads sensor noise at 0.05-0.1
        frame widths/s on a few readings, over the absolute limit; the belt before it ran at 0.47). Without enough
        reliable readings (a plain empty belt, a view the scene judges skip) it is not known to be still: False."""
        readings = self._latest_since(since)
        if len(readings) < MIN_STILL_READINGS:
            return False
        speed = self._speed(readings)
        if speed is None:
            return False
        if speed < self.rules.stopped_below:
            return True
        before = [r for r in self._history if r[0] < since]
        if len(before) < MIN_STILL_READINGS or speed >= STILL_SHARE * statistics.median(r[3] for r in before):
            return False
        # Slower than a fifth of the belt before: still, unless the readings keep moving the belt's way. A belt that
        # slows as a gap arrives does (an adversarial review: slowed to 0.07 widths/s, 2.3 times the stopped limit,
        # 10 of 20 gap alerts came 2-4 s late); a still cloth's sensor noise has no steady sign.
        return not self._steadily_along(readings, before)

    def _appear(self, now: float, before: tuple[npt.NDArray[np.complex64], tuple[int, int]] | None) -> None:
        """The picture appeared all at once at ``now``; ``before`` is the picture it replaced and its shape (None for the
        first picture, whose reference, if any, was kept by :meth:`reset`)."""
        if self._before is None and before is not None:  # the first of several jumps
            self._before = (*before, self.appeared_at)
        # One picture held up after another (a hand that shifts) keeps the first time: the view has not been seen moving
        # since, and it stays a held picture across the change (a new time would need new still readings: `ok` flickered
        # for 0.2 s at each change).
        self.appeared_at = now if self.appeared_at is None else self.appeared_at
        self._appeared_pairs = 0

    def _settle_appearance(self, spectrum: npt.NDArray[np.complex64], shape: tuple[int, int], sure_still: bool, now: float) -> None:
        """End an appearance once the view is seen moving, once the picture it replaced is back (its state with it), or
        when no sure still reading follows it soon (nothing says it is a picture held up)."""
        assert self.appeared_at is not None
        if self._before is not None and self._before[1] == shape:
            if phase_correlate(self._before[0], spectrum, shape)[2] >= self.rules.min_confidence:
                self.appeared_at, self._before, self._appeared_pairs = self._before[2], None, None
                return
        if self.moving_since(self.appeared_at):
            self.appeared_at, self._before = None, None
        elif self._appeared_pairs is not None and now > self.appeared_at:
            self._appeared_pairs = None if sure_still else self._appeared_pairs + 1
            if self._appeared_pairs is not None and self._appeared_pairs >= APPEAR_CONFIRM_PAIRS:
                self.appeared_at = None if self._before is None else self._before[2]
                self._before, self._appeared_pairs = None, None

    def held_picture(self) -> bool:
        """Whether the view may be a picture held in front of the camera: it appeared all at once and has stood still
        since (:meth:`still_since`), never seen moving. A belt never replaces its whole picture from one frame to the
        next, so a picture that did is something else: a camera knocked elsewhere, a hand or a cloth put up close, an
        image file replayed in a loop. Nor can the first picture after start be told from one, until the belt is seen
        running. A belt that stops after running is the same picture slowing down: never a held picture."""
        return self.appeared_at is not None and self.still_since(self.appeared_at)

    def moving_since(self, since: float) -> bool:
        """Whether the view has been seen moving the way a belt runs since monotonic time ``since``: at least
        :data:`MIN_STILL_READINGS` reliable readings since then (the last :data:`STILL_READINGS`), their speed at
        least ``stopped_below`` and :data:`ALONG_SHARE` of them moving the way of their median. A cloth held still
        under sensor noise reads 0.05-0.1 frame widths/s with no steady sign; a plain view gives no reliable reading:
        neither is seen moving."""
        readings = self._latest_since(since)
        if len(readings) < MIN_STILL_READINGS:
            return False
        speed = self._speed(readings)
        return speed is not None and speed >= self.rules.stopped_below and self._steadily_along(readings, readings)

    def _latest_since(self, since: float) -> list[Reading]:
        """The last :data:`STILL_READINGS` reliable readings taken at or after ``since``."""
        return [r for r in self._history if r[0] >= since][-STILL_READINGS:]

    def _steadily_along(self, readings: Sequence[Reading], reference: Sequence[Reading]) -> bool:
        """Whether ``readings`` move steadily the way of ``reference``'s median: their median projection on it at least
        ``stopped_below`` and :data:`ALONG_SHARE` of them positive (False when that way is no way at all)."""
        along = (statistics.median(r[1] for r in reference), statistics.median(r[2] for r in reference))
        norm = math.hypot(*along)
        if norm == 0.0:
            return False
        projections = [(vx * along[0] + vy * along[1]) / norm for _, vx, vy, *_ in readings]
        return (statistics.median(projections) >= self.rules.stopped_below
                and sum(p > 0 for p in projections) >= ALONG_SHARE * len(projections))

    def _speed(self, readings: Sequence[Reading] | None = None) -> float | None:
        """The window's speed in frame widths per second (None without a reliable reading): the median of the
        readings' lengths, or, while their median shift is sub-pixel, the length of their per-axis medians. A
        stopped belt's readings are sub-pixel noise whose lengths' median sat at the stopped limit (0.03-0.07
        widths/s on 20 of 40 simulated empty belts that stopped, never reported); per axis it is 0.003-0.008."""
        readings = self._readings if readings is None else readings
        if not readings:
            return None
        if statistics.median(shift for *_, shift, _ in readings) >= SUB_PIXEL:
            return float(statistics.median(speed for _, _, _, speed, _, _ in readings))
        return math.hypot(statistics.median(vx for _, vx, *_ in readings),
                          statistics.median(vy for _, _, vy, *_ in readings))

    def _direction(self) -> str | None:
        """The way the belt runs when at least 3 moving readings in the window agree and 80% of them do."""
        moving = [d for _, _, _, speed, _, d in self._readings if speed >= self.rules.stopped_below]
        for way in ("across", "down"):
            if len(moving) >= 3 and moving.count(way) >= 0.8 * len(moving):
                return way
        return None

    def _update_state(self, speed: float | None, now: float) -> None:
        if speed is None:
            return  # nothing reliable to go on (an empty, plain belt): keep the last state
        if speed < self.rules.stopped_below:
            self._fast_since = None
            self._slow_since = self._slow_since if self._slow_since is not None else now
            if not self.stopped and now - self._slow_since >= self.rules.stopped_after_s:
                self.stopped = True
        else:
            self._slow_since = None
            self._fast_since = self._fast_since if self._fast_since is not None else now
            if self.stopped and now - self._fast_since >= self.rules.moving_after_s:
                self.stopped = False
