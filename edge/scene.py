"""Is this region of interest a belt with product at all? Pure logic on the pixels the model sees.

A hand over the belt, a covered lens, a camera knocked towards a wall, glare that blows the picture
out, or a failing sensor's noise: the alert model's output means nothing then, so the region reads
``unknown`` instead of ``ok`` or ``alert``. Two judges, combined with "either says unknown":

* the model's own **unknown head** (a second small output on the shared convolutions, trained with
  such scenes as outliers), when the model has one; its threshold comes from the model card;
* cheap **image statistics** on the 64x64 crop, each with a limit from the card (calibrated on the
  validation set's belt frames): the share of pixels blown out towards white (glare), the correlation between
  neighbouring pixels (noise has none), the residual detail after removing a lighting gradient
  (walls, covers and blank views have almost none), the mean brightness (a capped lens), and, with
  ``scene.dark_covers`` (off by default, see :class:`LightBelt`), the share of the view that is dark and
  plain (a cloth over most of the lens, a corner of belt still showing).

A user's own single-output model has no unknown head; then the statistics judge alone.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

SATURATION_LEVEL = 250
# A blown-out pixel has a channel at SATURATION_LEVEL and every channel at least BLOWN_FLOOR: white, as a sensor
# clipped in every channel gives it. A brightly lit cream belt clips red with green and blue near 230 and 205 (the
# second renderer's belt 202: a quarter of its frames read as glare at a floor of 200), and glare's blown pixels
# are 93% at 250 or more in every channel.
BLOWN_FLOOR = 240
BLOCK = 4  # detail: means of 4x4 blocks of the half-resolution grid (8x8 pixels of the crop): noise averages out
# A block of the view is "dark and plain" when its mean grey level is below DARK_LEVEL and its own standard
# deviation below PLAIN_STD: a black cloth under room light (a blind renderer's cover: level 18, std 2.8). An empty
# black belt, or a dim one on a camera that smooths its noise away, is just as dark and plain: see LightBelt.
DARK_LEVEL = 22.0
PLAIN_STD = 3.0
# A cover hides part of a view whose light has not changed: the brightest blocks it leaves are at least this share
# as bright as the ROI's brightest with product usually are (a blind renderer's soft-edged cover: 0.58). After the
# lights dim to 40%, an empty belt is dark all over (0.4).
STILL_LIT = 0.5


@dataclass(frozen=True)
class SceneRules:
    """Limits for the scene judges; a model card carries the calibrated values."""

    unknown_threshold: float | None = None  # the model's unknown probability at or above this -> unknown
    max_saturated: float = 0.25  # share of pixels with a channel >= 250 and none below 240
    min_correlation: float = 0.3  # neighbour-pixel correlation below this -> noise
    min_detail: float = 1.5  # grey-level std of 8x8-pixel block means around a fitted plane, below this -> featureless
    min_brightness: float = 10.0  # mean grey level below this -> covered or unlit
    max_dark_share: float = 0.6  # share of dark, plain blocks above this -> covered (cards before it get this)


@dataclass(frozen=True)
class SceneStatistics:
    saturated: float
    correlation: float
    detail: float
    brightness: float
    dark_share: float = 0.0  # share of 8x8-pixel blocks that are dark and plain
    dark_pixels: float = 0.0  # share of (sampled) pixels darker than DARK_LEVEL
    bright_level: float = 0.0  # grey level of the second-brightest 8x8-pixel block: how lit the view's lit part is


@dataclass(frozen=True)
class SceneVerdict:
    """``unknown`` and why (empty when the scene is a belt); ``doubtful`` when the frame may not show a belt:
    every unknown frame, and a frame whose unknown probability is above :data:`DOUBT_LEVEL` but below the card's
    threshold. A doubtful frame says nothing about the flow (it does not feed the alert levels) and keeps a
    region that reads unknown from reading the belt again."""

    unknown: bool
    reason: str = ""
    doubtful: bool = False


BELT = SceneVerdict(False, "")
IN_DOUBT = SceneVerdict(False, "", True)
# The scene head's own midpoint. A cover over the lens can hold the head between 0.5 and the card's threshold
# (calibrated for few false unknowns) for seconds, flickering across it while the alert output says "gap" on
# every frame. Full belts sit near 0; on some belts an empty stretch sits in the band too (its frames then hold the
# level the gap's arrival brought), which is why doubt alone never makes a region unknown.
DOUBT_LEVEL = 0.5
# A region held in doubt this long while its level says ok reads unknown: its frames feed no level, so it would read
# 'ok' for as long as, say, a wall the head doubts is in view (a blind renderer's cream wall: every frame between 0.5
# and the card's threshold, the alert output saying "gap"). Only a level that frames with product made ok, or that
# nothing has been fed to (AlertLevels.says_ok: a lane empty from the start that the head doubts on every frame read
# 'ok' for as long as it ran): a level that reads a gap, or is on its way to one, is never withdrawn so (an empty belt
# can hold the head in doubt for the whole gap, and some lanes empty from the start feed a few frames that say "gap").
DOUBT_HOLD_S = 2.0
GAP_WITHDRAW_SHARE = 0.9  # a region that reads a gap reads unknown once this share of its window is judged unknown
DOUBT_HOLD_SHARE = 0.8  # the share of the window in doubt, all through the hold (a belt doubted one frame in three is read)


@lru_cache(maxsize=4)
def _plane(n: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float]:
    """Centred x and y ramps over an n x n grid and their (equal) sum of squares, to fit a lighting plane."""
    ramp = np.arange(n, dtype=np.float32) - np.float32((n - 1) / 2)
    x = np.broadcast_to(ramp[None, :], (n, n)).copy()
    y = np.broadcast_to(ramp[:, None], (n, n)).copy()
    return x, y, float(np.vdot(x, x))


def scene_statistics(rgb64: npt.NDArray[np.uint8], dark_views: bool = True) -> SceneStatistics:
    """The statistics of a 64x64x3 uint8 crop (channel slices rather than axis reductions: a few microseconds
    each). ``dark_views=False`` leaves out those only ``scene.dark_covers`` uses (``dark_share``, ``dark_pixels``
    and ``bright_level`` stay 0): a device without that option does not pay for them."""
    # Every other pixel of every other row: a quarter of the work, and nothing these statistics look for
    # (blown-out areas, uncorrelated noise, missing structure, darkness) is finer than two pixels.
    r, g, b = rgb64[::2, ::2, 0], rgb64[::2, ::2, 1], rgb64[::2, ::2, 2]
    # Blown out towards white: one channel clipped and the others nearly so. A colour cast that clips only the red
    # channel of a brightly lit belt is not glare (a held-out stream read a third of its normal frames as glare so),
    # nor is a bright cream belt (see BLOWN_FLOOR).
    grey = (r.astype(np.float32) + g + b) * np.float32(1.0 / 3.0)
    saturated = 0.0
    if float(grey.max()) >= (SATURATION_LEVEL + 2 * BLOWN_FLOOR) / 3:  # else no pixel can be blown out: skip the test
        blown = (np.maximum(np.maximum(r, g), b) >= SATURATION_LEVEL) & (np.minimum(np.minimum(r, g), b) >= BLOWN_FLOOR)
        saturated = float(np.count_nonzero(blown)) / r.size
    brightness = float(grey.mean())
    centred = grey - np.float32(brightness)
    energy = float(np.vdot(centred, centred))
    if energy <= 1e-3 * grey.size:
        correlation = 1.0  # a flat picture is not noise; 'detail' judges it
    else:
        across = float(np.vdot(centred[:, 1:], centred[:, :-1])) + float(np.vdot(centred[1:], centred[:-1]))
        correlation = across / (2.0 * energy)
    n = grey.shape[0] // BLOCK
    rows = centred[0 : n * BLOCK : BLOCK] + centred[1 : n * BLOCK : BLOCK] + centred[2 : n * BLOCK : BLOCK] + centred[3 : n * BLOCK : BLOCK]
    block_means = (rows[:, 0 : n * BLOCK : BLOCK] + rows[:, 1 : n * BLOCK : BLOCK] + rows[:, 2 : n * BLOCK : BLOCK]
                   + rows[:, 3 : n * BLOCK : BLOCK]) * np.float32(1.0 / (BLOCK * BLOCK))
    blocks = block_means - np.float32(block_means.mean())
    x, y, norm = _plane(n)
    residual = blocks - np.float32(float(np.vdot(blocks, x)) / norm) * x - np.float32(float(np.vdot(blocks, y)) / norm) * y
    detail = float(np.sqrt(np.vdot(residual, residual) / residual.size))
    if not dark_views:
        return SceneStatistics(saturated, correlation, detail, brightness)
    # The second-brightest block rather than the brightest: one glint does not make a dim view lit.
    bright_level = float(np.partition(block_means.ravel(), block_means.size - 2)[-2]) + brightness
    dark_share = dark_pixels = 0.0
    if float(grey.min()) < DARK_LEVEL:  # else no pixel, and no block, can be dark: skip the test
        dark_pixels = float(np.count_nonzero(grey < np.float32(DARK_LEVEL))) / grey.size
        squares = centred * centred
        rows_sq = (squares[0 : n * BLOCK : BLOCK] + squares[1 : n * BLOCK : BLOCK] + squares[2 : n * BLOCK : BLOCK]
                   + squares[3 : n * BLOCK : BLOCK])
        block_squares = (rows_sq[:, 0 : n * BLOCK : BLOCK] + rows_sq[:, 1 : n * BLOCK : BLOCK] + rows_sq[:, 2 : n * BLOCK : BLOCK]
                         + rows_sq[:, 3 : n * BLOCK : BLOCK]) * np.float32(1.0 / (BLOCK * BLOCK))
        dark = block_means < np.float32(DARK_LEVEL - brightness)  # block means are centred on the crop's mean
        plain = block_squares - block_means * block_means < np.float32(PLAIN_STD * PLAIN_STD)
        dark_share = float(np.count_nonzero(dark & plain)) / dark.size
    return SceneStatistics(saturated, correlation, detail, brightness, dark_share, dark_pixels, bright_level)


def judge_statistics(stats: SceneStatistics, rules: SceneRules, belt_level: float | None = None) -> SceneVerdict:
    """The image statistics' verdict alone. ``belt_level``: the ``bright_level`` this ROI shows with product on its
    light belt (:class:`LightBelt`; None until known). Only then is a view mostly dark and plain a cover, and only
    while the rest of it is still lit as before: the same view after the lights dimmed is a dim belt, not a cover."""
    if stats.saturated > rules.max_saturated:
        return SceneVerdict(True, f"glare: {stats.saturated:.0%} of pixels blown out (limit {rules.max_saturated:.0%})")
    if stats.brightness < rules.min_brightness:
        return SceneVerdict(True, f"covered or unlit: mean level {stats.brightness:.1f} < {rules.min_brightness:.1f}")
    if belt_level is not None and stats.dark_share > rules.max_dark_share and stats.bright_level >= STILL_LIT * belt_level:
        return SceneVerdict(True, f"covered: {stats.dark_share:.0%} of the view dark and plain (limit {rules.max_dark_share:.0%})")
    if stats.detail < rules.min_detail:
        return SceneVerdict(True, f"featureless view: detail {stats.detail:.2f} < {rules.min_detail:.2f}")
    if stats.correlation < rules.min_correlation:
        return SceneVerdict(True, f"noise: neighbour correlation {stats.correlation:.2f} < {rules.min_correlation:.2f}")
    return BELT


def judge_scene(rgb64: npt.NDArray[np.uint8], unknown_probability: float | None, rules: SceneRules,
                stats: SceneStatistics | None = None) -> SceneVerdict:
    """Whether the 64x64 crop the model saw is a belt with product; model head first, then statistics.

    ``stats`` lets a caller reuse statistics computed a moment ago (see :func:`combine_verdicts`).
    """
    return combine_verdicts(unknown_probability, judge_statistics(stats if stats is not None else scene_statistics(rgb64), rules),
                            rules)


def combine_verdicts(unknown_probability: float | None, statistics: SceneVerdict, rules: SceneRules) -> SceneVerdict:
    """The scene head's probability and the image statistics' verdict, combined: unknown if either says so, in
    doubt when the head is at or over :data:`DOUBT_LEVEL`.

    The statistics judge conditions that last seconds, so a frame loop may judge them a few times a second and
    combine that verdict with the head's on every frame (the daemon's pipeline does, which keeps the scene
    judges near a fifth of the bundled model's invoke)."""
    threshold = rules.unknown_threshold
    if unknown_probability is not None and threshold is not None and unknown_probability >= threshold:
        return SceneVerdict(True, f"not a belt scene: model unknown probability {unknown_probability:.2f} >= {threshold:.2f}", True)
    if statistics.unknown:
        return statistics if statistics.doubtful else SceneVerdict(True, statistics.reason, True)
    if unknown_probability is not None and threshold is not None and unknown_probability >= min(DOUBT_LEVEL, threshold):
        return IN_DOUBT
    return statistics


