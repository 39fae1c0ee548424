"""Evidence on the device: frames around each change, capture mode, the dataset and its export."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.subscriber import SCHEMAS
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edge.config import Capture as CaptureSettings
from edge.config import Evidence as EvidenceSettings
from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.events import HealthChanged, LevelChanged
from edge.evidence import Capture, Dataset, DatasetExportError, EvidenceKeeper, EvidenceRecorder, Records, new_record_id
from edge.evidence.images import training_crop
from edge.fakes import FakeClassifier
from edge.messages import DeviceIdentity, event_body
from edge.pipeline import FrameResult
from edge.preprocess import Box, resize_rgb
from edge.publishing import Publishers
from edge.publishing.recording import RecordingPublisher
from edge.sources.base import Frame
from edge.sources.synthetic import SyntheticCamera
from edge.state import DeviceState, Health, Level

pytestmark = [pytest.mark.output_side]
IDENTITY = DeviceIdentity("s1", "l1", "dev1")


def jpeg_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.size


def run_daemon(tmp: Path, script: list[float] | None = None, capture: bool = False, seconds: float = 6.0,
               **evidence: object) -> tuple[Daemon, RecordingPublisher]:
    """The daemon on the simulator in stream time (fast), a scripted model, the evidence keeper as start-up wires it."""
    config = parse_config({"source": {"type": "synthetic", "fps": 10, "width": 160, "height": 120, "realtime": False,
                                      "duration_s": seconds, "drops": []},
                           "levels": {"window_s": 0.1, "dwell_s": 0.1, "min_frames": 2},
                           "evidence": {"spacing_s": 0.2, "frames_before": 2, "frames_after": 3, **evidence},
                           "capture": {"enabled": capture, "every_s": 1.0},
                           "service": {"state_dir": str(tmp / "state")}}, check_files=False)
    steps = script or [0.05]
    classifier = FakeClassifier.scripted(lambda n: steps[min(n, len(steps) - 1)])
    recording = RecordingPublisher()
    assert config.source.type == "synthetic"
    daemon = Daemon(DaemonParts(config, classifier, SyntheticCamera(config.source), Publishers([recording])))
    from edge.service.lifecycle import attach_features

    attach_features(daemon, IDENTITY)
    assert daemon.run() == 0
    return daemon, recording


def test_every_level_change_keeps_frames_before_and_after_it_and_the_event_names_them(tmp_path: Path) -> None:
    """Each change's event carries a snapshot id; its record holds 2 frames before, the frame of the change and 3 after."""
    script = [0.05] * 20 + [0.95] * 20 + [0.05] * 20
    _, recording = run_daemon(tmp_path, script)
    changes = recording.level_changes
    assert [(str(c.previous), str(c.level)) for c in changes] == [("ok", "alert"), ("alert", "ok")]
    records = Records(tmp_path / "state" / "evidence", 10**9)
    records.scan()
    assert sorted(records.ids()) == sorted(c.snapshot for c in changes if c.snapshot)
    for change in changes:
        assert change.snapshot is not None
        meta = records.meta(change.snapshot)
        assert meta is not None and meta["roi"] == "belt" and meta["level"] == str(change.level)
        frames = meta["frames"]
        assert len(frames) == 6 and meta["key"] == 2
        assert frames[2]["seq"] == change.frame_seq and frames[2]["offset_s"] == 0.0
        offsets = [f["offset_s"] for f in frames]
        # Before: one frame kept per spacing, the last within a spacing of the change; after: one per spacing from the key.
        assert offsets[1] - offsets[0] >= 0.2 - 1e-6 and -0.2 - 1e-6 <= offsets[1] < 0.0
        assert all(b - a >= 0.2 - 1e-6 for a, b in itertools.pairwise(offsets[2:]))
        for f in frames:
            path = records.file(change.snapshot, f"{f['index']}.jpg")
            assert path is not None and jpeg_size(path.read_bytes()) == (160, 120)


