"""The lane editor's file handling: only the rois block changes, names stay names, boxes stay inside, writes are atomic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import load_config, parse_config
from edge.console.rois import RoiEditor, RoiSaveError, normalise, replace_rois
from edge.errors import ConfigError

pytestmark = [pytest.mark.output_side]

FILE = """# line 3 config
device:
  name: pi-07   # the Pi by the oven

rois:   # lanes, left to right
  - name: left
    box: [0.0, 0.0, 0.5, 1.0]
  # a comment inside the block
  - name: right
    box: [0.5, 0.0, 0.5, 1.0]

# levels tuned on site
levels:
  window_s: 0.8
"""
LANES = [{"name": "a", "box": [0.0, 0.0, 0.3, 1.0]}, {"name": "no", "box": [0.3, 0.0, 0.3, 1.0]}, {"name": "123", "box": [0.6, 0, 0.4, 1]}]


def test_only_the_rois_block_is_replaced_and_every_other_line_is_kept() -> None:
    """Comments and sections around the block survive, byte for byte; the new block parses to the lanes given."""
    out = replace_rois(FILE, LANES)
    assert out.startswith("# line 3 config\ndevice:\n  name: pi-07   # the Pi by the oven\n\nrois:\n")
    assert out.endswith("\n# levels tuned on site\nlevels:\n  window_s: 0.8\n")
    data = yaml.safe_load(out)
    assert data["rois"] == [{"name": "a", "box": [0.0, 0.0, 0.3, 1.0]}, {"name": "no", "box": [0.3, 0.0, 0.3, 1.0]},
                            {"name": "123", "box": [0.6, 0.0, 0.4, 1.0]}]  # 'no' and '123' stay strings
    assert data["device"] == {"name": "pi-07"} and data["levels"] == {"window_s": 0.8}


def test_flow_style_and_missing_rois_are_handled() -> None:
    """A one-line flow list is replaced; a file without rois gets the block appended."""
    flow = "rois: [{name: belt, box: [0, 0, 1, 1]}]\nmqtt:\n  port: 1883\n"
    assert yaml.safe_load(replace_rois(flow, LANES[:1])) == {"rois": [LANES[0]], "mqtt": {"port": 1883}}
    assert yaml.safe_load(replace_rois("mqtt:\n  port: 1883", LANES[:1])) == {"mqtt": {"port": 1883}, "rois": [LANES[0]]}


def test_boxes_are_rounded_and_kept_inside_the_frame() -> None:
    """Four decimals; rounding never pushes a box past the frame's edge."""
    [roi] = normalise([{"name": "x", "box": [0.33336, 0.5, 0.66666, 0.49999]}])
    assert roi["box"] == [0.3334, 0.5, 0.6666, 0.5]
    parse_config({"rois": [roi]}, check_files=False)
    assert normalise("not a list") == "not a list"


def editor(tmp_path: Path, applied: list[object]) -> tuple[RoiEditor, Path]:
    path = tmp_path / "config.yaml"
    path.write_text(FILE)
    config = load_config(path)
    return RoiEditor(path, lambda: config, applied.append), path


def test_a_save_writes_a_backup_then_the_file_then_applies(tmp_path: Path) -> None:
    """The previous file goes to .bak, the new one replaces it whole (no temporary left), then the daemon gets the ROIs."""
    applied: list[object] = []
    ed, path = editor(tmp_path, applied)
    running = ed.save(LANES)
    assert path.with_name("config.yaml.bak").read_text() == FILE
    assert [r.name for r in load_config(path).rois] == ["a", "no", "123"]
    assert applied == [running] and [r.name for r in running.rois] == ["a", "no", "123"]
    assert running.levels.window_s == 0.8 and running.device.name == "pi-07"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config.yaml.bak"]


def test_invalid_lanes_raise_the_check_config_problems_and_touch_nothing(tmp_path: Path) -> None:
    """Duplicate names: the same wording as check-config, file and daemon unchanged."""
    applied: list[object] = []
    ed, path = editor(tmp_path, applied)
    with pytest.raises(ConfigError) as caught:
        ed.save([{"name": "a", "box": [0, 0, 0.5, 1]}, {"name": "a", "box": [0.5, 0, 0.5, 1]}])
    assert caught.value.problems == [f"{path}: (top level): rois: names must be unique, got ['a', 'a']"]
    assert path.read_text() == FILE and not applied and not path.with_name("config.yaml.bak").exists()


def test_a_daemon_without_a_config_file_cannot_save(tmp_path: Path) -> None:
    """Started from a dict (tests, the benchmark): edits are refused with the reason."""
    ed = RoiEditor(None, lambda: parse_config({}, check_files=False), lambda c: None)
    assert ed.writable() is not None
    with pytest.raises(RoiSaveError, match="not started from a config file"):
        ed.save(LANES)


def test_lanes_sent_with_the_default_flow_keep_the_files_comments(tmp_path: Path) -> None:
    """The lane page sends every lane's flow, "across" included: only the rois block changes, comments stay."""
    applied: list[object] = []
    ed, path = editor(tmp_path, applied)
    ed.save([{**lane, "flow": "across"} for lane in LANES])
    after = path.read_text()
    assert after.startswith("# line 3 config\n") and "# levels tuned on site" in after and "Rewritten" not in after
    assert "flow" not in after


def test_a_lane_sent_without_its_flow_keeps_the_flow_it_runs_with(tmp_path: Path) -> None:
    """A client that moves a box and knows nothing of ``flow`` does not turn a flow-down lane back to across."""
    path = tmp_path / "config.yaml"
    path.write_text("# camera along the belt\nrois:\n  - name: belt\n    box: [0.0, 0.0, 1.0, 1.0]\n    flow: down\n")
    running = load_config(path)
    ed = RoiEditor(path, lambda: running, lambda c: None)
    saved = ed.save([{"name": "belt", "box": [0.1, 0.0, 0.9, 1.0]}, {"name": "new", "box": [0.0, 0.0, 0.1, 1.0]}])
    assert [(r.name, r.flow) for r in saved.rois] == [("belt", "down"), ("new", "across")]
    assert [(r.name, r.flow) for r in load_config(path).rois] == [("belt", "down"), ("new", "across")]
    assert path.read_text().startswith("# camera along the belt\n")
