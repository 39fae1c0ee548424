"""The detection side through the real daemon: scenes that are not a belt, a stopped belt, level bands from the card,
and the reviewer's check - a held-out stream from the second renderer with ten gaps through the bundled model.

Frames come from the second renderer (converter/holdout), which no training ever saw, stamped with stream time,
so the daemon's windows and dwell run as at 15 frames/s while the test runs as fast as frames render.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import expected_runtime

from benchmarks.streams import run_daemon
from converter.holdout import HoldoutStream, Script
from edge.config import BUNDLED_MODEL, parse_config
from edge.events import BeltChanged, LevelChanged
from edge.fakes import HEAD_ONLY, FakeCard, FakeClassifier
from edge.inference import Classifier, load_runtime
from edge.scene import DOUBT_HOLD_S
from edge.simulator.stream import ConveyorStream, Drop, Episode, Stop
from edge.state import Belt, Level

# Decision logic over the bundled model's outputs: these scenarios run once, in the main environment; those marked
# both_runtimes (the reviewer's checks) run under tflite-runtime too, where tests/test_inference.py checks the model.
pytestmark = [pytest.mark.scenario]

FPS = 15.0


def config(**override: object) -> object:
    return parse_config({"source": {"type": "synthetic", "fps": FPS}, **override}, check_files=False)


def levels_of(changes: list[object], roi: str = "belt") -> list[tuple[str, str]]:
    return [(str(c.previous), str(c.level)) for c in changes if isinstance(c, LevelChanged) and c.roi == roi]


def cover_in_doubt(cover: range) -> FakeClassifier:
    """A model as the bundled one saw a cover over the lens during the frames ``cover``: the scene head crosses the
    card's threshold (0.88) on one frame in three and sits between 0.5 and 0.88 on the others, while the alert output
    says 'gap' on every frame. The image statistics can trip on nothing."""
    from edge.scene import SceneRules

    card = FakeCard(scene=SceneRules(unknown_threshold=0.88, max_saturated=1.0, min_correlation=-1.0, min_detail=0.0,
                                     min_brightness=-1.0, max_dark_share=1.0))

    def alert(crops: np.ndarray, n: int) -> list[float]:
        return [0.99 if n in cover else 0.05] * len(crops)

    def unknown(crops: np.ndarray, n: int) -> list[float]:
        return [(0.95 if n % 3 == 0 else 0.7) if n in cover else 0.02] * len(crops)

    return FakeClassifier(alert, card=card, unknown=unknown)


def test_a_scene_that_is_not_a_belt_reads_unknown_with_an_event_and_never_alerts() -> None:
    """A hand (the scene head says unknown on two frames in three, the alert output says 'gap' on all) turns
    state/belt unknown with a level event naming the scene, never alert; the belt back, the level is ok again."""
    hand = range(150, 240)  # frames 10 s to 16 s

    def alert(crops: np.ndarray, n: int) -> list[float]:
        return [0.97 if n in hand else 0.05] * len(crops)

    def unknown(crops: np.ndarray, n: int) -> list[float]:
        return [0.9 if n in hand and n % 3 else 0.1] * len(crops)

    stream = HoldoutStream(5, Script(), fps=FPS)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), FakeClassifier(alert, unknown=unknown), stream, 330)
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "ok")]
    into = next(c for c in publisher.level_changes if c.level == Level.UNKNOWN)
    assert into.reason.startswith("not a belt scene: model unknown probability")
    assert 150 < into.frame_seq <= 150 + 9  # within 0.6 s of the hand appearing (the scene window)
    during = [level for t, level, _ in log.seen if 10.6 <= t < 16.0]
    assert during and set(during) == {"unknown"}
    assert "alert" not in {level for _, level, _ in log.seen}


def test_a_cover_that_holds_the_scene_head_just_under_its_threshold_reads_unknown_and_never_alerts() -> None:
    """A cover over the lens, as the bundled model saw one in the detection hour: the scene head crosses the
    card's threshold (0.88) on one frame in three and sits between 0.5 and 0.88 on the others, while the alert
    output says 'gap' on every frame. The frames in doubt feed no level: state/belt reads unknown, never alert."""
    stream = HoldoutStream(5, Script(), fps=FPS)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), cover_in_doubt(range(150, 240)), stream, 330)
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "ok")]
    during = [level for t, level, _ in log.seen if 10.6 <= t < 16.0]
    assert during and set(during) == {"unknown"}
    assert "alert" not in {level for _, level, _ in log.seen}


def test_without_a_scene_head_the_statistics_still_catch_a_covered_lens() -> None:
    """A user's own single-output model: a black (covered) picture reads unknown by the image statistics alone."""
    from edge.scene import SceneRules

    card = FakeCard(scene=SceneRules())  # the default limits: mean level < 10 is a covered lens
    classifier = FakeClassifier(lambda crops, n: [0.99 if float(crops.mean()) < 10 else 0.05] * len(crops), card=card)

    class Covered(HoldoutStream):
        def frame(self, i: int) -> np.ndarray:
            pixels = super().frame(i)
            return np.zeros_like(pixels) + 3 if 90 <= i < 180 else pixels

    publisher, log, _ = run_daemon(config(belt={"enabled": False}), classifier, Covered(6, Script(), fps=FPS), 240)
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "ok")]
    assert "covered or unlit" in publisher.level_changes[0].reason
    assert "alert" not in {level for _, level, _ in log.seen}


@pytest.mark.both_runtimes
def test_a_stopped_belt_is_reported_within_three_seconds_and_counts_in_the_status() -> None:
    """The belt stops for 8 s: a belt event 'stopped' within 3 s (status alert meanwhile, the ROI itself stays ok),
    then 'moving' once it runs again; no stop is reported while it runs."""
    stream = HoldoutStream(7, Script(stops=((6.0, 8.0),)), fps=FPS)
    publisher, log, _ = run_daemon(config(), FakeClassifier.constant(0.05), stream, int(20 * FPS))
    belt = [c for c in publisher.changes if isinstance(c, BeltChanged)]
    assert [(str(c.previous), str(c.belt)) for c in belt] == [("moving", "stopped"), ("stopped", "moving")]
    stopped_at = (belt[0].frame_seq - 1) / FPS
    assert 6.0 < stopped_at <= 9.0, stopped_at
    assert 14.0 < (belt[1].frame_seq - 1) / FPS <= 16.0
    assert "below 0.03 frame widths/s" in belt[0].reason
    states = [state for state in publisher.states if state.belt == Belt.STOPPED]
    assert states and all(state.summary == Level.ALERT and state.level("belt") == Level.OK for state in states)
    assert {b for t, _, b in log.seen if 2.0 <= t < 6.0} == {"moving"}