def test_an_idle_daemon_writes_no_evidence_and_no_captures(tmp_path: Path) -> None:
    """No change, capture off: nothing is written under the state directory's evidence and capture folders."""
    daemon, recording = run_daemon(tmp_path, [0.05])
    assert daemon.stats.frames == 60 and not recording.level_changes
    assert not (tmp_path / "state" / "evidence").exists() and not (tmp_path / "state" / "captures").exists()


def test_a_flapping_level_gets_at_most_max_per_hour_snapshots(tmp_path: Path) -> None:
    """Beyond evidence.max_per_hour the changes still go out as events, without a snapshot."""
    script = ([0.05] * 10 + [0.95] * 10) * 3
    _, recording = run_daemon(tmp_path, script, max_per_hour=2)
    changes = recording.level_changes
    assert len(changes) == 5
    assert [c.snapshot is not None for c in changes] == [True, True, False, False, False]


def frame(seq: int, t: float, shade: int = 100, size: tuple[int, int] = (240, 320)) -> Frame:
    pixels = np.full((*size, 3), shade, np.uint8)
    pixels[:, : size[1] // 2] = 255 - shade  # something to see
    return Frame(pixels, seq, t, 1_790_000_000.0 + t)


def result(p: float, health: Health = Health.OK) -> FrameResult:
    return FrameResult(np.asarray([p], np.float32), health, "" if health == Health.OK else "too dark", {"belt": Level.OK},
                       {"belt": p})


STATE = DeviceState(Health.OK, (("belt", Level.OK),))


def test_a_camera_fault_is_kept_with_the_last_frames_the_camera_gave(tmp_path: Path) -> None:
    """No frame comes during a camera fault: the record is the frames before it, the last as key frame."""
    records = Records(tmp_path / "evidence", 10**9)
    recorder = EvidenceRecorder(EvidenceSettings(frames_before=3, spacing_s=0.1), records)
    for i in range(20):
        recorder.on_frame(frame(i, i * 0.05, shade=i * 10), result(0.1), STATE)
    snapshot = recorder.snapshot_for(HealthChanged(Health.CAMERA_FAULT, Health.OK, "read timed out", 19, 1.79e9, True, "f" * 64))
    recorder.close()
    assert snapshot is not None
    meta = records.meta(snapshot)
    assert meta is not None and meta["type"] == "health" and meta["health"] == "camera_fault"
    assert [f["seq"] for f in meta["frames"]] == [14, 16, 18] and meta["key"] == 2


def test_the_evidence_budget_evicts_the_oldest_records_first(tmp_path: Path) -> None:
    """Past max bytes the oldest records go, the newest stay, and the total stays within the budget."""
    records = Records(tmp_path / "evidence", 3500)
    made = [new_record_id(1_790_000_000.0 + i) for i in range(5)]
    for record in made:
        records.add(record, {"0.jpg": b"x" * 1000}, {"id": record})
    assert records.ids(newest_first=False) == made[-3:]
    assert records.total_bytes() <= 3500 and records.evicted == 2
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == made[-3:]
    (tmp_path / "evidence" / new_record_id(1_790_000_100.0)).mkdir()  # a record cut short by a power cut
    records.scan()
    assert records.ids(newest_first=False) == made[-3:] and len(list((tmp_path / "evidence").iterdir())) == 3


def test_record_files_are_only_reachable_by_valid_names(tmp_path: Path) -> None:
    """Record and file names are checked before any path is made from them."""
    records = Records(tmp_path / "evidence", 10**6)
    record = new_record_id(1_790_000_000.0)
    records.add(record, {"0.jpg": b"jpeg"}, {"id": record})
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    assert records.file(record, "0.jpg") is not None
    for rec, name in ((record, "../../secret.jpg"), ("..", "secret.jpg"), (record, "/etc/passwd"), (f"{record}/..", "0.jpg"),
                      (record, "0.JPG"), (record, "0.jpg\0")):
        assert records.file(rec, name) is None


def test_events_carry_the_snapshot_id_and_match_the_event_schema() -> None:
    """The event's optional `snapshot` field: present when evidence was kept, absent otherwise; both valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "event.json").read_text()))
    change = LevelChanged("belt", Level.ALERT, Level.OK, 0.9, "flow", 7, 1.79e9, 1.79e9, True, "a" * 64, new_record_id(1.79e9))
    event = json.loads(event_body(IDENTITY, change, event_id="5c9b3a5f-d1d6-4906-a4bd-6e6f19d0d73b", seq=1, seq_epoch="0" * 32))
    validator.validate({**event, "replayed": False})
    assert event["snapshot"] == change.snapshot
    plain = json.loads(event_body(IDENTITY, HealthChanged(Health.OK, Health.DEGRADED, "", 1, 1.79e9, True, "a" * 64),
                                  event_id="5c9b3a5f-d1d6-4906-a4bd-6e6f19d0d73b", seq=2, seq_epoch="0" * 32))
    validator.validate({**plain, "replayed": False})
    assert "snapshot" not in plain
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**event, "replayed": False, "snapshot": "../../etc/passwd"})


# --- capture ---------------------------------------------------------------------------------------------


def make_capture(tmp: Path, **settings_: object) -> Capture:
    settings_ = {"enabled": True, "every_s": 10.0, "uncertain": [0.3, 0.7], "min_interval_s": 1.0, **settings_}
    rois = [("belt", Box(0.0, 0.0, 0.5, 0.25)), ("edge", Box(0.9, 0.5, 0.1, 0.5))]
    return Capture(CaptureSettings.model_validate(settings_), Records(tmp / "captures", 10**9), lambda: rois, 0.5, "c" * 64)


def feed(capture: Capture, moments: list[tuple[float, float, Health]]) -> list[dict[str, object]]:
    for seq, (t, p, health) in enumerate(moments):
        res = FrameResult(np.asarray([p, p], np.float32), health, "", {"belt": Level.OK, "edge": Level.OK}, {"belt": p, "edge": p})
        level = Level.OK if health == Health.OK else Level.UNKNOWN
        capture.on_frame(frame(seq, t), res, DeviceState(health, (("belt", level), ("edge", level))))
    capture.close()
    return [m for m in (capture.records.meta(r) for r in capture.records.ids(newest_first=False)) if m is not None]


def test_capture_keeps_a_frame_every_n_seconds_plus_uncertain_and_unknown_scenes(tmp_path: Path) -> None:
    """Periodic frames, frames the model is unsure of, and frames it cannot judge (at most one a second), pseudo-labelled."""
    sure, unsure, dark = Health.OK, Health.OK, Health.DEGRADED
    moments = [(0.0, 0.05, sure), (0.5, 0.5, unsure), (1.2, 0.55, unsure), (1.5, 0.6, unsure), (2.0, 0.95, sure),
               (3.0, 0.9, dark), (3.5, 0.9, dark), (10.0, 0.9, sure), (10.5, 0.02, sure)]
    metas = feed(make_capture(tmp_path), moments)
    assert [(m["reason"], m["frame_seq"]) for m in metas] == [("periodic", 0), ("uncertain", 2), ("unknown", 5), ("periodic", 7)]
    labels = [[r["model_label"] for r in m["rois"]] for m in metas]  # type: ignore[union-attr]
    assert labels == [["acceptable"] * 2, ["alert"] * 2, ["unknown"] * 2, ["alert"] * 2]
    assert all(r["label"] is None for m in metas for r in m["rois"])  # type: ignore[union-attr]


def test_capture_stores_each_roi_crop_at_least_128_px(tmp_path: Path) -> None:
    """A 160x60 and a 32x120 ROI crop are stored enlarged by whole factors to a shorter side >= 128."""
    capture = make_capture(tmp_path)
    [meta] = feed(capture, [(0.0, 0.05, Health.OK)])
    sizes = {r["name"]: tuple(r["crop"]) for r in meta["rois"]}  # type: ignore[union-attr]
    assert sizes == {"belt": (480, 180), "edge": (128, 480)}
    for roi, size in sizes.items():
        path = capture.records.file(str(meta["id"]), f"roi-{roi}.jpg")
        assert path is not None and jpeg_size(path.read_bytes()) == size
    assert capture.records.file(str(meta["id"]), "frame.jpg") is not None


def test_capture_off_keeps_nothing(tmp_path: Path) -> None:
    """Capture mode off: not a byte written."""
    assert feed(make_capture(tmp_path, enabled=False), [(0.0, 0.5, Health.DEGRADED), (20.0, 0.5, Health.OK)]) == []
    assert not (tmp_path / "captures").exists()


@settings(max_examples=60, deadline=None)
@given(height=st.integers(16, 300), width=st.integers(16, 300), x=st.floats(0, 0.95), y=st.floats(0, 0.95),
       w=st.floats(0.01, 1.0), h=st.floats(0.01, 1.0))
def test_a_stored_crop_gives_the_model_exactly_the_pixels_the_device_sees(height: int, width: int, x: float, y: float,
                                                                             w: float, h: float) -> None:
    """Resizing the enlarged crop to 64x64 samples the same source pixels as the device's preprocessing of the frame."""
    box = Box(x, y, min(w, 1.0 - x), min(h, 1.0 - y))
    pixels = np.random.default_rng(height * 1000 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    crop = training_crop(pixels, box, 128)
    assert min(crop.shape[:2]) >= 128
    assert np.array_equal(resize_rgb(crop), resize_rgb(pixels, box))


# --- dataset ---------------------------------------------------------------------------------------------


def captured(tmp: Path, count: int) -> Dataset:
    """``count`` capture records of the simulator's belt, as capture mode writes them."""
    capture = make_capture(tmp, every_s=1.0)
    camera = SyntheticCamera(parse_config({"source": {"type": "synthetic", "realtime": False, "drops": [
        {"start_s": 0.0, "duration_s": 3.0}]}}, check_files=False).source)  # type: ignore[arg-type]
    camera.open()
    for i in range(count):
        f = camera.read()
        assert f is not None
        f = Frame(f.pixels, i, float(i), f.wall)
        capture.on_frame(f, FrameResult(np.asarray([0.2, 0.2], np.float32), Health.OK, "", {}, {}), STATE_TWO)
    capture.close()
    return Dataset(capture.records)


STATE_TWO = DeviceState(Health.OK, (("belt", Level.OK), ("edge", Level.OK)))


def label_all(dataset: Dataset) -> None:
    items = dataset.items()
    dataset.set_labels({(i.capture, i.roi): ("alert" if n % 2 else "acceptable") for n, i in enumerate(items)})


def test_labels_are_set_cleared_and_checked(tmp_path: Path) -> None:
    """The operator's label per crop, kept in the record; unknown items and labels refused."""
    dataset = captured(tmp_path, 3)
    first = dataset.items()[0]
    assert dataset.counts() == {"acceptable": 0, "alert": 0, "unknown": 0, "unlabelled": 6, "total": 6}
    assert dataset.set_labels({(first.capture, first.roi): "alert"}) == 1
    assert dataset.set_labels({(first.capture, first.roi): "alert"}) == 0
    assert Dataset(dataset.records).items()[0].label == "alert"  # on disk, not only in memory
    assert len(dataset.items(only_unlabelled=True)) == 5
    assert dataset.set_labels({(first.capture, first.roi): None}) == 1
    with pytest.raises(ValueError, match="label 'gap'"):
        dataset.set_labels({(first.capture, first.roi): "gap"})
    with pytest.raises(KeyError):
        dataset.set_labels({(first.capture, "nope"): "alert"})


def test_the_export_is_a_training_set_and_test_set_the_converter_reads(tmp_path: Path) -> None:
    """training_set/<class>/ and test_set/<class>/, stratified, deterministic; the converter's loader accepts both splits."""
    from converter.dataset import check_layout, load_split

    dataset = captured(tmp_path, 10)
    label_all(dataset)
    unknown = dataset.items()[0]
    dataset.set_labels({(unknown.capture, unknown.roi): "unknown"})
    archive = tmp_path / "export.tar.gz"
    summary = dataset.export_file(archive, test_fraction=0.25)
    assert summary.counts == {"training_set": {"acceptable": 7, "alert": 8, "unknown": 1}, "test_set": {"acceptable": 2, "alert": 2}}
    assert summary.unknown == 1 and summary.confirmed == 19 and summary.pseudo == 0
    out = tmp_path / "data"
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    for split in ("training_set", "test_set"):
        loaded = load_split(check_layout(out, "alert"), split)
        assert loaded.class_names[:2] == ("acceptable", "alert") and loaded.images.shape[1:] == (64, 64, 3)
        assert int(loaded.unknown.sum()) == (1 if split == "training_set" else 0)  # the scene labelled unknown
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["items"]) == 20 and len(list((out / "training_set" / "unknown").iterdir())) == 1
    again = tmp_path / "again.tar.gz"
    dataset.export_file(again, test_fraction=0.25)
    with tarfile.open(archive) as a, tarfile.open(again) as b:
        assert sorted(a.getnames()) == sorted(b.getnames())


def test_an_export_with_too_few_labels_is_refused_in_one_line(tmp_path: Path) -> None:
    """Each class needs a crop in each split; pseudo-labels count only when asked for."""
    dataset = captured(tmp_path, 2)
    with pytest.raises(DatasetExportError) as caught:
        dataset.export_file(tmp_path / "x.tar.gz")
    assert str(caught.value) == "each class needs at least 2 labelled crops (one for each split); have acceptable: 0, alert: 0"
    assert not (tmp_path / "x.tar.gz").exists() and not (tmp_path / "x.tar.gz.partial").exists()


@pytest.mark.tensorflow
@pytest.mark.slow
def test_a_labelled_export_trains_with_conveyor_convert(tmp_path: Path) -> None:
    """The exported archive, unpacked, is what `conveyor-convert train --epochs 1` takes, unchanged."""
    dataset = captured(tmp_path, 12)
    label_all(dataset)
    archive = tmp_path / "export.tar.gz"
    dataset.export_file(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "data", filter="data")
    result = subprocess.run([sys.executable, "-m", "converter", "train", "--data", str(tmp_path / "data"), "--out",
                             str(tmp_path / "model"), "--epochs", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "model").glob("*.keras"))


def test_the_keeper_asks_the_recorder_and_feeds_both(tmp_path: Path) -> None:
    """EvidenceKeeper without a recorder gives no snapshot; with capture off it writes nothing."""
    keeper = EvidenceKeeper(None, make_capture(tmp_path, enabled=False))
    assert keeper.snapshot_for(LevelChanged("belt", Level.ALERT, Level.OK, 0.9, "flow", 1, 1.0, 1.0, True, "a" * 64)) is None
    keeper.on_frame(frame(0, 0.0), result(0.5), STATE)
    keeper.close()
    assert not (tmp_path / "captures").exists()


def test_capture_from_the_command_line_then_export(tmp_path: Path) -> None:
    """`edge-daemon capture` runs the daemon in capture mode; `--export` writes an archive the converter reads."""
    from converter.dataset import check_layout, load_split

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"runtime": "auto"}, "mqtt": {"port": 1},
        # Stream time (not paced): the same frames every run, so the same captures.
        "source": {"type": "synthetic", "fps": 20, "realtime": False, "duration_s": 8.0, "drops": [{"start_s": 2.0, "duration_s": 3.0}]},
        "service": {"state_dir": str(tmp_path / "state"), "log_level": "warning"},
        "capture": {"uncertain": [0.0, 1.0], "min_interval_s": 0.5}}))
    run = subprocess.run([sys.executable, "-m", "edge", "capture", "--config", str(config), "--every", "2"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "captured 16 frame(s)" in run.stdout and "label them in the console" in run.stdout
    out = tmp_path / "d.tar.gz"
    refused = subprocess.run([sys.executable, "-m", "edge", "capture", "--config", str(config), "--export", str(out)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.startswith("edge-daemon: cannot export: each class needs at least 2 labelled")
    export = subprocess.run([sys.executable, "-m", "edge", "capture", "--config", str(config), "--export", str(out),
                             "--include-unconfirmed"], capture_output=True, text=True, timeout=60)
    assert export.returncode == 0, export.stderr
    assert f"wrote {out}" in export.stdout and "0 labelled by hand" in export.stdout
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "data", filter="data")
    assert load_split(check_layout(tmp_path / "data", "alert"), "test_set").class_names[:2] == ("acceptable", "alert")
