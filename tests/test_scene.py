"""Scene judges: the statistics flag glare, noise, blank and covered views; the model head's threshold applies."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BUNDLED_MODEL

from edge.modelcard import card_path_for, load_card
from edge.preprocess import resize_rgb
from edge.scene import (
    BELT,
    DOUBT_HOLD_S,
    IN_DOUBT,
    DarkOnset,
    LightBelt,
    SceneRules,
    SceneStatistics,
    SceneVerdict,
    SceneWatch,
    judge_scene,
    judge_statistics,
    scene_statistics,
)
from edge.simulator import render_still

RULES = SceneRules()
# What the device runs with the bundled model: the limits its card carries (calibrated on validation).
BUNDLED_RULES = load_card(card_path_for(BUNDLED_MODEL)).scene


def crop(image: np.ndarray) -> np.ndarray:
    return resize_rgb(image)


def test_belt_frames_pass_the_statistics() -> None:
    """Ordinary acceptable and alert stills from the simulator are judged belt scenes (at the default limits)."""
    rng = np.random.default_rng(4)
    verdicts = [judge_statistics(scene_statistics(crop(render_still(rng, label, lane_crop=False)[0])), RULES)
                for label in ("acceptable", "alert") * 30]
    assert sum(v.unknown for v in verdicts) <= 1, [v.reason for v in verdicts if v.unknown]


@pytest.mark.parametrize("make,reason", [
    (lambda rng: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "noise"),
    (lambda rng: np.full((64, 64, 3), 255, np.uint8), "glare"),
    (lambda rng: np.clip(np.full((64, 64, 3), 128.0) + rng.normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8), "featureless"),
    (lambda rng: np.full((64, 64, 3), 3, np.uint8), "covered or unlit"),
])
def test_each_statistic_names_its_reason(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    """Pure noise, a blown-out view, a flat grey wall and a capped lens: unknown, each with its own reason."""
    verdict = judge_scene(make(np.random.default_rng(0)), None, RULES)
    assert verdict.unknown and verdict.reason.startswith(reason), verdict


def test_a_colour_cast_that_clips_one_channel_is_not_glare() -> None:
    """A brightly lit belt under a warm cast clips its red channel over half the view: that is no glare (a
    held-out stream read a third of its normal frames unknown so). Turned towards white, it is."""
    rng = np.random.default_rng(3)
    belt = crop(render_still(rng, "acceptable", lane_crop=False, kind="full")[0]).astype(np.float32)
    gain = 250.0 / np.percentile(belt[..., 0], 30)  # red clips over 70% of the view
    warm = np.clip(belt * np.array([gain, 1.0, 0.8], np.float32), 0, 255).astype(np.uint8)
    assert np.mean(warm[..., 0] >= 250) > 0.5  # the cast really clips red over most of the view
    assert not judge_statistics(scene_statistics(warm), RULES).unknown
    white = np.clip(belt * np.float32(255.0 / np.percentile(belt.min(axis=2), 30)), 0, 255).astype(np.uint8)
    verdict = judge_statistics(scene_statistics(white), RULES)
    assert verdict.unknown and verdict.reason.startswith("glare"), verdict


def test_a_brightly_lit_cream_belt_is_not_glare() -> None:
    """A cream belt under bright light clips its red channel while green and blue stay near 230 and 205 (the second
    renderer's cream belt read a quarter of its frames as glare so, and lost three gaps of seven to it). Blown out
    means every channel near clipping: the same belt turned white is glare."""
    rng = np.random.default_rng(3)
    belt = crop(render_still(rng, "acceptable", lane_crop=False, kind="full")[0]).astype(np.float32)
    lit = belt * np.float32(240.0 / np.percentile(belt.mean(axis=2), 30))
    cream = np.clip(lit * np.array([1.1, 0.97, 0.86], np.float32), 0, 255).astype(np.uint8)
    red_clipped_others_over_200 = (cream.max(axis=2) >= 250) & (cream.min(axis=2) >= 200)
    assert np.mean(red_clipped_others_over_200) > 0.3  # what read as blown out, over a third of the view
    assert not judge_statistics(scene_statistics(cream), RULES).unknown
    white = np.clip(lit * np.float32(1.1), 0, 255).astype(np.uint8)
    verdict = judge_statistics(scene_statistics(white), RULES)
    assert verdict.unknown and verdict.reason.startswith("glare"), verdict


def dark_cloth(belt: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``belt`` with a dark cloth over its left ``share`` (a blind renderer's cover: level ~18, std ~2, lit a little
    unevenly), the rest of the belt still in view."""
    covered = belt.copy()
    width = round(belt.shape[1] * share)
    cloth = 18.0 + np.linspace(-3, 3, belt.shape[0])[:, None, None] + rng.normal(0, 2, (belt.shape[0], width, 3))
    covered[:, :width] = np.clip(cloth, 0, 255).astype(np.uint8)
    return covered


def test_a_dark_cloth_over_most_of_a_light_belts_view_is_covered() -> None:
    """A dark cover over 80% of the view, a corner of belt and product beside it: the crop's mean level and its
    detail are those of a belt, but the model reads the dark part as an empty belt (a blind renderer's cover raised
    an alert so). Where the belt has shown itself light it reads covered; over 40% of the view it is still the
    belt's business; where the belt has not (it may be dark itself), the rule waits."""
    rng = np.random.default_rng(11)
    belt = crop(render_still(rng, "acceptable", lane_crop=False, kind="full")[0])
    covered, usual = scene_statistics(dark_cloth(belt, 0.8, rng)), scene_statistics(belt).bright_level
    verdict = judge_statistics(covered, BUNDLED_RULES, belt_level=usual)
    assert verdict.unknown and verdict.reason.startswith("covered"), verdict
    assert not judge_statistics(scene_statistics(dark_cloth(belt, 0.4, rng)), BUNDLED_RULES, belt_level=usual).unknown
    assert not judge_statistics(covered, BUNDLED_RULES, belt_level=None).unknown
    assert not judge_statistics(covered, BUNDLED_RULES, belt_level=2.5 * covered.bright_level).unknown  # the light changed


def test_a_belt_shows_itself_light_after_enough_frames_and_dark_again() -> None:
    """25 frames of product on a light belt arm the dark-view rule with the view's usual level; a black belt never
    does; a belt that turns dark (a lamp fails) disarms it within as many frames."""
    light, dark = SceneStatistics(0, 0.9, 20, 150, 0.0, 0.02, 200), SceneStatistics(0, 0.9, 20, 40, 0.1, 0.4, 60)
    belt = LightBelt()
    for _ in range(24):
        belt.see(light)
    assert belt.level is None
    belt.see(light)
    assert belt.level == 200
    for _ in range(13):
        belt.see(dark)
    assert belt.level is None
    black = LightBelt()
    for _ in range(100):
        black.see(dark)
    assert black.level is None


def test_a_view_is_covered_at_once_only_when_it_goes_dark_all_at_once() -> None:
    """A cloth or a coat over the lens darkens most of the view between two readings (dark share 0 -> 0.75); a gap
    travelling into a shadow's empty belt does so over several (0.22 when the shadow falls over product, 0.6 two
    seconds later); a view dark from the first reading was never seen lit. Only the first counts, and it lasts while
    the view stays dark; lit again, it is over."""
    limit = 0.6
    cover = DarkOnset()
    assert [cover.see(share, limit) for share in [0.0, 0.0, 0.75, 0.72, 0.7, 0.3, 0.75, 0.0, 0.8]] == \
        [False, False, True, True, True, False, False, False, True]  # dark again without a lit reading between: no
    shadow = DarkOnset()
    assert not any(shadow.see(share, limit) for share in [0.0, 0.22, 0.25, 0.23, 0.35, 0.52, 0.61, 0.66])
    from_start = DarkOnset()
    assert not any(from_start.see(0.75, limit) for _ in range(10))
    over_two_readings = DarkOnset()  # a fast gap into a shadow: a reading caught it half way
    assert not any(over_two_readings.see(share, limit) for share in [0.0, 0.1, 0.4, 0.7])


def test_an_empty_belt_at_night_is_not_covered() -> None:
    """Night-shift stills of gaps (an empty belt is dark) stay belt scenes even with the dark-view rule armed: a light
    belt at night keeps its texture and its camera's noise."""
    rng = np.random.default_rng(5)
    night = []
    while len(night) < 25:
        image, truth = render_still(rng, "alert", lane_crop=False)
        if truth.conditions["gain"] < 0.5:
            night.append(judge_statistics(scene_statistics(crop(image)), BUNDLED_RULES, belt_level=0.0))
    assert not any(v.unknown for v in night), [v.reason for v in night if v.unknown]


def test_a_gradient_is_not_detail() -> None:
    """A smooth lighting ramp over a blank wall has no detail once the fitted plane is removed."""
    ramp = np.linspace(40, 200, 64)[None, :, None] * np.ones((64, 1, 3))
    stats = scene_statistics(ramp.astype(np.uint8))
    assert stats.detail < 1.0 and stats.correlation > 0.9


def test_the_model_head_decides_first_at_the_card_threshold() -> None:
    """With a head threshold of 0.6, 0.59 leaves the verdict to the statistics and 0.6 makes it unknown."""
    rules = SceneRules(unknown_threshold=0.6)
    rng = np.random.default_rng(7)
    belt = crop(render_still(rng, "acceptable", lane_crop=False, kind="full")[0])
    assert not judge_scene(belt, 0.59, rules).unknown
    verdict = judge_scene(belt, 0.6, rules)
    assert verdict.unknown and "model unknown probability 0.60" in verdict.reason
    assert not judge_scene(belt, 0.99, SceneRules(unknown_threshold=None)).unknown  # no head: probability ignored


def test_statistics_cost_little() -> None:
    """The statistics touch one 64x64 crop: a few dozen array operations (timed in benchmarks/detection.py)."""
    image = crop(render_still(np.random.default_rng(1), "alert")[0])
    stats = scene_statistics(image)
    assert 0.0 <= stats.saturated <= 1.0 and -1.0 <= stats.correlation <= 1.0 and stats.detail >= 0 and 0 <= stats.brightness <= 255


def feed(watch: SceneWatch, verdict: SceneVerdict, start: float, seconds: float, fps: float = 15.0) -> list[bool]:
    return [watch.update(verdict, start + k / fps) for k in range(round(seconds * fps))]


def feed_reading(watch: SceneWatch, verdict: SceneVerdict, start: float, seconds: float, reads_ok: bool) -> list[bool]:
    return [watch.update(verdict, start + k / 15.0, reads_ok=reads_ok) for k in range(round(seconds * 15.0))]


def test_doubt_alone_never_withdraws_a_gap() -> None:
    """An empty belt can hold the bundled scene head between its midpoint and the card's threshold for a whole gap
    (an adversarial review measured it on several of the simulator's belts): frames in doubt feed no level, but
    they must not turn a region that reads a gap unknown, or the gap's alert would be withdrawn mid-gap."""
    watch = SceneWatch(0.6, 3)
    assert not any(feed_reading(watch, IN_DOUBT, 0.0, 10.0, reads_ok=False))


def test_a_region_held_in_doubt_while_it_reads_ok_reads_unknown_after_the_hold() -> None:
    """A camera knocked towards a wall that holds the scene head in doubt on every frame (a blind renderer's cream
    wall: never over the card's threshold) feeds no level, so the region would read 'ok' for as long as the wall is
    in view: a stale ok. Held in doubt for DOUBT_HOLD_S while its level reads a full flow, it reads unknown, and the
    belt again once the doubt has gone."""
    watch = SceneWatch(0.6, 3)
    readings = feed_reading(watch, IN_DOUBT, 0.0, 6.0, reads_ok=True)
    first = readings.index(True) / 15.0
    assert DOUBT_HOLD_S <= first <= DOUBT_HOLD_S + 1.0 and all(readings[readings.index(True):])
    assert watch.reason.startswith("in doubt for")
    assert feed_reading(watch, BELT, 6.0, 2.0, reads_ok=True)[-1] is False


def test_a_held_region_released_reads_the_belt_and_the_hold_can_come_again() -> None:
    """``release`` (frames the judges call a belt read a gap while the hold alone made the region unknown) ends the
    hold at once; a level that says ok again, held in doubt again as long, reads unknown again."""
    watch = SceneWatch(0.6, 3)
    assert feed_reading(watch, IN_DOUBT, 0.0, 3.0, reads_ok=True)[-1] and watch.held
    watch.release()
    assert not watch.unknown and not watch.held
    assert not feed_reading(watch, IN_DOUBT, 3.0, 1.0, reads_ok=False)[-1]
    again = feed_reading(watch, IN_DOUBT, 4.0, 3.0, reads_ok=True)
    assert not again[0] and again[-1] and watch.held


def test_a_region_that_reads_a_gap_reads_unknown_only_when_almost_every_frame_is_judged_unknown() -> None:
    """Bursts of frames judged unknown (7 in 9, the rest in doubt) on an empty belt do not withdraw its gap; a scene
    judged unknown on every frame (glare over the gap, a wall the head knows) does."""
    flagged = SceneVerdict(True, "not a belt scene: model unknown probability 0.95 >= 0.88", True)
    watch = SceneWatch(0.6, 3)
    bursts = [flagged if k % 9 >= 2 else IN_DOUBT for k in range(150)]
    assert not any(watch.update(v, k / 15.0, reads_gap=True) for k, v in enumerate(bursts))
    readings = [watch.update(flagged, 10.0 + k / 15.0, reads_gap=True) for k in range(30)]
    assert any(readings) and readings.index(True) <= 10


def test_sparse_doubt_on_a_belt_that_reads_ok_does_not_make_it_unknown() -> None:
    """A belt frame in doubt now and then (one in three) is not a view the model cannot read."""
    watch = SceneWatch(0.6, 3)
    verdicts = [IN_DOUBT if k % 3 == 0 else BELT for k in range(150)]
    assert not any(watch.update(v, k / 15.0, reads_ok=True) for k, v in enumerate(verdicts))


def test_a_scene_with_unknown_frames_reads_unknown_within_its_window() -> None:
    watch = SceneWatch(0.6, 3)
    flagged = SceneVerdict(True, "glare: 60% of pixels blown out (limit 25%)", True)
    readings = feed(watch, flagged, 0.0, 1.0)
    assert readings.index(True) < 5 and watch.reason.startswith("glare")


def test_without_dark_covers_the_device_skips_only_their_statistics() -> None:
    """``dark_views=False`` (scene.dark_covers off) gives the same four statistics and none of the dark ones."""
    rng = np.random.default_rng(11)
    covered = dark_cloth(crop(render_still(rng, "acceptable", lane_crop=False, kind="full")[0]), 0.8, rng)
    full, lean = scene_statistics(covered), scene_statistics(covered, dark_views=False)
    assert (lean.saturated, lean.correlation, lean.detail, lean.brightness) == (full.saturated, full.correlation, full.detail,
                                                                                full.brightness)
    assert full.dark_share > 0.6 and (lean.dark_share, lean.dark_pixels, lean.bright_level) == (0.0, 0.0, 0.0)