def test_the_status_when_stopped_is_configurable() -> None:
    stream = HoldoutStream(7, Script(stops=((4.0, 8.0),)), fps=FPS)
    publisher, _, _ = run_daemon(config(belt={"status_when_stopped": "warning"}), FakeClassifier.constant(0.05), stream,
                                 int(10 * FPS))
    stopped = [state for state in publisher.states if state.belt == Belt.STOPPED]
    assert stopped and {state.summary for state in stopped} == {Level.WARNING}


def test_level_bands_come_from_the_model_card_unless_the_config_sets_them() -> None:
    """A card whose threshold is 0.3 (no bands written): a steady 0.35 is an alert; with bands in the config it is ok."""
    card = FakeCard(threshold=0.3, levels={})
    stream = HoldoutStream(8, Script(), fps=FPS)
    publisher, _, _ = run_daemon(config(belt={"enabled": False}), FakeClassifier(lambda c, n: [0.35] * len(c), card=card),
                                 stream, 60)
    assert publisher.states[-1].level("belt") == Level.ALERT
    fixed = config(belt={"enabled": False}, levels={"warning": {"enter": 0.5, "exit": 0.4}, "alert": {"enter": 0.8, "exit": 0.6}})
    publisher, _, _ = run_daemon(fixed, FakeClassifier(lambda c, n: [0.35] * len(c), card=card), stream_again(8), 60)
    assert publisher.states[-1].level("belt") == Level.OK


def stream_again(seed: int) -> HoldoutStream:
    return HoldoutStream(seed, Script(), fps=FPS)


@pytest.fixture(scope="module")
def bundled() -> Classifier:
    return Classifier.from_files(BUNDLED_MODEL, load_runtime("auto"))


class Lit:
    """A training-simulator stream (bundled-model tests) whose lighting can change at ``at`` (per-channel gains)."""

    def __init__(self, stream: ConveyorStream, at: float = float("inf"), gains: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
        self.stream, self.fps, self.at = stream, FPS, at
        self.gains = np.asarray(gains, np.float32)

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        pixels = self.stream.frame_at(t)
        return np.clip(pixels * self.gains, 0, 255).astype(np.uint8) if t >= self.at else pixels


class Clothed:
    """A training-simulator stream with a dark cloth (level ~18, std ~2, lit a little unevenly) over the left 80% of
    the view from ``at`` to ``until`` seconds, a corner of belt still showing."""

    def __init__(self, stream: ConveyorStream, at: float, until: float) -> None:
        self.stream, self.fps, self.at, self.until = stream, FPS, at, until
        self.rng = np.random.default_rng(0)

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        pixels = self.stream.frame_at(t)
        if self.at <= t < self.until:
            pixels = pixels.copy()
            width = int(pixels.shape[1] * 0.8)
            ramp = np.linspace(-3.0, 3.0, pixels.shape[0])[:, None, None]
            cloth = 18.0 + ramp + self.rng.normal(0.0, 2.0, (pixels.shape[0], width, 3))
            pixels[:, :width] = np.clip(cloth, 0, 255).astype(np.uint8)
        return pixels


def test_a_dark_cloth_over_most_of_a_light_belts_view_reads_unknown_and_never_alerts(bundled: Classifier) -> None:
    """Once the ROI has shown its light belt with product, a dark cloth over 80% of the view (the bundled scene head
    misses it, the alert output takes it for a gap) reads unknown, never alert."""
    stream = Clothed(ConveyorStream(3), at=20.0, until=28.0)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}, scene={"dark_covers": True}), bundled, stream, int(32 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}
    into = [c for c in publisher.level_changes if c.level == Level.UNKNOWN]
    assert into and "covered:" in into[0].reason, [c.reason for c in publisher.level_changes]
    during = [level for t, level, _ in log.seen if 21.0 <= t < 28.0]
    assert during.count("unknown") >= 0.95 * len(during), during


