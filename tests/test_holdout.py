"""The second renderer: evaluation only, unreachable from the training path, and labelled by the same spec."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from converter.holdout import HARD_CASES, HoldoutStream, Script, holdout_set, render_case
from converter.holdout.draw import belt_frame, lay_cookies, measure, sample_installation

TRAINING_PATH = ["converter.synth", "converter.dataset", "converter.train", "converter.augment", "converter.model",
                 "edge.simulator", "edge.preprocess"]


def _imports(module: str) -> set[str]:
    """Modules a source file imports (static), resolved to dotted names inside this repository."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = REPO / module.replace(".", "/") / "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {n for n in names if n.split(".")[0] in ("converter", "edge")}


def test_no_training_module_imports_the_second_renderer_even_indirectly() -> None:
    """Walk the static import graph from every training-path module: converter.holdout is never reached."""
    seen: set[str] = set()
    todo = list(TRAINING_PATH)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        exists = (REPO / (module.replace(".", "/") + ".py")).exists() or (REPO / module.replace(".", "/") / "__init__.py").exists()
        if exists:
            todo += sorted(_imports(module))
    assert not [m for m in seen if m.startswith("converter.holdout")], sorted(seen)
    assert "edge.simulator.stills" in seen  # the walk really followed imports


def test_synthesising_and_loading_a_dataset_never_loads_the_second_renderer(tmp_path: Path) -> None:
    """At run time too: write and load a dataset, then check sys.modules."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from converter.synth import write_dataset\nfrom converter.dataset import check_layout, load_dataset\n"
        "import converter.train, converter.model\n"
        f"write_dataset(Path({str(tmp_path)!r}), 4, 2, 1, workers=1)\n"
        f"load_dataset(check_layout(Path({str(tmp_path)!r})), 0.2, 1)\n"
        "bad = [m for m in sys.modules if m.startswith('converter.holdout')]\n"
        "assert not bad, bad\nprint('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "clean", result.stderr[-2000:]


def test_the_second_renderer_shares_no_code_with_the_training_simulator() -> None:
    """converter.holdout imports nothing from edge.simulator (its drawing code is its own)."""
    for path in (REPO / "converter" / "holdout").glob("*.py"):
        imported = _imports(f"converter.holdout.{path.stem}" if path.stem != "__init__" else "converter.holdout")
        assert not [m for m in imported if m.startswith("edge.simulator")], (path, imported)


@pytest.mark.parametrize("alert", [False, True])
def test_holdout_frames_are_labelled_by_the_spec(alert: bool) -> None:
    """Alert frames measure >= 2 pitches, acceptable ones <= 1.25; frames are camera-sized (320x240 to 800x600)."""
    rng = np.random.default_rng(3)
    for _ in range(6):
        frame = belt_frame(rng, alert)
        assert (frame.gap_pitches >= 2.0) if alert else (frame.gap_pitches <= 1.25)
        h, w = frame.image.shape[:2]
        assert 320 <= w <= 800 and 240 <= h <= 600


def test_measure_counts_missing_rows() -> None:
    """Two whole rows removed from an untilted view is a gap of about two pitches in the renderer's own measure."""
    rng = np.random.default_rng(8)
    from converter.holdout.draw import flow_extent, with_camera

    inst = with_camera(sample_installation(rng, (640, 480), rows=3, vertical=False), angle_deg=0.0)
    lo, hi = flow_extent(inst)
    full = lay_cookies(inst, rng)
    gapped = lay_cookies(inst, rng, 2.0, (lo + hi) / 2 - inst.pitch)
    assert measure(inst, full) < 0.6 and 1.7 <= measure(inst, gapped) <= 2.3


def test_holdout_set_alternates_classes() -> None:
    """holdout_set(n) gives n frames, alternating acceptable (0) and alert (1)."""
    frames, labels = holdout_set(4, 1)
    assert len(frames) == 4 and list(labels) == [0, 1, 0, 1]


@pytest.mark.parametrize("name", list(HARD_CASES))
def test_every_hard_case_renders_with_its_expectation(name: str) -> None:
    """Each hard case draws a frame and says what the spec expects (and its region of interest, for lane cases)."""
    case = render_case(name, np.random.default_rng(2))
    assert case.image.dtype == np.uint8 and case.image.ndim == 3
    assert case.expected in ("alert", "acceptable", "unknown", "not_alert")
    assert ("ROI" in name and "whole-belt" not in name) == (case.roi is not None)


def test_holdout_stream_gaps_are_fully_visible_for_a_while_and_stops_hold_the_belt() -> None:
    """A scripted gap is fully in view for a span of frames; during a stop the travel does not change."""
    stream = HoldoutStream(2, Script(gaps=((2.0, 3.0),), stops=((10.0, 2.0),)), jpeg=False)
    first, last = stream.gap_visible_span(0)
    assert 2.0 <= first < last
    visible = [stream.truth(i).gap_index for i in range(0, 15 * 12)]
    assert visible.count(0) >= 3
    assert stream._travel_at(10.5) == stream._travel_at(11.5)
    assert stream.frame(0).shape == (240, 320, 3)


def test_a_gap_just_shorter_than_the_view_has_a_visible_span() -> None:
    """Seed 100's belt: a 6.45-pitch gap is about as long as the 320-px view and fits it only between two frames;
    it still counts as fully visible for a moment (it once made the detection benchmark fail: 'never leaves the view')."""
    from converter.holdout import HoldoutStream, Script

    stream = HoldoutStream(100, Script(gaps=((776.0, 6.454505910179693),), stops=((68.0, 8.0),)), fps=15.0)
    first, last = stream.gap_visible_span(0)
    assert 776.0 < first < last < 776.0 + 60.0
