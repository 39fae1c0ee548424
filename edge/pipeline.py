"""One frame in, judgements out: preprocessing, inference, scene, belt motion, image health and alert levels.

Knows nothing about MQTT, storage or what is published; the daemon turns its results into
the device state and events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from edge.config import EdgeConfig
from edge.health import HealthRules, ImageHealth
from edge.levels import AlertLevels, LevelChange, LevelRules, bands_from_threshold
from edge.motion import BeltMotion, MotionReading, MotionRules, small_grey
from edge.palette import FOREIGN_LIMIT, BeltPalette
from edge.preprocess import Box, quantization_table, resize_rgb
from edge.scene import (
    BELT,
    DarkOnset,
    LightBelt,
    SceneRules,
    SceneStatistics,
    SceneVerdict,
    SceneWatch,
    combine_verdicts,
    judge_statistics,
    scene_statistics,
)
from edge.sources.base import Frame
from edge.state import Health, Level

if TYPE_CHECKING:
    from edge.inference import Scores

MIN_SIDE, MAX_SIDE = 16, 8192
# Image health judges seconds-long conditions; sampling it ten times a second is plenty and keeps
# it off the per-frame budget at high frame rates. A frozen camera still repeats identical frames.
HEALTH_INTERVAL_S = 0.1
# The scene statistics judge conditions that last seconds too (glare, a cover, a wall): refreshed twice a second they
# cost under a tenth of the invoke at 15 fps (each 64x64 crop ~0.03-0.05 ms, more with cold caches; five times a second
# was over a fifth of the bundled model's invoke, two and a half times left the scene judges at 17.5-19.9% of it in the
# detection hour, against a bar of 20%; the belt palette shares this cadence); the model's unknown head is read every
# frame.
SCENE_STATS_INTERVAL_S = 0.5
# A ready belt palette (edge.palette) learns from one frame every ten seconds: the colours of a belt change slowly.
PALETTE_LEARN_INTERVAL_S = 10.0
# Belt motion: one reading per frame up to 30 frames/s (~0.15 ms each); faster cameras are sampled.
MOTION_INTERVAL_S = 1.0 / 30.0
# A region whose frames have called for a higher level for this long while nothing in the view moved reads unknown.
STILL_GAP_S = 1.0
STILL_GAP_REASON = "the view reads a gap but nothing in it moves: something held still in front of the camera, or a belt that stopped"
# Every region reads unknown while the view may be a picture held in front of the camera (BeltMotion.held_picture).
HELD_PICTURE_REASON = ("the picture has stood still since it appeared all at once (the device started, the camera moved, "
                       "or something was put in front of it): the belt is read again once it is seen moving")
# A region whose scene was not a belt reads its level again once the belt is seen moving, or after this long. The
# judges miss some stills of a hand or a cover (the second renderer's: a quarter to a third): shown one after another,
# a second each, as a camera facing a hand or a replayed folder gives, the region read `unknown` for only 76-79% of
# the last 3 s (mostly `ok` between them), and 9 of 240 such runs alerted (a missed cover whose sensor noise gave
# too few readings to be called still; benchmarks/held_stills.py, variant slides).
RETURN_HOLD_S = 2.0


class FrameClassifier(Protocol):
    """What the pipeline needs from a model: :class:`edge.inference.Classifier`, or the shipped
    :class:`edge.fakes.FakeClassifier` in tests that need no TFLite runtime."""

    card: Any  # .input (shape, dtype, scale, zero_point), .tflite_sha256, .threshold, .levels, .scene, as in edge.modelcard.ModelCard
    runtime: Any  # .name and .version

    def classify(self, inputs: npt.NDArray[np.generic]) -> Scores:
        """Alert probability (and, with a scene head, unknown probability) per crop of a (batch, H, W, 3) input."""


@dataclass
class FrameResult:
    """What one frame produced."""

    probabilities: npt.NDArray[np.float32]
    health: Health
    health_reason: str
    judged: dict[str, Level]  # each ROI's judged flow level (unchanged while the picture is not usable)
    smoothed: dict[str, float]
    not_a_belt: dict[str, str] = field(default_factory=dict)  # ROIs whose scene is not a belt with product -> why
    motion: MotionReading | None = None  # belt speed and the stopped condition (None: belt.enabled is false)
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)  # the level bands in use: (enter, exit) per level
    changes: list[LevelChange] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def frame_problem(pixels: object) -> str | None:
    """Why a source's frame cannot be used, or None if it can."""
    if not isinstance(pixels, np.ndarray):
        return f"not an array ({type(pixels).__name__})"
    if pixels.dtype != np.uint8:
        return f"dtype {pixels.dtype}, expected uint8"
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        return f"shape {pixels.shape}, expected HxWx3"
    if not (MIN_SIDE <= pixels.shape[0] <= MAX_SIDE and MIN_SIDE <= pixels.shape[1] <= MAX_SIDE):
        return f"size {pixels.shape[1]}x{pixels.shape[0]}, expected {MIN_SIDE}-{MAX_SIDE} pixels a side"
    return None