class DarkOnset:
    """Whether one ROI's view went dark and plain all at once, which is how a cover arrives. Pure.

    A cloth, a coat or a hand thrown over the lens darkens most of the view between two readings of the statistics
    (dark share 0 -> 0.75); an empty stretch of belt in a shadow darkens it only as fast as the belt brings it in (a
    gap travelling into a shadow over 80% of the view: 0.22 as the shadow falls over product, over 0.6 some 2.5 s
    later). With ``scene.sudden_covers`` (the default) the dark-view rule applies once the view's dark share goes over
    the limit from a reading with at most ``lit_below`` of it dark, the one before (0.5-0.6 s earlier at any frame
    rate: counted in seconds, a 1 s window held two readings at 10 and 20 frames/s and an adversarial review lost a
    fast gap coming into a shadow so), and for as long as it stays over; a view dark from the start, or one that
    darkens over two readings or more, is left to the other judges.
    """

    def __init__(self, lit_below: float = 0.15) -> None:
        self.lit_below = lit_below
        self._last: float | None = None  # the previous reading's dark share
        self.covered = False

    def see(self, dark_share: float, limit: float) -> bool:
        """Feed one reading of the view's dark share (at the statistics' cadence); return whether the view went dark
        all at once and still is."""
        if dark_share <= limit:
            self.covered = False
        elif not self.covered:
            self.covered = self._last is not None and self._last <= self.lit_below
        self._last = dark_share
        return self.covered