@pytest.mark.parametrize("seed", [1, 2])
def test_a_gap_on_a_dark_belt_filmed_without_noise_alerts_and_never_reads_covered(bundled: Classifier, seed: int) -> None:
    """An empty stretch of a near-black belt on a camera that smooths its noise away is as dark and plain as a cloth
    over the lens (an adversarial review lost gaps so): the dark-view rule waits until the ROI's belt has shown itself
    light, so here the gap alerts and the ROI never reads unknown."""
    dark = ConveyorStream(seed, drops=(Drop(12.0, 3.0),), noise=False)
    dark.look = dataclasses.replace(dark.look, belt=dataclasses.replace(dark.look.belt, rgb=(0.14, 0.14, 0.147)))
    publisher, log, _ = run_daemon(config(belt={"enabled": False}, scene={"dark_covers": True}), bundled, Lit(dark), int(20 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")]
    assert "unknown" not in {level for t, level, _ in log.seen if t >= 1.0}


class Shaded:
    """A training-simulator stream whose left 80% falls into a shadow at ``at`` (a lamp fails or is blocked: the
    simulator's own shadow band, by default a quarter of the light left, applied before sensor noise)."""

    def __init__(self, stream: ConveyorStream, at: float, depth: float = 0.75, fps: float = FPS) -> None:
        self.stream, self.fps, self.at, self.lit = stream, fps, at, stream.look
        self.shaded = dataclasses.replace(stream.look, light=dataclasses.replace(stream.look.light, shadow=(0.0, -0.25, 1.1, depth)))

    def frame(self, i: int) -> np.ndarray:
        self.stream.look = self.shaded if i / self.fps >= self.at else self.lit
        return self.stream.frame_at(i / self.fps)


def test_a_gap_just_after_a_shadow_falls_over_most_of_the_view_alerts_with_the_default_config(bundled: Classifier) -> None:
    """A mid-grey belt, 80% of its view shadowed a second before a gap: the empty belt there is as dark and plain as
    a cloth, with the rest lit as before (an adversarial review lost such gaps to the dark-view rule, which is why
    ``scene.dark_covers`` is off by default). With the default config the gap alerts until it has passed."""
    stream = Shaded(ConveyorStream(17, drops=(Drop(31.0, 10.0),)), at=30.0)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), bundled, stream, int(46 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")]
    assert {level for t, level, _ in log.seen if 33.5 <= t < 41.0} == {"alert"}


@pytest.mark.parametrize("fps", [10.0, 20.0])
def test_a_fast_gap_coming_into_a_recent_shadow_alerts_at_any_frame_rate(bundled: Classifier, fps: float) -> None:
    """A dark-grey belt, 80% of its view shadowed (40% of the light left) 3 s before a gap. At 10 and 20 frames/s the
    statistics are read exactly 0.5 s apart, and the first version of the sudden-cover rule (a 1 s window) saw the
    gap's empty belt go dark over two readings as a cover: unknown for 5 s, the alert 6 s late (an adversarial
    review). Sudden means between two readings, at any frame rate. (At 20 frames/s the scene head itself calls the
    empty belt unknown for a while, as it did before the rule.)"""
    stream = Shaded(ConveyorStream(59, drops=(Drop(18.0, 6.0),), speed=160.0), at=15.0, depth=0.6, fps=fps)
    cfg = config(source={"type": "synthetic", "fps": fps}, belt={"enabled": False})
    publisher, _, _ = run_daemon(cfg, bundled, stream, int(30 * fps))
    assert not [c.reason for c in publisher.level_changes if "covered" in c.reason]
    first = publisher.level_changes[0]
    assert first.level == Level.ALERT and (first.frame_seq - 1) / fps <= 20.0
    if fps == 10.0:
        assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")]


@pytest.mark.parametrize("seed", [104, 106, 109])
def test_a_gap_on_a_belt_that_holds_the_scene_head_in_doubt_alerts_for_its_whole_length(bundled: Classifier, seed: int) -> None:
    """On these belts the empty stretch holds the bundled scene head between 0.5 and the card's threshold on almost
    every frame (found by an adversarial review of a rule that then turned such gaps unknown after 1.5 s): the gap
    still alerts within a second and stays an alert until it has passed."""
    stream = Lit(ConveyorStream(seed, drops=(Drop(20.0, 8.0),)))
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), bundled, stream, int(32 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")]
    during = {level for t, level, _ in log.seen if 22.0 <= t < 28.0}  # the gap fills the view from about 21 s
    assert during == {"alert"}, during


@pytest.mark.parametrize("seed", [100, 111, 118])
def test_a_gap_whose_empty_belt_the_head_sometimes_calls_unknown_stays_an_alert(bundled: Classifier, seed: int) -> None:
    """On these belts the scene head calls the empty stretch unknown on 1-34% of its frames and holds it in doubt on
    most others: the gap's alert was withdrawn to unknown about a second in (an adversarial review: 10 of 61 belts).
    A region that reads a gap reads unknown only when almost every frame is judged unknown."""
    stream = Lit(ConveyorStream(seed, drops=(Drop(20.0, 8.0),)))
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), bundled, stream, int(32 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")], levels_of(publisher.changes)
    during = {level for t, level, _ in log.seen if 22.0 <= t < 28.0}
    assert during == {"alert"}, during


def test_a_hand_over_a_gap_keeps_its_alert_until_the_hand_has_gone(bundled: Classifier) -> None:
    """A hand comes over the belt while a gap's alert stands (seed 1: the gap in view 12.2-14.7 s, the hand 12.5-22.5 s):
    the region reads alert, or unknown once the hand fills the window, but never ok while the hand is there: the
    frames that show belt beside the hand must not feed the level (a review saw alert -> ok at 13.1 s, during the
    gap). After the hand, the belt reads ok."""
    stream = HoldoutStream(1, Script(gaps=((10.0, 6.0),), episodes=(("hand", 12.5, 10.0),)), fps=FPS)
    publisher, _, _ = run_daemon(config(belt={"enabled": False}), bundled, stream, int(28 * FPS))
    changes = [(str(c.previous), str(c.level), (c.frame_seq - 1) / FPS) for c in publisher.level_changes]
    assert changes[0][:2] == ("ok", "alert") and changes[-1][1] == "ok" and changes[-1][2] >= 22.5, changes
    assert all(level != "ok" for _, level, t in changes if t < 22.5), changes


@pytest.mark.parametrize(("seed", "gains"), [(101, (1.2, 1.0, 0.75)), (102, (0.4, 0.4, 0.4))])
def test_a_gap_right_after_a_change_of_light_alerts_with_the_default_config(bundled: Classifier, seed: int,
                                                                          gains: tuple[float, float, float]) -> None:
    """Warmer lamps or a dimmed hall at 34 s, then the belt runs empty at 35 s: with the default config (the belt
    palette off) the gap alerts. With the palette on, these two read 'not the belt's colours' for the whole gap,
    which is why it is off by default (docs/detection.md)."""
    stream = Lit(ConveyorStream(seed, drops=(Drop(35.0, 15.0),)), at=34.0, gains=gains)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), bundled, stream, int(54 * FPS))
    assert ("ok", "alert") in levels_of(publisher.changes)
    during = [level for t, level, _ in log.seen if 37.0 <= t < 50.0]
    assert during.count("alert") >= 0.95 * len(during), {level: during.count(level) for level in set(during)}


def test_a_starved_belt_that_stops_is_reported_stopped(bundled: Classifier) -> None:
    """An empty belt (which holds this belt's scene head in doubt) that then stops: doubt alone does not blind the
    belt-motion reading, so the stop is reported."""
    stream = Lit(ConveyorStream(106, drops=(Drop(10.0, 30.0),), stops=(Stop(20.0, 15.0),)))
    publisher, _, _ = run_daemon(config(), bundled, stream, int(38 * FPS))
    belts = [str(c.belt) for c in publisher.changes if isinstance(c, BeltChanged)]
    assert belts[:1] == ["stopped"], belts


class HeldStill:
    """The stream, but from ``start_s`` to ``end_s`` a still picture (a cloth held in front of the lens, a wall the
    camera was knocked towards): each frame the same picture with a little sensor noise."""

    def __init__(self, stream: HoldoutStream, still: np.ndarray, start_s: float, end_s: float, fade_s: float = 0.0) -> None:
        self.stream, self.fps, self.still, self.span = stream, stream.fps, still.astype(np.float32), (start_s, end_s)
        self.fade_s = fade_s  # the picture comes over this long, blended with the belt (a camera slowly turned), not at once
        self._noise = np.random.default_rng(9)

    def frame(self, i: int) -> np.ndarray:
        pixels = self.stream.frame(i)
        if self.span[0] <= i / self.fps < self.span[1]:
            share = min(1.0, (i / self.fps - self.span[0]) / self.fade_s) if self.fade_s else 1.0
            still = share * self.still + (1.0 - share) * pixels
            return np.clip(still + self._noise.normal(0, 2, self.still.shape), 0, 255).astype(np.uint8)
        return pixels


