"""Alert levels: smoothing, hysteresis and dwell, as a specification with properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.levels import AlertLevels, LevelRules

DEFAULT = LevelRules.from_bands(window_s=0.6, dwell_s=0.4, min_frames=3, warning=(0.35, 0.25), alert=(0.6, 0.4))


def feed(levels: AlertLevels, probabilities: list[float], fps: float, start: float = 0.0) -> list[tuple[str, str, float]]:
    changes = []
    for i, p in enumerate(probabilities):
        change = levels.update(p, start + i / fps)
        if change is not None:
            changes.append((change.previous, change.level, change.at))
    return changes


def test_a_sustained_gap_raises_alert_then_recovery_returns_ok() -> None:
    """Probability 1 for two seconds gives exactly ok->alert, then 0 gives alert->ok."""
    levels = AlertLevels("belt", DEFAULT)
    changes = feed(levels, [0.0] * 30 + [1.0] * 40 + [0.0] * 40, fps=20)
    assert [(a, b) for a, b, _ in changes] == [("ok", "alert"), ("alert", "ok")]
    assert levels.level == "ok"


def test_only_frames_with_product_make_a_level_read_full_and_a_level_says_ok_until_fed_otherwise() -> None:
    """``reads_full`` holds once fed frames with product, not before any frame was fed, not while frames saying "gap"
    push the level up (even before it changes), not at alert, and not after a restart until frames are fed again.
    ``says_ok`` (a level that would publish an ok nothing checks while doubt keeps frames from it; a long doubt then
    makes the region unknown) also holds before any frame and after a restart at ok, but not after one at alert."""
    levels = AlertLevels("belt", DEFAULT)

    def both() -> tuple[bool, bool]:
        return levels.reads_full, levels.says_ok

    assert both() == (False, True)
    feed(levels, [0.02] * 10, fps=15)
    assert both() == (True, True)
    feed(levels, [0.95] * 2, fps=15, start=1.0)
    assert levels.level == "ok" and both() == (False, False)
    feed(levels, [0.95] * 20, fps=15, start=1.2)
    assert levels.level == "alert" and both() == (False, False)
    levels.restart(levels.level)
    assert both() == (False, False)
    levels.restart(levels.level.__class__("ok"))
    assert both() == (False, True)
    feed(levels, [0.02] * 10, fps=15)
    assert levels.says_ok
    feed(levels, [0.95] * 2, fps=15, start=1.0)
    assert levels.level == "ok" and not levels.says_ok
    feed(levels, [0.95] * 20, fps=15, start=1.2)
    assert levels.level == "alert" and not levels.says_ok
    levels.restart(levels.level)
    assert not levels.says_ok
    levels.restart(levels.level.__class__("ok"))
    assert levels.says_ok


def test_a_single_spike_changes_nothing() -> None:
    """One frame at p=1 in a calm stream never raises a level."""
    levels = AlertLevels("belt", DEFAULT)
    assert feed(levels, [0.0] * 20 + [1.0] + [0.0] * 20, fps=20) == []


def test_middle_probabilities_give_a_warning() -> None:
    """A sustained smoothed probability between the warning and alert thresholds is a warning."""
    levels = AlertLevels("belt", DEFAULT)
    changes = feed(levels, [0.5] * 40, fps=20)
    assert [(a, b) for a, b, _ in changes] == [("ok", "warning")]


def test_hysteresis_holds_alert_above_its_exit_threshold() -> None:
    """Once in alert, a probability below enter but above exit keeps the alert."""
    levels = AlertLevels("belt", DEFAULT)
    feed(levels, [1.0] * 40, fps=20)
    assert levels.level == "alert"
    feed(levels, [0.45] * 100, fps=20, start=2.0)
    assert levels.level == "alert"


def test_dwell_needs_both_time_and_frames() -> None:
    """At 1 frame/s with dwell 0.4 s, min_frames still demands three consecutive frames."""
    rules = LevelRules.from_bands(0.5, 0.4, 3, (0.35, 0.25), (0.6, 0.4))
    levels = AlertLevels("belt", rules)
    changes = feed(levels, [1.0, 1.0, 0.0, 1.0, 1.0, 1.0], fps=1)
    assert [(a, b, t) for a, b, t in changes] == [("ok", "alert", 5.0)]


rates = st.floats(min_value=2.0, max_value=60.0)
windows = st.floats(min_value=0.05, max_value=3.0)
dwells = st.floats(min_value=0.0, max_value=3.0)
frames = st.integers(min_value=2, max_value=8)


@settings(max_examples=200, deadline=None)
@given(fps=rates, window=windows, dwell=dwells, min_frames=frames,
       noise=st.lists(st.floats(min_value=-0.09, max_value=0.09), min_size=50, max_size=400))
def test_no_chatter_under_noise_around_the_alert_threshold(fps: float, window: float, dwell: float, min_frames: int,
                                                           noise: list[float]) -> None:
    """Noise of +-0.09 around the middle of the alert band (0.4-0.6) changes the level at most once."""
    rules = LevelRules.from_bands(window, dwell, min_frames, (0.35, 0.25), (0.6, 0.4))
    levels = AlertLevels("belt", rules)
    changes = feed(levels, [0.5 + n for n in noise], fps)
    assert len(changes) <= 1  # the first settle from ok into warning, then never again


@settings(max_examples=200, deadline=None)
@given(fps=rates, window=windows, dwell=dwells, min_frames=frames,
       history=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=200),
       gap=st.lists(st.floats(min_value=0.6, max_value=1.0), min_size=1, max_size=1))
def test_a_sustained_gap_always_raises_alert_within_the_configured_time(
        fps: float, window: float, dwell: float, min_frames: int, history: list[float], gap: list[float]) -> None:
    """Whatever came before, frames at p >= alert.enter raise alert within window + dwell + min_frames frames."""
    rules = LevelRules.from_bands(window, dwell, min_frames, (0.35, 0.25), (0.6, 0.4))
    levels = AlertLevels("belt", rules)
    feed(levels, history, fps)
    start = len(history) / fps
    bound = window + dwell + (min_frames + 1) / fps
    n = int(bound * fps) + 2
    for i in range(n):
        levels.update(gap[0], start + i / fps)
        if levels.level == "alert":
            assert i / fps <= bound + 1e-9
            break
    assert levels.level == "alert"


@settings(max_examples=200, deadline=None)
@given(fps=rates, window=windows, dwell=dwells, min_frames=frames,
       history=st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=200),
       calm=st.floats(min_value=0.0, max_value=0.24))
def test_recovery_always_returns_to_ok(fps: float, window: float, dwell: float, min_frames: int,
                                       history: list[float], calm: float) -> None:
    """Whatever came before, frames below warning.exit return the level to ok within the same bound."""
    rules = LevelRules.from_bands(window, dwell, min_frames, (0.35, 0.25), (0.6, 0.4))
    levels = AlertLevels("belt", rules)
    feed(levels, history, fps)
    start = len(history) / fps
    bound = window + dwell + (min_frames + 1) / fps
    for i in range(int(bound * fps) + 2):
        levels.update(calm, start + i / fps)
    assert levels.level == "ok"


@settings(max_examples=200, deadline=None)
@given(fps=rates, window=windows, dwell=dwells, min_frames=frames, position=st.integers(min_value=5, max_value=100))
def test_one_odd_frame_never_raises_or_clears_an_alert(fps: float, window: float, dwell: float, min_frames: int,
                                                       position: int) -> None:
    """A single frame at 1.0 in a calm stream never reaches alert; a single 0.0 in a gap never clears it."""
    rules = LevelRules.from_bands(window, dwell, min_frames, (0.35, 0.25), (0.6, 0.4))
    calm = AlertLevels("belt", rules)
    stream = [0.0] * position + [1.0] + [0.0] * 100
    assert all(b != "alert" for _, b, _ in feed(calm, stream, fps))
    gap = AlertLevels("belt", rules)
    feed(gap, [1.0] * 200, fps)
    assert gap.level == "alert"
    assert feed(gap, [1.0] * position + [0.0] + [1.0] * 100, fps, start=200 / fps) == []


def test_a_refused_rise_keeps_the_level_and_a_rise_allowed_again_needs_a_fresh_dwell() -> None:
    """``may_rise=False`` (the caller knows nothing in the view moves) keeps the level where it is however long the
    frames call for a gap, and says since when (until the rise commits); once a rise is allowed again the full dwell
    runs from there. A fall is never refused."""
    levels = AlertLevels("belt", DEFAULT)
    for i in range(20):
        assert levels.update(0.0, i / 20) is None
    assert levels.rising_since is None and levels.held_back_since is None
    for i in range(20, 60):
        assert levels.update(1.0, i / 20, may_rise=False) is None
    assert levels.level == "ok" and levels.smoothed == 1.0
    assert levels.rising_since is not None and 1.0 < levels.rising_since < 1.0 + DEFAULT.window_s
    assert levels.held_back_since == levels.rising_since
    assert levels.update(1.0, 3.0) is None
    assert levels.held_back_since is not None, "held back until the rise commits: a region read unknown goes straight up"
    changes = [(i / 20, levels.update(1.0, i / 20)) for i in range(61, 80)]
    risen = [(t, c) for t, c in changes if c is not None]
    assert len(risen) == 1 and risen[0][1].level == "alert" and risen[0][0] >= 3.0 + DEFAULT.dwell_s
    assert levels.held_back_since is None and levels.rising_since is None
    fall = [levels.update(0.0, i / 20, may_rise=False) for i in range(80, 120)]
    assert [c.level for c in fall if c is not None] == ["ok"]


def test_a_rise_not_yet_allowed_to_commit_keeps_its_dwell_and_commits_on_the_first_frame_allowed() -> None:
    """``may_commit=False`` (a region back from a scene that was not a belt, the belt not yet seen moving): the rise's
    dwell runs but does not end; the first frame allowed to commit commits, with no fresh dwell. Falls commit."""
    levels = AlertLevels("belt", DEFAULT)
    for i in range(20):
        assert levels.update(0.0, i / 20) is None
    for i in range(20, 60):
        assert levels.update(1.0, i / 20, may_commit=False) is None
    assert levels.level == "ok" and levels.held_back_since is None
    change = levels.update(1.0, 3.0)
    assert change is not None and change.level == "alert" and change.at == 3.0
    fall = [levels.update(0.0, i / 20, may_commit=False) for i in range(61, 100)]
    assert [c.level for c in fall if c is not None] == ["ok"]