class LightBelt:
    """Whether one ROI's belt has shown itself light, which arms the dark-view rule there. Pure.

    A view mostly dark and plain is a cover only where the belt is not dark itself: on a black belt, or under dim
    light on a camera that smooths its noise away, an empty stretch is just as dark and plain, and it must alert (an
    adversarial review lost 16% of the gaps in lane crops of black belts to the rule). So the rule waits until the
    ROI has shown product on a belt with few dark pixels: over its last ``frames`` such frames (fed at the statistics'
    cadence), the median share of dark pixels is at most ``dark_pixels_below``. A line whose belt turns dark (a lamp
    fails) disarms it again after as many frames.
    """

    def __init__(self, frames: int = 25, dark_pixels_below: float = 0.1) -> None:
        self.dark_pixels_below = dark_pixels_below
        self._dark: deque[float] = deque(maxlen=frames)
        self._levels: deque[float] = deque(maxlen=frames)
        self.level: float | None = None  # the view's usual bright_level with product, once the belt has shown itself light

    def see(self, stats: SceneStatistics) -> None:
        """Feed the statistics of a frame in which the model sees product and the judges see a belt."""
        self._dark.append(stats.dark_pixels)
        self._levels.append(stats.bright_level)
        light = len(self._dark) == self._dark.maxlen and statistics.median(self._dark) <= self.dark_pixels_below
        self.level = statistics.median(self._levels) if light else None