def coarse_texture(seed: int, base: tuple[int, int, int], spread: float, grey: bool = False) -> np.ndarray:
    """A 320x240 picture of smoothly varying colour (or grey) around ``base``: a cloth, a painted wall."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.random((12, 16, 1 if grey else 3)) * spread + np.array(base)
    return np.asarray(Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize((320, 240), Image.Resampling.BICUBIC))


def test_a_cover_held_still_is_not_a_stopped_belt() -> None:
    """While the scene is not a belt, the picture says nothing about the belt's motion either: a still cover that the
    scene head flags on one frame in three (and holds in doubt on the others) reads unknown on state/belt and
    leaves the belt 'moving', not 'stopped' (which would turn status to alert). Seen by an evaluator: a covered
    lens and a wall each reported the belt stopped."""
    stream = HeldStill(HoldoutStream(5, Script(), fps=FPS), coarse_texture(8, (120, 90, 60), 60), 10.0, 17.0)
    publisher, log, _ = run_daemon(config(), cover_in_doubt(range(150, 255)), stream, int(22 * FPS))
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "ok")]
    belts = {belt for t, _, belt in log.seen if t >= 3.0}
    assert belts == {"moving"}, belts
    assert not [c for c in publisher.changes if isinstance(c, BeltChanged)]


@pytest.mark.parametrize("belt_colours", [True, False])
def test_a_wall_the_scene_judges_miss_reads_unknown_by_the_belt_colours_and_a_gap_still_alerts(belt_colours: bool) -> None:
    """A camera knocked towards a wall that the scene head and the image statistics both miss, and that the alert
    output takes for a gap on every frame (as the bundled model did on an evaluator's textured wall): the ROI has
    learned its belt's colours from the running line, so state/belt reads unknown, never alert. A real gap on the
    same belt still alerts. Without the palette (scene.belt_colours false) the wall raises an alert."""
    stream = HoldoutStream(20261127, Script(gaps=((10.0, 3.0),), episodes=(("grey_wall", 30.0, 6.0),)), fps=FPS)
    first, last = stream.gap_visible_span(0)

    def alert(crops: np.ndarray, n: int) -> list[float]:
        t = n / FPS
        return [0.97 if first <= t < last or 30.0 <= t < 36.0 else 0.05] * len(crops)

    card = FakeCard(scene=HEAD_ONLY)  # the statistics can trip on nothing, and the head never says unknown
    classifier = FakeClassifier(alert, card=card, unknown=lambda crops, n: [0.02] * len(crops))
    publisher, log, _ = run_daemon(config(belt={"enabled": False}, scene={"belt_colours": belt_colours}), classifier, stream,
                                   int(42 * FPS))
    if not belt_colours:
        assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")] * 2
        return
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok"), ("ok", "unknown"), ("unknown", "ok")]
    into = next(c for c in publisher.level_changes if c.level == Level.UNKNOWN)
    assert into.reason.startswith("not a belt scene: not the belt's colours")
    during = [level for t, level, _ in log.seen if 31.0 <= t < 36.0]
    assert during and set(during) == {"unknown"}


def test_a_wall_that_holds_the_scene_head_in_doubt_reads_unknown_not_a_stale_ok() -> None:
    """A camera knocked towards a wall that the scene head holds between 0.5 and the card's threshold on every frame
    (never over it) and that the alert output takes for a gap (as the bundled model did on a blind renderer's cream
    wall): its frames feed no level, and state/belt read 'ok' for the whole 8 s. Now it reads unknown once the doubt
    has held while the level read ok, never alert; the belt back, ok again. A real gap on the same belt still alerts.
    Nor is the still wall a stopped belt: frames in doubt while the level reads ok give no motion reading (with a
    blind renderer's walls the belt was reported stopped before the region read unknown). The wall comes over a
    second (a camera slowly turned): one that replaces the picture at once reads unknown sooner, as a held picture."""
    belt = HoldoutStream(20261127, Script(gaps=((10.0, 3.0),)), fps=FPS)
    first, last = belt.gap_visible_span(0)
    stream = HeldStill(belt, coarse_texture(5, (170, 170, 170), 50, grey=True), 30.0, 38.0, fade_s=1.0)
    card = FakeCard(scene=dataclasses.replace(HEAD_ONLY, unknown_threshold=0.88))

    def alert(crops: np.ndarray, n: int) -> list[float]:
        t = n / FPS
        return [0.97 if first <= t < last or 30.0 <= t < 38.0 else 0.05] * len(crops)

    def unknown(crops: np.ndarray, n: int) -> list[float]:
        return [0.7 if 30.0 <= n / FPS < 38.0 else 0.02] * len(crops)

    classifier = FakeClassifier(alert, card=card, unknown=unknown)
    publisher, log, _ = run_daemon(config(), classifier, stream, int(44 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok"), ("ok", "unknown"), ("unknown", "ok")]
    into = next(c for c in publisher.level_changes if c.level == Level.UNKNOWN)
    assert "in doubt for" in into.reason
    assert not [c for c in publisher.changes if isinstance(c, BeltChanged)]
    during = [level for t, level, _ in log.seen if 33.0 <= t < 38.0]
    assert during and set(during) == {"unknown"}


def test_a_wall_in_view_when_the_daemon_starts_that_holds_the_head_in_doubt_reads_unknown() -> None:
    """The same wall, in view from the daemon's first frame to 8 s: no frame has fed the level, which reads `ok` only
    because it starts so. It read `ok` for the whole 8 s; now it reads unknown after the doubt hold, and the belt
    reads `ok` once back. (Belt motion is read meanwhile, so the still wall is read as a stopped belt: an empty belt
    that stands still when the daemon starts looks the same, and its stop must be reported, see below.)"""
    belt = HoldoutStream(20261127, Script(gaps=()), fps=FPS)
    stream = HeldStill(belt, coarse_texture(5, (170, 170, 170), 50, grey=True), 0.0, 8.0)
    card = FakeCard(scene=dataclasses.replace(HEAD_ONLY, unknown_threshold=0.88))

    def alert(crops: np.ndarray, n: int) -> list[float]:
        return [0.97 if n / FPS < 8.0 else 0.05] * len(crops)

    def unknown(crops: np.ndarray, n: int) -> list[float]:
        return [0.7 if n / FPS < 8.0 else 0.02] * len(crops)

    classifier = FakeClassifier(alert, card=card, unknown=unknown)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), classifier, stream, int(14 * FPS))
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "ok")]
    into = next(c for c in publisher.level_changes if c.level == Level.UNKNOWN)
    assert "in doubt for" in into.reason and (into.frame_seq - 1) / FPS <= DOUBT_HOLD_S + 1.0
    during = [level for t, level, _ in log.seen if DOUBT_HOLD_S + 1.0 <= t < 8.0]
    assert during and set(during) == {"unknown"}


@pytest.mark.parametrize("seed", [106, 109])
def test_an_empty_belt_held_in_doubt_from_the_start_that_stops_is_reported_stopped(seed: int) -> None:
    """The belt is empty from before the daemon starts (the head holds it in doubt: the region reads unknown after the
    hold) and stops at 6 s for 10 s: the stop is reported within 3 s. An adversarial review found it never reported
    when a level nothing had fed counted as ok for the motion rule (4-6 of 12 such belts)."""
    stream = ConveyorStream(seed, drops=(Drop(-10.0, 60.0),), stops=(Stop(6.0, 10.0),))
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()))
    publisher, _, _ = run_daemon(config(), classifier, Lit(stream), int(18 * FPS))
    stops = [(c.frame_seq - 1) / FPS for c in publisher.changes if isinstance(c, BeltChanged) and c.belt == Belt.STOPPED]
    assert stops and 6.0 <= stops[0] <= 9.0, stops
    assert "ok" not in {str(c.level) for c in publisher.level_changes}


def test_a_region_unknown_by_the_doubt_hold_alone_alerts_once_frames_the_judges_call_a_belt_read_a_gap() -> None:
    """An empty belt from the start that the head holds in doubt on two frames in three, the third frame a belt that
    the alert output calls a gap: the hold makes the region unknown at about 2 s (nothing had judged its `ok`), but
    the hold only ends a stale ok. The frames not in doubt still feed the level, and once they read a gap the region
    reads `alert` (it stayed `unknown` for as long as two frames in three were in doubt)."""
    belt = HoldoutStream(20261127, Script(gaps=()), fps=FPS)
    card = FakeCard(scene=dataclasses.replace(HEAD_ONLY, unknown_threshold=0.88))
    doubted = 3.0  # the first 3 s every frame is in doubt, then two in three

    def unknown(crops: np.ndarray, n: int) -> list[float]:
        return [0.7 if n / FPS < doubted or n % 3 else 0.02] * len(crops)

    classifier = FakeClassifier(lambda crops, n: [0.97] * len(crops), card=card, unknown=unknown)
    publisher, log, _ = run_daemon(config(belt={"enabled": False}), classifier, belt, int(10 * FPS))
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "alert")]
    into, out = publisher.level_changes
    assert "in doubt for" in into.reason and (into.frame_seq - 1) / FPS <= DOUBT_HOLD_S + 1.0
    assert doubted < (out.frame_seq - 1) / FPS <= doubted + 2.0
    assert {level for t, level, _ in log.seen if t >= doubted + 2.0} == {"alert"}


def test_a_wall_the_head_doubts_on_most_frames_stays_unknown_and_never_alerts() -> None:
    """Seed 234, a grey wall from 8 to 18 s after a full running belt, a ROI per lane: the head holds lane 4's view in
    doubt on most frames, and the alert output takes the rest for a gap. The region reads unknown by the doubt hold
    until the wall goes, never alert. An adversarial review saw it read unknown, alert, unknown, alert when a
    region unknown by the hold alone had its frames not in doubt read while the doubt still held its window."""
    stream = ConveyorStream(234, episodes=(Episode("grey_wall", 8.0, 10.0),))
    cfg = lanes_config(stream)
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, Lit(stream), int(22 * FPS))
    lane = [((c.frame_seq - 1) / FPS, str(c.level)) for c in publisher.level_changes if c.roi == "lane-4"]
    assert [level for _, level in lane] == ["unknown", "ok"], lane
    assert 8.0 < lane[0][0] < 12.0 and 17.0 < lane[1][0] < 19.0, lane


def lanes_config(stream: ConveyorStream) -> object:
    """The whole belt and one ROI per lane in view, as the lanes example has them."""
    lanes = [{"name": f"lane-{k + 1}", "box": list(box)} for k, box in enumerate(stream.lane_boxes())]
    return config(rois=[{"name": "belt", "box": [0.0, 0.0, 1.0, 1.0]}, *lanes])


@pytest.mark.parametrize("seed", [116, 150])
def test_a_lane_empty_from_the_start_alerts_and_the_belt_stopping_is_reported(seed: int) -> None:
    """A lane that is already empty when the daemon starts, on belts where its empty stretch holds the scene head in
    doubt: the frames that do say "gap" raise the lane's alert (it must not read unknown for want of frames with
    product), and the belt stopping at 8 s is reported within 3 s (a lane in doubt must not blind the belt motion
    that the other lanes show). An adversarial review of the doubt hold lost both on these seeds."""
    stream = ConveyorStream(seed, drops=(Drop(-10.0, 40.0, lanes=(1,)),), stops=(Stop(8.0, 8.0),))
    cfg = lanes_config(stream)
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, Lit(stream), int(20 * FPS))
    lanes = [(c.roi, str(c.level)) for c in publisher.changes if isinstance(c, LevelChanged) and c.roi.startswith("lane-")]
    assert lanes[:1] and lanes[0][1] == "alert" and "unknown" not in {level for _, level in lanes}, lanes
    stops = [(c.frame_seq - 1) / FPS for c in publisher.changes if isinstance(c, BeltChanged) and c.belt == Belt.STOPPED]
    assert stops and 8.0 <= stops[0] <= 11.0, stops


@pytest.mark.parametrize("seed", [170, 173])
def test_a_lane_empty_from_the_start_that_the_head_holds_in_doubt_does_not_read_a_stale_ok(seed: int) -> None:
    """The middle lane in view is empty when the daemon starts, and the scene head holds that lane's view in doubt on
    every frame (0.7-0.88) while the alert output says "gap" (about 1.0): no frame feeds its level. It published
    `ok` for all 20 s (benchmark seeds 161-200: 6 of 40 such lanes), an `ok` nothing had judged. Held in doubt that
    long, the lane must read unknown (or alert), never `ok` after the hold, and the other lanes stay `ok`."""
    visible = ConveyorStream(seed).visible_lanes()
    place = len(visible) // 2
    stream = ConveyorStream(seed, drops=(Drop(-10.0, 40.0, lanes=(visible[place][0],)),))
    cfg = lanes_config(stream)
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, Lit(stream), int(20 * FPS))
    target = f"lane-{place + 1}"
    lane = [((c.frame_seq - 1) / FPS, str(c.level)) for c in publisher.level_changes if c.roi == target]
    assert lane and lane[0][0] <= DOUBT_HOLD_S + 1.0 and lane[0][1] in ("unknown", "alert"), lane
    assert "ok" not in {level for _, level in lane}, lane
    others = {c.roi for c in publisher.level_changes if c.roi.startswith("lane-") and c.roi != target}
    assert not others, others


def test_a_lane_starving_before_the_belt_stops_does_not_hide_the_stop() -> None:
    """Lane 2 starves at 14 s (the whole belt's ROI still reads ok: a lane's gap is not a gap across the flow), then
    the belt stops at 20 s: reported within 3 s although the whole-belt view is held in doubt (seed 105: the review
    saw the stop never reported)."""
    stream = ConveyorStream(105, drops=(Drop(14.0, 20.0, lanes=(1,)),), stops=(Stop(20.0, 8.0),))
    cfg = lanes_config(stream)
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, Lit(stream), int(32 * FPS))
    stops = [(c.frame_seq - 1) / FPS for c in publisher.changes if isinstance(c, BeltChanged) and c.belt == Belt.STOPPED]
    assert stops and 20.0 <= stops[0] <= 23.0, stops


@pytest.mark.parametrize("seed", [247, 249])
def test_a_still_hand_over_a_running_belt_with_a_roi_per_lane_is_not_a_stopped_belt(seed: int) -> None:
    """A hand held still over a full, running belt for 10 s, with the whole belt and one ROI per lane: the head
    calls the whole belt's view not a belt, the lanes' views still a belt. Motion is not read while any ROI reads
    unknown, since a still hand takes over the whole frame's phase correlation (a rule that read motion while fewer
    than half the ROIs read unknown reported these belts stopped for 9 s; an adversarial review)."""
    from converter.holdout.cases import _hand

    stream = ConveyorStream(seed)
    mask = _hand(np.random.default_rng((seed, 17, 0)), 320, 240)[:, :, None]
    skin, noise = np.array([198, 158, 135], np.float32), np.random.default_rng(5)

    class HandHeldStill:
        fps = FPS

        def frame(self, i: int) -> np.ndarray:
            pixels = stream.frame_at(i / FPS)
            if 10.0 <= i / FPS < 20.0:
                held = pixels * (1 - mask) + skin * mask + noise.normal(0, 2, pixels.shape) * mask
                pixels = np.clip(held, 0, 255).astype(np.uint8)
            return pixels

    cfg = lanes_config(stream)
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, HandHeldStill(), int(24 * FPS))
    unknown = {c.roi for c in publisher.changes if isinstance(c, LevelChanged) and c.level == Level.UNKNOWN}
    assert unknown and len(unknown) < len(cfg.rois) / 2, unknown  # the case: a minority of ROIs read unknown
    assert not [c for c in publisher.changes if isinstance(c, BeltChanged)], "the belt never stopped"


TEN_GAPS = Script(gaps=tuple((10.0 + 14.0 * k, 2.2 + 0.25 * k) for k in range(10)), missing_rows=(17.0, 45.0, 101.0),
                  stops=())


@pytest.mark.both_runtimes
def test_a_held_out_stream_with_ten_gaps_raises_exactly_ten_alerts_and_ten_recoveries(bundled: Classifier) -> None:
    """The reviewer's check on our own second renderer: the bundled model at its card's threshold, through the daemon
    with the default config, over a stream with ten gaps of 2.2 to 4.5 pitches (and single missing rows, which are
    acceptable): ten alerts, ten recoveries, nothing else."""
    stream = HoldoutStream(20261127, TEN_GAPS, fps=FPS)
    publisher, _, _ = run_daemon(config(), bundled, stream, int(155 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")] * 10
    for k, change in enumerate(c for c in publisher.level_changes if c.level == Level.ALERT):
        first, last = stream.gap_visible_span(k)
        assert first - 0.5 <= (change.frame_seq - 1) / FPS <= last + 1.0, (k, change.frame_seq)


@pytest.mark.both_runtimes
@pytest.mark.parametrize("kind", ["hand", "covered_lens", "grey_wall", "noise", "glare"])
def test_unknown_scenes_never_alert_and_read_unknown(bundled: Classifier, kind: str) -> None:
    """Each kind of scene that is not a belt, for 6 s on a running belt: never an alert, state/belt unknown."""
    stream = HoldoutStream(31, Script(episodes=((kind, 5.0, 6.0),)), fps=FPS)
    _, log, _ = run_daemon(config(), bundled, stream, int(14 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}
    during = [level for t, level, _ in log.seen if 6.0 <= t < 11.0]
    assert during.count("unknown") >= 0.95 * len(during), (kind, during.count("unknown"), len(during))


@pytest.mark.parametrize("seed", [0, 1, 12])
def test_a_covered_lens_held_still_after_a_running_belt_never_alerts_and_reads_unknown(bundled: Classifier, seed: int) -> None:
    """The second renderer's covered-lens still (a soft cloth over 70-100% of the view), held still with a little
    sensor noise after 4 s of a running belt. The bundled model takes it for an empty belt and its scene judges call
    it a belt (13 of 40 such stills raised an alert, seeds 0-39). Nothing in the view moves, and a gap only ever
    arrives on a moving belt: the level must not rise, and the view reads unknown."""
    from PIL import Image

    from converter.holdout.cases import render_case

    still = render_case("lens covered", np.random.default_rng((seed, 77))).image
    still = np.asarray(Image.fromarray(still).resize((320, 240), Image.Resampling.BILINEAR))
    stream = HeldStill(HoldoutStream(seed, Script(), fps=FPS), still, 4.0, 10.0)
    publisher, log, _ = run_daemon(config(), bundled, stream, int(10 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}, levels_of(publisher.changes)
    late = [level for t, level, _ in log.seen if 7.0 <= t < 10.0]
    assert set(late) == {"unknown"}, (late.count("unknown"), len(late))


@pytest.mark.parametrize("seed", [0, 1, 6])
def test_a_hand_still_that_replaces_a_running_belts_view_reads_unknown_not_ok(bundled: Classifier, seed: int) -> None:
    """The second renderer's hand-over-the-belt still, byte for byte the same frame, after 4 s of a running belt (an
    image file replayed in a loop; a camera knocked to face a still scene). On these seeds the model reads product and
    the scene judges a belt: the region read `ok` throughout, with the belt `stopped` (9 of 40 seeds 0-39). No belt
    replaces its whole picture at once: once the view has stood still after the jump it reads unknown, while the belt
    motion still reads it stopped."""
    from PIL import Image

    from converter.holdout.cases import render_case

    still = render_case("hand over the belt", np.random.default_rng((seed, 77))).image
    still = np.asarray(Image.fromarray(still).resize((320, 240), Image.Resampling.BILINEAR))
    belt = HoldoutStream(seed, Script(), fps=FPS)

    class Replaced:
        fps = FPS

        def frame(self, i: int) -> np.ndarray:
            return belt.frame(i) if i < 4 * FPS else still

    publisher, log, _ = run_daemon(config(), bundled, Replaced(), int(10 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}, levels_of(publisher.changes)
    late = [level for t, level, _ in log.seen if 5.0 <= t < 10.0]
    assert set(late) == {"unknown"}, (late.count("unknown"), len(late))
    unknown = [c for c in publisher.level_changes if c.level == Level.UNKNOWN]
    assert unknown and "appeared all at once" in unknown[0].reason, [c.reason for c in unknown]
    assert log.seen[-1][2] == "stopped"


@pytest.mark.parametrize("seed", [6, 8])
def test_a_gap_on_a_stopped_belt_alerts_again_once_a_hand_over_it_has_gone(bundled: Classifier, seed: int) -> None:
    """A gap in view, the belt stops with it (alert), a hand comes over it for 3 s and goes, the belt still stopped. The
    hand came all at once and went all at once: once it has gone the picture before it is back, and so is its
    alert (an adversarial review of the held-picture rule's first version: `unknown` from the hand until the belt ran
    again, 12 s later)."""
    first, last = HoldoutStream(seed, Script(gaps=((6.0, 3.0),)), fps=FPS).gap_visible_span(0)
    stop = (first + last) / 2
    hand = stop + 3.0
    stream = HoldoutStream(seed, Script(gaps=((6.0, 3.0),), stops=((stop, 15.0),), episodes=(("hand", hand, 3.0),)), fps=FPS)
    publisher, log, _ = run_daemon(config(), bundled, stream, int((stop + 15.0) * FPS))
    after = [level for t, level, _ in log.seen if hand + 3.5 <= t < stop + 15.0]
    assert after and set(after) == {"alert"}, (levels_of(publisher.changes), {v: after.count(v) for v in set(after)})


class Slideshow:
    """The stream for ``before_s``, then distinct stills of one hard case, each held for a second with a little sensor
    noise: a camera facing a hand that shifts now and then, or a folder of such pictures replayed as video."""

    def __init__(self, stream: HoldoutStream, case: str, seed: int, slides: int = 8, before_s: float = 4.0) -> None:
        from PIL import Image

        from converter.holdout.cases import render_case

        self.stream, self.fps, self.before = stream, stream.fps, int(before_s * stream.fps)
        self.slides = [np.asarray(Image.fromarray(render_case(case, np.random.default_rng((seed, 500 + k))).image)
                                  .resize((320, 240), Image.Resampling.BILINEAR)).astype(np.float32) for k in range(slides)]
        self._noise = np.random.default_rng(9)

    def frame(self, i: int) -> np.ndarray:
        if i < self.before:
            return self.stream.frame(i)
        still = self.slides[min(int((i - self.before) / self.fps), len(self.slides) - 1)]
        return np.clip(still + self._noise.normal(0, 2, still.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("case", "seed"), [("lens covered", 11), ("lens covered", 2), ("hand over the belt", 5)])
def test_hard_case_stills_shown_one_after_another_never_alert_and_read_unknown_throughout(bundled: Classifier, case: str,
                                                                                           seed: int) -> None:
    """Eight distinct stills of a hand or a covered lens, a second each, after a running belt. The scene judges miss
    some of them (the second renderer's: a quarter to a third); the region read `ok` through most of each missed one
    (on these seeds 24-36 frames of 120 after the first unknown), and on seed 11 a missed cover, whose sensor noise gave
    too few readings to call it still, raised an alert. Once unknown, the region must stay unknown: it reads its level
    again only once the belt is seen moving (or after RETURN_HOLD_S)."""
    stream = Slideshow(HoldoutStream(seed, Script(), fps=FPS), case, seed)
    publisher, log, _ = run_daemon(config(), bundled, stream, stream.before + int(8 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}, levels_of(publisher.changes)
    held = [str(level) for _, level, _ in log.seen[stream.before:]]
    first = held.index("unknown")
    assert first <= int(2.5 * FPS) and set(held[first:]) == {"unknown"}, (first, held[first:].count("ok"))


@pytest.mark.parametrize("seed", [5, 2])
def test_a_gap_in_view_as_a_hand_leaves_a_belt_filmed_at_5_fps_alerts(bundled: Classifier, seed: int) -> None:
    """A hand over a running belt for 9-12 s, a gap of 6 pitches from 10 s, the camera at 5 frames/s: the alert comes
    within 0.6 s of the hand going, as it did before the region waited to see the belt move after the hand (an
    adversarial review of the first version, which refused the rise until then and so restarted its dwell: on seed 5
    the alert was lost, on seed 2 it came 0.6 s late)."""
    fps = 5.0
    stream = HoldoutStream(seed, Script(gaps=((10.0, 6.0),), episodes=(("hand", 9.0, 3.0),)), fps=fps)
    cfg = parse_config({"source": {"type": "synthetic", "fps": fps}}, check_files=False)
    publisher, _, _ = run_daemon(cfg, bundled, stream, int(16 * fps))
    alerts = [(c.frame_seq - 1) / fps for c in publisher.level_changes if c.level == Level.ALERT]
    assert len(alerts) == 1 and 12.0 <= alerts[0] <= 13.2, levels_of(publisher.changes)


def test_a_lane_gap_as_a_cover_leaves_alerts_on_time_while_another_lane_stays_covered() -> None:
    """A covered lens over a lanes view for 8-11 s, and a still patch over lane 3 until 16 s; lane 2 starves from
    9 s. Belt motion is not read while a ROI reads unknown, so lane 2 cannot be seen moving: it must not wait the
    whole hold (an adversarial review: its alert came at 13.7 s instead of 11.6 s)."""
    sim = ConveyorStream(94, drops=(Drop(9.0, 6.0, lanes=(1,)),), episodes=(Episode("covered_lens", 8.0, 3.0),))
    cfg = lanes_config(sim)
    _, y, _, h = sim.lane_boxes()[2]
    rng = np.random.default_rng(5)

    class Patched:
        fps = FPS

        def frame(self, i: int) -> np.ndarray:
            pixels = sim.frame_at(i / FPS).astype(np.float32)
            if 8.0 <= i / FPS < 16.0:  # a still, skin-coloured patch over lane 3
                rows = slice(int(y * pixels.shape[0]), int((y + h) * pixels.shape[0]))
                pixels[rows] = np.array([198, 158, 135], np.float32) + rng.normal(0, 2, pixels[rows].shape)
            return np.clip(pixels, 0, 255).astype(np.uint8)

    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(cfg.rois))  # type: ignore[attr-defined]
    publisher, _, _ = run_daemon(cfg, classifier, Patched(), int(20 * FPS))
    lane = [((c.frame_seq - 1) / FPS, str(c.level)) for c in publisher.level_changes if c.roi == "lane-2"]
    assert [level for _, level in lane] == ["unknown", "ok", "alert", "ok"], lane
    assert lane[2][0] <= 12.0, lane


def test_a_gap_in_view_of_a_belt_standing_still_reads_unknown_and_alerts_once_the_belt_runs() -> None:
    """The belt stands still from the start with a gap in view (the model says "gap" on every frame): the rise is
    refused, the belt reads unknown and is reported stopped; once the belt runs (6 s) the alert comes within 1.5 s,
    straight from unknown. The first version judged stillness on every reading since the rise began (4 s of them)
    and read unknown, then ok, for 2 s after the belt ran again. (A still first picture is read as one that may be
    held in front of the camera, whatever the model says: that is the reason given.)"""
    stream = HoldoutStream(7, Script(stops=((0.0, 6.0),)), fps=FPS)
    publisher, _, _ = run_daemon(config(), FakeClassifier.constant(0.95), stream, int(12 * FPS))
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "alert")]
    unknown, alert = publisher.level_changes
    assert "appeared all at once" in unknown.reason and (unknown.frame_seq - 1) / FPS <= 2.0
    assert 6.0 < (alert.frame_seq - 1) / FPS <= 7.5
    belts = [(str(c.belt), (c.frame_seq - 1) / FPS) for c in publisher.changes if isinstance(c, BeltChanged)]
    assert [b for b, _ in belts] == ["stopped", "moving"] and belts[0][1] <= 3.0


@pytest.mark.parametrize("seed", [161, 169])
def test_a_belt_that_stops_as_a_gap_arrives_reads_unknown_then_alerts_once_it_runs(bundled: Classifier, seed: int) -> None:
    """A gap reaches the view and the belt stops 0.6 s later for 4 s, before the alert (an adversarial review): the
    rise is refused on the still view and the belt reads unknown, never a stale ok (once running again, the gap's
    frames can sit in the scene head's doubt and feed nothing: the region fell back to ok for 5 s with the smoothed
    probability at 1.0); the alert comes within 1.5 s of the restart and ends after the gap."""
    from benchmarks.gap_belts import SimulatorFrames

    stream = ConveyorStream(seed, drops=(Drop(20.0, 10.0),), stops=(Stop(20.6, 4.0),))
    publisher, _, _ = run_daemon(config(), bundled, SimulatorFrames(stream), int(34 * FPS))
    assert levels_of(publisher.changes) == [("ok", "unknown"), ("unknown", "alert"), ("alert", "ok")]
    assert "nothing in it moves" in publisher.level_changes[0].reason  # a belt seen running: not a held picture
    alert = publisher.level_changes[1]
    assert 24.6 < (alert.frame_seq - 1) / FPS <= 26.1


class Later:
    """A stream's frames from ``start_s`` on (the daemon's first frame is the stream's frame at ``start_s``)."""

    fps = FPS

    def __init__(self, stream: HoldoutStream, start_s: float) -> None:
        self.stream, self.first = stream, int(start_s * FPS)

    def frame(self, i: int) -> np.ndarray:
        return self.stream.frame(self.first + i)


def test_gaps_on_a_brightly_lit_cream_belt_alert_and_the_belt_never_reads_unknown(bundled: Classifier) -> None:
    """The second renderer's belt 202 is cream and brightly lit: its red channel clips, green and blue stay bright.
    The glare rule read a quarter of its frames unknown, and two gaps in that stretch read unknown instead of alert
    (the detection hour's seed 2)."""
    stream = HoldoutStream(202, Script(gaps=((68.0, 2.75), (80.0, 2.42))), fps=FPS)
    publisher, log, _ = run_daemon(config(), bundled, Later(stream, 45.0), int(45 * FPS))
    assert levels_of(publisher.changes) == [("ok", "alert"), ("alert", "ok")] * 2
    assert "unknown" not in {level for _, level, _ in log.seen}


def test_a_dark_cloth_thrown_over_most_of_the_view_reads_unknown_and_never_alerts_with_the_default_config(
        bundled: Classifier) -> None:
    """A dark cloth over 80% of a light belt's view, all at once, the belt running on in the corner left (the bundled
    scene head misses it and the alert output takes it for a gap): unknown, never alert, with the default config."""
    stream = Clothed(ConveyorStream(3), at=20.0, until=28.0)
    publisher, log, _ = run_daemon(config(), bundled, stream, int(32 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}
    into = [c for c in publisher.level_changes if c.level == Level.UNKNOWN]
    assert into and "covered" in into[0].reason, [c.reason for c in publisher.level_changes]
    during = [level for t, level, _ in log.seen if 21.0 <= t < 28.0]
    assert during.count("unknown") >= 0.95 * len(during), during


def test_a_cover_over_most_of_the_lens_on_the_second_renderers_belt_never_alerts(bundled: Classifier) -> None:
    """The second renderer's belt 301: a dark cover over three quarters of the view, the belt running beside it. The
    scene head misses it on every frame; with the default config it read as a gap for 5.7 s (the detection hour's
    seed 3). Now: unknown, never alert."""
    stream = HoldoutStream(301, Script(episodes=(("covered_lens", 15.0, 6.0),)), fps=FPS)
    _, log, _ = run_daemon(config(), bundled, stream, int(24 * FPS))
    assert "alert" not in {level for _, level, _ in log.seen}
    during = [level for t, level, _ in log.seen if 16.0 <= t < 21.0]
    assert during.count("unknown") >= 0.95 * len(during), (during.count("unknown"), len(during))