class Pipeline:
    """Classifies every region of interest of a frame with one interpreter invoke."""

    def __init__(self, config: EdgeConfig, classifier: FrameClassifier) -> None:
        self.config = config
        self.rois = [(roi.name, Box.of_roi(roi.box, roi.flow)) for roi in config.rois]
        lv = config.levels
        self.levels = {name: AlertLevels(name, self._level_rules(classifier)) for name, _ in self.rois}
        self.scenes = {name: SceneWatch(config.scene.window_s, lv.min_frames) for name, _ in self.rois}
        self._stats_verdicts: list[SceneVerdict] = [BELT] * len(self.rois)  # the image statistics', refreshed a few times a second
        # Which ROIs' belts have shown themselves light (scene.dark_covers, sudden_covers); None when the dark-view rule is off.
        dark_views = config.scene.dark_covers or config.scene.sudden_covers
        self.light_belts = {name: LightBelt() for name, _ in self.rois} if dark_views else None
        # Which ROIs' views went dark all at once (sudden_covers alone); None when any dark view counts, or none does.
        self.dark_onsets = ({name: DarkOnset() for name, _ in self.rois}
                            if config.scene.sudden_covers and not config.scene.dark_covers else None)
        # Each ROI's belt colours, learned from frames with product in view; None when scene.belt_colours is off.
        self.palettes = {name: BeltPalette() for name, _ in self.rois} if config.scene.belt_colours else None
        self._foreign: dict[int, float] = {}  # ROI index -> share of foreign colours, for ROIs over the limit
        self._next_learn: dict[str, float] = {}
        self._verdicts: list[SceneVerdict] = [BELT] * len(self.rois)
        self.level_before_scene: dict[str, Level] = {}  # the level of each ROI when its scene stopped being a belt
        # ROIs whose scene is a belt again but not yet seen moving: name -> (since, the unknown reason, level_before_scene)
        self.returning: dict[str, tuple[float, str, Level]] = {}
        self._next_stats = float("-inf")
        self.use_classifier(classifier)
        h = config.health
        self.health = ImageHealth(HealthRules(h.frozen_after_s, h.dark_level, h.blur_level, h.degraded_after_s))
        self._next_health = float("-inf")
        b = config.belt
        self.motion = BeltMotion(MotionRules(stopped_below=b.stopped_below, stopped_after_s=b.stopped_after_s), 0) if b.enabled else None
        self._motion_reading: MotionReading | None = None
        self._motion_blocked_by: set[str] = set()  # the ROIs for which this frame's motion was not read
        self._next_motion = float("-inf")

    def _level_rules(self, classifier: FrameClassifier) -> LevelRules:
        """The config's bands when it sets them, else the model card's (derived from its threshold)."""
        lv = self.config.levels
        if lv.warning is not None and lv.alert is not None:
            warning, alert = (lv.warning.enter, lv.warning.exit), (lv.alert.enter, lv.alert.exit)
        else:
            bands = getattr(classifier.card, "levels", None) or {}
            if "warning" in bands and "alert" in bands:
                warning, alert = (float(bands["warning"][0]), float(bands["warning"][1])), (float(bands["alert"][0]), float(bands["alert"][1]))
            else:
                derived = bands_from_threshold(float(classifier.card.threshold))
                warning, alert = derived.warning, derived.alert
        return LevelRules.from_bands(lv.window_s, lv.dwell_s, lv.min_frames, warning, alert)

    def use_classifier(self, classifier: FrameClassifier) -> None:
        """Judge with ``classifier`` from the next frame on (its own input quantization, level bands and scene
        limits); the levels' smoothing and the image health carry on."""
        spec = classifier.card.input
        self.classifier = classifier
        self._table = quantization_table(spec.scale, spec.zero_point, spec.dtype)
        self._identity = bool(np.array_equal(self._table, np.arange(256, dtype=np.uint8)))
        self._batch = np.empty((len(self.rois), *spec.shape[1:]), dtype=spec.dtype)
        self._crops = np.empty((len(self.rois), *spec.shape[1:]), dtype=np.uint8)
        rules = self._level_rules(classifier)
        for levels in self.levels.values():
            levels.rules = rules
        self.bands = {"warning": (rules.enter[1], rules.exit[1]), "alert": (rules.enter[2], rules.exit[2])}
        # A frame teaches its ROI's belt colours (and its LightBelt) only when the model sees product: well under the threshold.
        self._learn_below = 0.5 * float(classifier.card.threshold)
        scene = getattr(classifier.card, "scene", None)
        self.scene_rules: SceneRules | None = scene if self.config.scene.enabled and isinstance(scene, SceneRules) else None

    def forget_picture(self) -> None:
        """The camera was reopened: judge its health, scene and motion afresh."""
        self.health.reset()
        self._next_health = float("-inf")
        for watch in self.scenes.values():
            watch.reset()
        if self.light_belts is not None:  # the reopened camera may look elsewhere: the dark-view rule waits again
            self.light_belts = {name: LightBelt() for name in self.light_belts}
        if self.dark_onsets is not None:
            self.dark_onsets = {name: DarkOnset() for name in self.dark_onsets}
        self._next_stats = float("-inf")
        if self.motion is not None:
            self.motion.reset()
            self._motion_reading = None
        self.returning.clear()

    def process(self, frame: Frame) -> FrameResult:
        """Run one valid frame through the model, the scene judges, belt motion and the level logic."""
        t0 = time.perf_counter()
        now = frame.monotonic
        for i, (_, box) in enumerate(self.rois):
            pixels64 = resize_rgb(frame.pixels, box)
            if i == 0 and now >= self._next_health:
                self.health.update(pixels64, now)
                self._next_health = now + HEALTH_INTERVAL_S
            self._crops[i] = pixels64
            # The usual calibration makes the table the identity: skip the lookup then.
            self._batch[i] = pixels64 if self._identity else self._table[pixels64]
        t1 = time.perf_counter()
        scores = self.classifier.classify(self._batch)
        t2 = time.perf_counter()
        not_a_belt = self._judge_scenes(scores, now)
        t2b = time.perf_counter()
        motion = self._belt_motion(frame)
        t3 = time.perf_counter()
        changes: list[LevelChange] = []
        if self.health.verdict == Health.OK:  # a dark, blurred or frozen picture says nothing about the belt
            for name, (since, _, _) in list(self.returning.items()):
                # Seen moving, or cannot be (motion is not read while another ROI reads unknown: a lane clearing first
                # would wait the whole hold, its gap's alert 2 s late; an adversarial review), or waited long enough.
                if now - since >= RETURN_HOLD_S or self._motion_blocked_by - {name} or self._moving_since(since):
                    del self.returning[name]
            for (name, _), probability, verdict in zip(self.rois, scores.alert, self._verdicts, strict=True):
                watch = self.scenes[name]
                # Perhaps not a belt scene: it says nothing about the flow. A region unknown by the doubt hold alone is
                # not known to show anything else: once the doubt no longer holds the window (a lane empty from the
                # start, doubted on two frames in three), its frames not in doubt are read. Not before: a wall doubted
                # on most frames, the rest taken for a gap, flickered unknown/alert (an adversarial review).
                reread = watch.held and not watch.held_in_doubt
                if verdict.doubtful or (name in not_a_belt and not reread) or watch.contested:
                    continue
                levels = self.levels[name]
                # A gap only arrives on a moving belt; right after a scene that was not one, its dwell runs but it
                # commits only once the belt is seen moving (a rise refused outright started its dwell again when the
                # hold ended: at 5 fps a gap in view as a hand left was lost; an adversarial review).
                change = levels.update(float(probability), now, may_rise=not self._still_since(levels.rising_since),
                                       may_commit=name not in self.returning)
                if change is not None:
                    changes.append(change)
                if reread and self.levels[name].level != Level.OK:  # frames the judges call a belt read a gap
                    watch.release()
                    del not_a_belt[name]
                    self.level_before_scene.pop(name, None)
            for name, levels in self.levels.items():
                if name in self.returning:  # frames fed while it returns time a gap as usual; what it reads waits
                    not_a_belt[name] = self.returning[name][1]
                # Also on frames not fed (in doubt): a rise held back that long must not fall back to a stale level
                # (an adversarial review: a gap restarting with a stopped belt, its frames then in doubt, read `ok`
                # for 5 s with the smoothed probability at 1.0).
                if (levels.held_back_since is not None and now - levels.held_back_since >= STILL_GAP_S
                        and name not in not_a_belt):
                    not_a_belt[name] = STILL_GAP_REASON
            # Whatever the judges read in it (the second renderer's hand stills read `ok` on one run in five): a belt never
            # replaces its whole picture from one frame to the next, and a still first picture cannot be told from a
            # held one. Its levels are fed meanwhile; motion is still read (this verdict does not block it), so the belt
            # is seen moving, or stopped, as before.
            if self.motion is not None and self.motion.held_picture():
                for name in self.levels:
                    not_a_belt.setdefault(name, HELD_PICTURE_REASON)
        t4 = time.perf_counter()
        return FrameResult(
            probabilities=scores.alert,
            health=self.health.verdict,
            health_reason=self.health.reason,
            judged={name: lv.level for name, lv in self.levels.items()},
            smoothed={name: lv.smoothed for name, lv in self.levels.items()},
            not_a_belt=not_a_belt,
            motion=motion,
            bands=self.bands,
            changes=changes,
            timings={"preprocess": t1 - t0, "inference": t2 - t1, "scene": t2b - t2, "motion": t3 - t2b, "levels": t4 - t3},
        )

    def _judge_scenes(self, scores: Scores, now: float) -> dict[str, str]:
        """Each ROI's scene verdict for this frame (``self._verdicts``) and the debounced not-a-belt ROIs."""
        rules = self.scene_rules
        if rules is None:
            self._verdicts = [BELT] * len(self.rois)
            return {}
        refresh = now >= self._next_stats
        stats: list[SceneStatistics] = []
        if refresh:
            belts = self.light_belts
            stats = [scene_statistics(self._crops[i], dark_views=belts is not None) for i in range(len(self.rois))]
            self._stats_verdicts = [judge_statistics(s, rules, self._usual_level(name, s, rules))
                                    for (name, _), s in zip(self.rois, stats, strict=True)]
            self._next_stats = now + SCENE_STATS_INTERVAL_S
        heads: list[float] | list[None] = [None] * len(self.rois) if scores.unknown is None else scores.unknown.tolist()
        self._verdicts = [combine_verdicts(head, statistics, rules) for head, statistics in zip(heads, self._stats_verdicts, strict=True)]
        if stats and self.light_belts is not None and self.health.verdict == Health.OK:
            for i, (name, _) in enumerate(self.rois):  # a belt frame with product in view: what its belt looks like
                if float(scores.alert[i]) < self._learn_below and not self._verdicts[i].doubtful:
                    self.light_belts[name].see(stats[i])
        if self.palettes is not None:
            self._judge_colours(scores, refresh, now)
        not_a_belt = {}
        for (name, _), verdict in zip(self.rois, self._verdicts, strict=True):
            watch, was_unknown = self.scenes[name], self.scenes[name].unknown
            levels = self.levels[name]
            if watch.update(verdict, now, reads_ok=levels.says_ok, reads_gap=levels.level != Level.OK):
                not_a_belt[name] = watch.reason
                if name in self.returning:  # not a belt again before it was seen moving: the same interruption
                    self.level_before_scene[name] = self.returning.pop(name)[2]
                elif not was_unknown:  # remember the level the scene interrupted
                    self.level_before_scene[name] = levels.level
            elif was_unknown:  # the belt is back: carry on from that level, without the frames fed meanwhile
                before = self.level_before_scene.pop(name, Level.OK)
                self.levels[name].restart(before)
                if self.motion is not None:  # it reads that level once seen moving (see RETURN_HOLD_S)
                    self.returning[name] = (now, watch.reason, before)
        return not_a_belt

    def _usual_level(self, name: str, stats: SceneStatistics, rules: SceneRules) -> float | None:
        """The level the dark-view rule compares a dark view's lit part with: the ROI's usual one once its belt has
        shown itself light and, with ``sudden_covers`` alone, while its view is dark all at once; else None (the
        rule does not apply)."""
        if self.light_belts is None:
            return None
        if self.dark_onsets is not None and not self.dark_onsets[name].see(stats.dark_share, rules.max_dark_share):
            return None
        return self.light_belts[name].level

    def _judge_colours(self, scores: Scores, refresh: bool, now: float) -> None:
        """Teach each ROI the colours of frames that show product and that the other judges call a belt; overrule a
        belt verdict when a frame without product (the model sees a gap) is mostly in colours never seen there.

        Both run at the statistics' cadence at most, and only where they can matter: the judgement on frames the
        model would alert on (a gap, or a wall or cover it takes for one), the learning every few seconds once
        the palette is ready. A running line then pays for neither on almost every frame."""
        assert self.palettes is not None
        if refresh:
            self._foreign = {}
            for i, (name, _) in enumerate(self.rois):
                palette, verdict = self.palettes[name], self._verdicts[i]
                if float(scores.alert[i]) < self._learn_below:  # the model sees product
                    if (not verdict.doubtful and self.health.verdict == Health.OK
                            and (not palette.ready or now >= self._next_learn.get(name, float("-inf")))):
                        palette.learn(self._crops[i])
                        self._next_learn[name] = now + PALETTE_LEARN_INTERVAL_S
                elif not verdict.unknown:
                    share = palette.foreign_share(self._crops[i])
                    if share is not None and share > FOREIGN_LIMIT:
                        self._foreign[i] = share
        for i, share in self._foreign.items():  # until the next refresh, like the statistics
            if not self._verdicts[i].unknown:
                self._verdicts[i] = SceneVerdict(
                    True, f"not the belt's colours: {share:.0%} of the view in colours its belt and product never showed there", True)

    def _still_since(self, since: float | None) -> bool:
        """Whether the belt's picture has stood still since ``since`` (False when unknown or not measured).

        A gap only ever arrives on a moving belt: frames that begin to read one on a view where nothing moves are
        something else held in front of the camera (a cloth over the lens that the model takes for an empty belt and
        the scene judges for a belt: 13 of 40 of the second renderer's covered-lens stills, held still after a running
        belt, raised an alert), or a belt that stopped before the gap reached the view, which the belt event reports.
        Such a rise is refused, and after :data:`STILL_GAP_S` the region reads unknown."""
        return self.motion is not None and since is not None and self.motion.still_since(since)

    def _moving_since(self, since: float) -> bool:
        return self.motion is not None and self.motion.moving_since(since)

    def _belt_motion(self, frame: Frame) -> MotionReading | None:
        if self.motion is None:
            return None
        # A hand or a cover in the view is not the belt stopping: no reading while any ROI's frame is judged unknown or
        # its scene reads unknown (a still cover flagged on one frame in three was read as a stopped belt otherwise).
        # Any, not most: the reading is of the whole frame, and a still hand that only the whole belt's ROI calls not a
        # belt, beside lanes that still read the belt, took it over (a rule that read motion while fewer than half the
        # ROIs read unknown reported 4 of 20 full running belts stopped; the cost of "any": a starved lane that the
        # head calls not a belt hides a stop on 3-5 of 40 belts, benchmarks/belt_stops.py).
        # Doubt counts only when it holds every ROI whose level read a full flow: a still wall that holds the head in
        # doubt was read as a stopped belt otherwise. An empty belt can hold the head in doubt too, and it can stop (its
        # level then reads the gap, or a lane's does while the others show the belt moving: neither skips a reading).
        # Nor does a level nothing has been fed to: a belt that stands empty when the daemon starts, held in doubt,
        # must be reported stopped (counting it hid stops on 4-6 of 12 such belts); a still wall in view from the
        # start is then read as a stopped belt too, while its ROI reads unknown.
        blocked = {name for (name, _), verdict in zip(self.rois, self._verdicts, strict=True)
                   if verdict.unknown or (self.scenes[name].unknown and not self.scenes[name].held)}
        if not blocked and all(self.scenes[name].held_in_doubt and self.levels[name].reads_full for name, _ in self.rois):
            blocked = set(self.scenes)
        self._motion_blocked_by = blocked
        if blocked:
            return self._motion_reading
        if frame.monotonic >= self._next_motion or self._motion_reading is None:
            self.motion.frame_width = frame.pixels.shape[1]
            self._motion_reading = self.motion.update(small_grey(frame.pixels), frame.monotonic)
            self._next_motion = frame.monotonic + MOTION_INTERVAL_S
        return self._motion_reading
