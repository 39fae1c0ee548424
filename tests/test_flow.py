"""A camera that sees the flow down the picture: ``rois[].flow: down`` turns the box a quarter before the model
sees it, so the model gets the flow across, as most of its training frames show it."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import BUNDLED_MODEL, expected_runtime

from benchmarks.streams import run_daemon
from converter.holdout import HoldoutStream, Script
from edge.config import parse_config
from edge.console.rois import replace_rois
from edge.evidence.images import training_crop
from edge.inference import Classifier, load_runtime
from edge.motion import BeltMotion, FlowWatch, MotionRules, small_grey
from edge.pipeline import Pipeline
from edge.preprocess import Box, quantization_table, resize_rgb
from edge.simulator import ConveyorStream, render_still
from edge.sources.base import Frame


def still(seed: int, label: str) -> np.ndarray:
    return render_still(np.random.default_rng(seed), label, lane_crop=False, kind="full" if label == "acceptable" else None)[0]


def test_a_turned_box_shows_the_model_the_flow_across() -> None:
    """A frame whose flow runs down (the transpose of a frame whose flow runs across), cut with a turned box,
    gives exactly the pixels the across frame gives with a plain box; a box anywhere in the frame too."""
    across = still(3, "alert")
    down = np.ascontiguousarray(across.transpose(1, 0, 2))
    assert np.array_equal(resize_rgb(down, Box(turned=True)), resize_rgb(across))
    assert np.array_equal(resize_rgb(down, Box(0.2, 0.1, 0.5, 0.7, turned=True)), resize_rgb(across, Box(0.1, 0.2, 0.7, 0.5)))
    assert Box.of_roi([0.2, 0.1, 0.5, 0.7], "down") == Box(0.2, 0.1, 0.5, 0.7, turned=True)


def test_the_pipeline_turns_a_box_whose_flow_runs_down() -> None:
    """The daemon's pipeline with ``flow: down`` on the down frame scores what ``flow: across`` scores on the across frame."""
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()))
    across = still(5, "alert")
    down = np.ascontiguousarray(across.transpose(1, 0, 2))
    scores = []
    for frame, flow in ((across, "across"), (down, "down")):
        config = parse_config({"rois": [{"name": "belt", "box": [0, 0, 1, 1], "flow": flow}]}, check_files=False)
        pipeline = Pipeline(config, classifier)
        pipeline.process(Frame(frame, 1, 0.0, 0.0))
        scores.append(pipeline._batch[0].copy())
    assert np.array_equal(scores[0], scores[1])


def test_the_bundled_model_reads_a_downward_flow_better_turned() -> None:
    """Simulator stills whose flow runs down the picture (a seed no model was trained on): the bundled model, shown
    them turned, misses fewer gaps and raises fewer false alerts than shown them as they are."""
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()))
    threshold, spec = classifier.card.threshold, classifier.card.input
    table = quantization_table(spec.scale, spec.zero_point, spec.dtype)
    rng = np.random.default_rng(21)
    errors = {False: 0, True: 0}
    for label in ("acceptable", "alert"):
        found = 0
        while found < 60:
            image, truth = render_still(rng, label, lane_crop=False)
            if truth.conditions["vertical"] < 0.5:
                continue
            found += 1
            for turned in (False, True):
                probability = float(classifier.classify(table[resize_rgb(image, Box(turned=turned))][None]).alert[0])
                errors[turned] += (probability >= threshold) != (label == "alert")
    assert errors[True] < errors[False], errors
    assert errors[True] <= 0.1 * 120, errors


def test_a_turned_box_stores_its_training_crop_turned() -> None:
    """Crops captured for teaching are stored the way the model sees them, so a model trained on them learns
    the flow across."""
    frame = still(4, "acceptable")
    plain = training_crop(frame, Box(0.1, 0.2, 0.5, 0.6), 128)
    assert np.array_equal(training_crop(frame, Box(0.1, 0.2, 0.5, 0.6, turned=True), 128), plain.transpose(1, 0, 2))


@pytest.mark.output_side
def test_the_lane_editor_keeps_a_lanes_flow() -> None:
    """Saving lanes from the console writes ``flow: down`` back (and nothing for the default)."""
    text = replace_rois("rois: []\n", [{"name": "a", "box": [0, 0, 0.5, 1], "flow": "down"},
                                       {"name": "b", "box": [0.5, 0, 0.5, 1], "flow": "across"}])
    config = parse_config(yaml.safe_load(text), check_files=False)
    assert [(r.name, r.flow) for r in config.rois] == [("a", "down"), ("b", "across")]
    assert text.count("flow") == 1


class Turned:
    """A held-out stream seen by a camera turned a quarter: the flow runs down the picture."""

    def __init__(self, stream: HoldoutStream) -> None:
        self.stream, self.fps = stream, stream.fps

    def frame(self, index: int) -> np.ndarray:
        return np.ascontiguousarray(self.stream.frame(index).transpose(1, 0, 2))


def test_belt_motion_says_which_way_the_belt_runs() -> None:
    """Across for the simulator's belt, down for the same frames turned, none while it stands still."""
    stream = ConveyorStream(3, (320, 240), 160.0)
    for turn, expected in ((False, "across"), (True, "down")):
        motion = BeltMotion(MotionRules(), 320)
        readings = []
        for i in range(30):
            frame = stream.frame_at(i / 15.0)
            readings.append(motion.update(small_grey(frame.transpose(1, 0, 2) if turn else frame), i / 15.0).direction)
        assert readings[-10:] == [expected] * 10, readings
    still = BeltMotion(MotionRules(), 320)
    frame = stream.frame_at(0.0)
    assert [still.update(small_grey(frame), i / 15.0).direction for i in range(30)][-1] is None


def test_a_roi_whose_flow_the_belt_contradicts_is_named_once_after_ten_seconds() -> None:
    watch = FlowWatch(hold_s=10.0)
    flows = {"belt": "across", "lane-1": "down"}
    assert watch.update("down", flows, 0.0) == []
    assert watch.update(None, flows, 5.0) == []  # no agreed reading: neither for nor against
    assert watch.update("down", flows, 9.9) == []
    assert watch.update("down", flows, 10.0) == ["belt"]
    assert watch.update("down", flows, 30.0) == []  # once
    again = FlowWatch(hold_s=10.0)
    assert again.update("down", flows, 0.0) == [] and again.update("across", flows, 5.0) == []
    assert again.update("down", flows, 12.0) == []  # the contradiction started again at 12 s


def test_the_daemon_names_a_roi_set_across_on_a_belt_that_runs_down(caplog: pytest.LogCaptureFixture) -> None:
    """Twenty seconds of a turned camera: with flow across the log says to set flow: down; with flow down it says nothing."""
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()))
    for flow, warned in (("across", True), ("down", False)):
        caplog.clear()
        config = parse_config({"source": {"type": "synthetic", "fps": 15.0},
                               "rois": [{"name": "belt", "box": [0, 0, 1, 1], "flow": flow}]}, check_files=False)
        run_daemon(config, classifier, Turned(HoldoutStream(7, Script(), fps=15.0)), 300)
        hints = [r.getMessage() for r in caplog.records if "set rois[].flow: down" in r.getMessage()]
        assert (len(hints) == 1) == warned and len(hints) <= 1, hints