class SceneWatch:
    """Debounces one region's per-frame scene verdicts into a steady "not a belt scene" condition. Pure.

    A single frame proves little either way (a hand enters over a few frames; a scene head may call
    one odd belt frame unknown), so the region reads unknown once at least ``enter_share`` of the
    verdicts of the last ``window_s`` (and at least ``min_frames`` of them) were doubtful, one of them
    at least unknown, and reads the belt again once no more than ``exit_share`` are doubtful. The
    hysteresis keeps a scene that the judges call unknown most of the time (a hand: about two frames
    in three; a cover that holds the head just under its threshold: one in three) from flickering.

    While the region's level reads a gap, doubt does not count: :data:`GAP_WITHDRAW_SHARE` of the window must be
    judged unknown.
    Doubt without an unknown frame makes the region unknown only while its level reads a full flow (a stale ok,
    see :data:`DOUBT_HOLD_S`): never while it reads a gap. ``held_in_doubt``: at least :data:`DOUBT_HOLD_SHARE` of
    the window is in doubt now; ``held``: the region reads unknown by that rule alone.
    """

    def __init__(self, window_s: float, min_frames: int, enter_share: float = 0.5, exit_share: float = 0.2) -> None:
        self.window_s, self.min_frames = window_s, min_frames
        self.enter_share, self.exit_share = enter_share, exit_share
        self._verdicts: deque[tuple[float, bool, bool]] = deque()  # (time, unknown, doubtful)
        self._unknowns = self._doubts = 0
        self._doubt_since: float | None = None  # since when at least DOUBT_HOLD_SHARE of the window has been in doubt
        self.unknown = self.held = False
        self.reason = ""

    @property
    def held_in_doubt(self) -> bool:
        return self._doubt_since is not None

    @property
    def contested(self) -> bool:
        """Half the window in doubt, one frame of it judged unknown: what makes a region that reads the belt read
        unknown. A region that reads a gap keeps its level then (see :data:`GAP_WITHDRAW_SHARE`), and its frames feed
        no level either: a hand over a gap shows belt beside it, and those frames turned the gap's alert to ok."""
        return bool(self._unknowns) and self._doubts >= self.enter_share * len(self._verdicts)

    def update(self, verdict: SceneVerdict, now: float, reads_ok: bool = False, reads_gap: bool = False) -> bool:
        """Feed the verdict of the frame taken at monotonic ``now``; return whether the region reads unknown.
        ``reads_ok``: the region's level says ok, made so by frames with product or by nothing fed yet
        (:attr:`edge.levels.AlertLevels.says_ok`; then a long doubt alone makes it unknown);
        ``reads_gap``: it reads a gap (warning or alert: then only frames judged unknown, most of the window, do)."""
        doubtful = verdict.doubtful or verdict.unknown
        self._verdicts.append((now, verdict.unknown, doubtful))
        self._unknowns += verdict.unknown
        self._doubts += doubtful
        while self._verdicts and self._verdicts[0][0] <= now - self.window_s:
            _, was_unknown, was_doubtful = self._verdicts.popleft()
            self._unknowns -= was_unknown
            self._doubts -= was_doubtful
        if verdict.unknown:
            self.reason = verdict.reason
        share = self._doubts / len(self._verdicts)
        # Doubt alone makes a region unknown only after DOUBT_HOLD_S, and only while its level reads a full flow: an
        # empty belt can hold the bundled scene head between its midpoint and the card's threshold for as long as the
        # gap lasts, and that gap must stay an alert.
        if share < DOUBT_HOLD_SHARE:
            self._doubt_since = None
        elif self._doubt_since is None:
            self._doubt_since = now
        held = 0.0 if self._doubt_since is None else now - self._doubt_since
        # A gap's level is withdrawn only on strong evidence: an empty belt can hold the head in doubt and cross its
        # threshold in bursts (an adversarial review: 1-34% of a gap's frames, up to 7 frames in 9, on 10 of 61 of the
        # simulator's belts). A scene the head or the statistics call unknown on almost every frame still does.
        evidence, needed = (self._unknowns, GAP_WITHDRAW_SHARE) if reads_gap else (self._doubts, self.enter_share)
        if not self.unknown and self._unknowns and evidence >= self.min_frames and evidence >= needed * len(self._verdicts):
            self.unknown = True
        elif not self.unknown and reads_ok and self._doubts >= self.min_frames and held >= DOUBT_HOLD_S:
            self.unknown = self.held = True
            self.reason = f"in doubt for {held:.1f} s while no frame read the belt (model unknown probability over {DOUBT_LEVEL})"
        elif self.unknown and share <= self.exit_share:
            self.unknown = self.held = False
        if self.held and self._unknowns:
            self.held = False  # a frame judged unknown: a scene like any other from now on
        return self.unknown

    def release(self) -> None:
        """The region read unknown by the doubt hold alone, and frames the judges call a belt have since read a gap
        (``edge.pipeline``): the flow is judged again, not stale, so the region reads its level. Should its level say
        ok again with the doubt still there, the hold starts over."""
        self.unknown = self.held = False
        self._doubt_since = None

    def reset(self) -> None:
        self._verdicts.clear()
        self._unknowns = self._doubts = 0
        self._doubt_since = None
        self.unknown = self.held = False
        self.reason = ""
