"""Lanes out of the box: the example config's ROIs sit on the lanes, and a one-lane gap raises that lane's alert."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BUNDLED_MODEL, REPO, expected_runtime

from edge.config import load_config
from edge.inference import Classifier, load_runtime
from edge.preprocess import Box, resize_rgb
from edge.simulator import ConveyorStream, Drop

LANES = REPO / "edge" / "examples" / "lanes.yaml"


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    return load_config(LANES, check_files=False)


def test_the_example_validates_and_its_lane_boxes_sit_on_the_simulated_lanes(config) -> None:  # type: ignore[no-untyped-def]
    """lanes.yaml is a valid config; its lane boxes match the simulated belt's lanes (seed 94) to 2% of the frame."""
    names = [roi.name for roi in config.rois]
    assert names == ["belt", "lane-1", "lane-2", "lane-3"]
    stream = ConveyorStream(config.source.seed, (config.source.width, config.source.height))
    expected = stream.lane_boxes()
    assert len(expected) == 3
    for roi, box in zip(config.rois[1:], expected, strict=True):
        assert np.allclose(roi.box, box, atol=0.02), (roi.name, roi.box, box)


def test_every_simulated_lane_box_lies_inside_the_frame() -> None:
    """A camera zoomed in on a wide belt leaves its outer lanes out of view (seed 11: five lanes, two outside): they
    get no box, and every box given has a positive height inside the frame (a reviewer saw negative heights)."""
    for seed in range(60):
        boxes = ConveyorStream(seed).lane_boxes()
        assert boxes, seed
        for x, y, width, height in boxes:
            assert x == 0.0 and width == 1.0 and 0.0 <= y < 1.0 and 0.0 < height and y + height <= 1.0 + 1e-9, (seed, boxes)
    assert len(ConveyorStream(11).lane_boxes()) < ConveyorStream(11).layout.lanes


@pytest.mark.parametrize("lane", [0, 1, 2])
def test_a_one_lane_gap_raises_that_lanes_alert_probability(config, lane: int) -> None:  # type: ignore[no-untyped-def]
    """A drop in one lane only: while its gap is in view, that lane's ROI is over the card threshold and the
    others (and the whole belt) are below it; before the drop, every ROI is below it."""
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=4)
    threshold = classifier.card.threshold
    stream = ConveyorStream(config.source.seed, (320, 240), 160.0, drops=(Drop(2.0, 1.5, lanes=(lane,)),), stray_rate=0.0)
    boxes = [Box(*roi.box) for roi in config.rois]

    def scores(t: float) -> np.ndarray:
        frame = stream.frame_at(t)
        batch = np.stack([resize_rgb(frame, box) for box in boxes])
        return classifier.classify(batch).alert

    assert (scores(0.5) < threshold).all()
    # Frames where the lane's gap is fully in view: its longest lane gap is at least 2 pitches.
    during = [t for t in np.arange(2.5, 6.0, 0.25) if stream.truth_at(t).lane_gap_pitches[lane] >= 2.5]
    assert len(during) >= 4
    hits = np.array([scores(t) for t in during])
    assert np.mean(hits[:, 1 + lane] >= threshold) >= 0.75, hits
    others = [k for k in range(4) if k != 1 + lane]
    assert np.mean(hits[:, others] >= threshold) <= 0.1, hits



def test_through_the_daemon_a_one_lane_drop_raises_only_that_lanes_alert(config) -> None:  # type: ignore[no-untyped-def]
    """lanes.yaml as shipped (its synthetic camera starves the whole flow at 4 s, then lane 2 alone at 14 s), run by
    the daemon in stream time with the bundled model: every ROI alerts once for the whole-flow drop; for lane 2's
    own drop only lane-2 alerts, and recovers."""
    from edge.daemon import Daemon, DaemonParts
    from edge.publishing.recording import RecordingPublisher
    from edge.sources import open_source

    source = config.source.model_copy(update={"realtime": False, "duration_s": 24.0})
    run = config.model_copy(update={"source": source})
    classifier = Classifier.from_files(BUNDLED_MODEL, load_runtime(expected_runtime()), batch=len(run.rois))
    publisher = RecordingPublisher()
    assert Daemon(DaemonParts(run, classifier, open_source(run.source), publisher)).run() == 0
    alerts = {roi.name: [c for c in publisher.level_changes if c.roi == roi.name and c.level == "alert"] for roi in run.rois}
    t0 = publisher.level_changes[0].frame_wall - publisher.level_changes[0].frame_seq / run.source.fps
    assert all(len(alerts[name]) >= 1 and 4.0 <= alerts[name][0].frame_wall - t0 < 10.0 for name in ("belt", "lane-1", "lane-3"))
    late = {name: [c for c in changes if c.frame_wall - t0 >= 13.0] for name, changes in alerts.items()}
    assert len(late["lane-2"]) == 1 and not late["belt"] and not late["lane-1"] and not late["lane-3"], late
    assert publisher.transitions("lane-2")[-1][1] == "ok"
