"""Per-frame alert probabilities -> smoothed probability -> debounced levels. Pure logic, no I/O.

Three stages, each guarding against a different kind of noise:

1. **Smoothing**: the mean probability over the last ``window_s`` seconds of frames.
2. **Hysteresis**: a level is entered at ``enter`` and left only below ``exit`` (< enter),
   so a smoothed value hovering at a threshold cannot flip the level back and forth.
3. **Dwell**: a new level must be the target continuously for ``dwell_s`` seconds *and*
   ``min_frames`` frames before it is committed, so one odd frame never changes the level
   however low the frame rate is.

Time is whatever monotonic clock the caller passes (frame capture times), never read here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.state import Level

LEVELS = (Level.OK, Level.WARNING, Level.ALERT)
# The running mean of identical values can land a hair below them (3 * 0.6 / 3 < 0.6 in floats);
# thresholds are compared with this tolerance so "p >= enter" means what it says.
EPSILON = 1e-9


@dataclass(frozen=True)
class LevelRules:
    """Thresholds and timings; ``enter[i]``/``exit[i]`` belong to ``LEVELS[i]`` (index 0 has none)."""

    window_s: float
    dwell_s: float
    min_frames: int
    enter: tuple[float, ...]
    exit: tuple[float, ...]

    @classmethod
    def from_bands(cls, window_s: float, dwell_s: float, min_frames: int,
                   warning: tuple[float, float], alert: tuple[float, float]) -> LevelRules:
        """Rules from (enter, exit) pairs for warning and alert."""
        return cls(window_s, dwell_s, min_frames, (0.0, warning[0], alert[0]), (0.0, warning[1], alert[1]))


@dataclass(frozen=True)
class LevelChange:
    """A committed change of level: the event to publish."""

    roi: str
    level: Level
    previous: Level
    probability: float
    at: float


class AlertLevels:
    """The level state of one region of interest."""

    def __init__(self, roi: str, rules: LevelRules) -> None:
        self.roi = roi
        self.rules = rules
        self._index = 0
        self._window: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self._pending: int | None = None
        self._pending_since = 0.0
        self._pending_frames = 0
        self.smoothed = 0.0
        # Since when the smoothed probability has called for a higher level than the current one (None: it does not),
        # and since when a rise it calls for was first refused (update's may_rise); kept until the rise is committed
        # or no longer called for, so a region read unknown meanwhile goes straight to the level once it commits.
        self.rising_since: float | None = None
        self.held_back_since: float | None = None

    @property
    def level(self) -> Level:
        return LEVELS[self._index]

    @property
    def reads_full(self) -> bool:
        """The frames fed since the start (or the last restart) say the flow is full: the level is ok, at least one
        frame was fed, and the smoothed probability is under the warning band's exit. A level that is ok only
        because nothing has been fed yet, or that is on its way up to a gap, does not read full."""
        return self._index == 0 and bool(self._window) and self.smoothed < self.rules.exit[1]

    @property
    def says_ok(self) -> bool:
        """The level reads ok and no frame fed says otherwise: frames with product made it so (:attr:`reads_full`),
        or nothing has been fed since the start or the last restart. Frames held in doubt are not fed, so such a
        level would go on publishing an ok that nothing checks (``edge.scene.DOUBT_HOLD_S`` ends that)."""
        return self._index == 0 and (not self._window or self.smoothed < self.rules.exit[1])

    def _smooth(self, probability: float, now: float) -> float:
        self._window.append((now, probability))
        self._sum += probability
        horizon = now - self.rules.window_s
        while len(self._window) > 1 and self._window[0][0] <= horizon:
            self._sum -= self._window.popleft()[1]
        if len(self._window) <= 1:
            self._sum = self._window[0][1]  # resynchronise: no float drift survives an empty window
        return min(1.0, max(0.0, self._sum / len(self._window)))

    def _target(self, smoothed: float) -> int:
        enter, exit_ = self.rules.enter, self.rules.exit
        p = smoothed + EPSILON
        up = max(k for k in range(len(LEVELS)) if k == 0 or p >= enter[k])
        current = self._index
        if up > current:
            return up
        if current == 0 or p >= exit_[current]:
            return current
        return max(k for k in range(current) if k == 0 or p >= exit_[k])

    def restart(self, level: Level) -> None:
        """Forget every frame fed so far and stand at ``level`` (a scene that was not the belt has gone: what
        was fed while it came and went says nothing about the flow; the level it interrupted carries on)."""
        self._window.clear()
        self._sum, self.smoothed = 0.0, 0.0
        self._pending, self._pending_frames = None, 0
        self.rising_since = self.held_back_since = None
        self._index = LEVELS.index(level)

    def update(self, probability: float, now: float, may_rise: bool = True, may_commit: bool = True) -> LevelChange | None:
        """Feed one frame's alert probability taken at monotonic time ``now``; return a change or None.

        ``may_rise=False`` refuses a rise this frame (the level stays, its dwell starts again once a rise is allowed):
        the caller knows the frames calling for it cannot show the flow dropping (nothing in the view moves).
        ``may_commit=False`` lets a rise's dwell run but not end this frame: it commits on the first frame allowed to,
        once its dwell has passed (the caller does not yet know whether the view moves)."""
        p = self._smooth(probability, now)
        self.smoothed = p
        target = self._target(p)
        if target > self._index:
            self.rising_since = now if self.rising_since is None else self.rising_since
            if not may_rise:
                self.held_back_since = now if self.held_back_since is None else self.held_back_since
                self._pending = None
                return None
        else:
            self.rising_since = self.held_back_since = None
        if target == self._index:
            self._pending = None
            return None
        if target != self._pending:
            self._pending, self._pending_since, self._pending_frames = target, now, 0
        self._pending_frames += 1
        if now - self._pending_since < self.rules.dwell_s or self._pending_frames < self.rules.min_frames:
            return None
        if target > self._index and not may_commit:
            return None
        previous = LEVELS[self._index]
        self._index, self._pending = target, None
        self.held_back_since = None
        return LevelChange(self.roi, LEVELS[target], previous, p, now)


@dataclass(frozen=True)
class LevelBands:
    """(enter, exit) thresholds on the smoothed probability for the warning and alert levels."""

    warning: tuple[float, float]
    alert: tuple[float, float]


def bands_from_threshold(threshold: float) -> LevelBands:
    """Level bands for a model whose per-frame operating point (its card's threshold) is ``threshold``.

    The alert level is entered when the smoothed probability reaches the card's threshold and left
    below 0.6 of it; warning sits just under (0.8 of the threshold to enter, 0.5 to leave), so a gap
    arriving - the smoothed value climbing from 0 to 1 within one window - passes the warning band in
    far less than a dwell and goes straight to alert, while a flow that hovers just under the operating
    point is reported as a warning. The threshold is clamped to [0.05, 0.95] so every band is valid.
    """
    t = min(0.95, max(0.05, float(threshold)))
    return LevelBands(warning=(round(0.8 * t, 4), round(0.5 * t, 4)), alert=(round(t, 4), round(0.6 * t, 4)))
