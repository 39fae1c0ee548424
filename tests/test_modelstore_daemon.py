"""A running device follows its model store: a signed bundle installed from the command line is shadowed on live
frames, promoted (by hand or automatically), and decides from then on; rollback brings the previous model back.

The device runs in this process with the real runtime, the real model files and the simulated camera, and
reports to the shipped RecordingPublisher; the model commands run as real ``edge-daemon model`` processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import expected_runtime
from helpers.daemon import wait_until
from helpers.models import model_copy, sha_of

from converter.bundle import make_bundle
from edge.config import load_config
from edge.daemon import Daemon, DaemonParts
from edge.events import LevelChanged, ModelChanged
from edge.inference import load_runtime
from edge.messages import DeviceIdentity, event_body, telemetry_payload, with_replayed
from edge.modelstore.keys import generate_key_pair
from edge.modelstore.manager import ModelManager
from edge.modelstore.service import attach_models, open_models
from edge.modelstore.shadow import ShadowObserver
from edge.publishing.recording import RecordingPublisher
from edge.sources import open_source

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "edge" / "schemas"
# A gap every 3 s that crosses the 160 px frame: a level event (alert, then ok) every few seconds.
DROPS = [{"start_s": 1.0 + 3.0 * i, "duration_s": 1.6} for i in range(40)]


@dataclass
class Device:
    daemon: Daemon
    publisher: RecordingPublisher
    manager: ModelManager
    thread: threading.Thread
    config_path: Path

    def model(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-m", "edge", "model", *args, "--config", str(self.config_path)],
                             capture_output=True, text=True, timeout=60)
        if check:
            assert run.returncode == 0, run.stderr
        return run

    def model_events(self, action: str) -> list[ModelChanged]:
        return [c for c in list(self.publisher.changes) if isinstance(c, ModelChanged) and c.action == action]

    def wait_event(self, action: str, timeout: float = 20.0) -> ModelChanged:
        wait_until(lambda: self.model_events(action), timeout, f"a {action} model event")
        return self.model_events(action)[-1]

    def level_events_after(self, event: ModelChanged) -> list[LevelChanged]:
        changes = list(self.publisher.changes)
        return [c for c in changes[changes.index(event) + 1:] if isinstance(c, LevelChanged)]


def write_device_config(tmp: Path, model: Path, trusted: list[Path], shadow: dict[str, Any] | None = None) -> Path:
    config = {
        "model": {"path": str(model), "runtime": expected_runtime(), "trusted_keys": [str(p) for p in trusted],
                  "shadow": shadow or {"every_n_frames": 1, "min_frames": 15, "min_duration_s": 0.5, "auto_promote": False}},
        "source": {"type": "synthetic", "fps": 25, "width": 160, "height": 120, "realtime": True, "drops": DROPS},
        "levels": {"window_s": 0.2, "dwell_s": 0.1, "min_frames": 2},
        "service": {"state_dir": str(tmp / "state")},
        "telemetry": {"interval_s": 1},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    key, pub, _ = generate_key_pair(tmp_path / "keys", "plant")
    return {"key": key, "pub": pub}


@pytest.fixture
def start_device() -> Iterator[Any]:
    started: list[Device] = []

    def start(config_path: Path) -> Device:
        config = load_config(config_path)
        runtime = load_runtime(config.model.runtime)
        models = open_models(config, Path(str(config.service.state_dir)), runtime)
        publisher, shadow = RecordingPublisher(), ShadowObserver()
        daemon = Daemon(DaemonParts(config, models.running.classifier, open_source(config.source), publisher, observers=[shadow]))
        shadow.active_card = lambda: daemon.pipeline.classifier.card
        manager = attach_models(daemon, models, config, runtime, shadow, None)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        device = Device(daemon, publisher, manager, thread, config_path)
        started.append(device)
        return device

    yield start
    for device in started:
        device.daemon.stop.set()
        device.thread.join(15)
        device.manager.join(15)


def test_a_signed_bundle_is_shadowed_promoted_and_decides_then_rollback_restores_the_previous_model(
        tmp_path: Path, keys: dict[str, Path], start_device: Any) -> None:
    """install -> shadow run on live frames (its figures in telemetry) -> passed -> promote: the events after it carry
    the new model's sha; rollback: the previous sha again. Every model event validates against event.json."""
    old = model_copy(tmp_path / "old")
    new = model_copy(tmp_path / "new", tag="3")
    bundle = tmp_path / "new.cwm"
    make_bundle(new, keys["key"], bundle, None)
    device = start_device(write_device_config(tmp_path, old, [keys["pub"]]))
    wait_until(lambda: device.publisher.level_changes, 20, "a first level change")
    assert device.daemon.model_sha256 == sha_of(old)

    installed = device.model("install", str(bundle))
    assert "as the candidate" in installed.stdout and sha_of(new) in installed.stdout
    event = device.wait_event("installed")
    assert (event.model, event.by, event.model_sha256) == (sha_of(new), "cli", sha_of(old))
    passed = device.wait_event("shadow_passed")
    assert passed.model == sha_of(new) and "agreement 1.0" in passed.reason
    figures = device.manager.figures()["model"]
    assert figures["candidate"]["sha256"] == sha_of(new) and figures["candidate"]["frames"] >= 15
    assert figures["candidate"]["rois"]["belt"]["max_abs_diff"] == 0.0  # the same network: identical outputs
    assert figures["candidate"]["ms_per_invoke"]["candidate_p50"] > 0

    assert "promoted " + sha_of(new) in device.model("promote").stdout
    promoted = device.wait_event("promoted")
    assert (promoted.model, promoted.previous_model, promoted.model_sha256) == (sha_of(new), sha_of(old), sha_of(new))
    wait_until(lambda: device.level_events_after(promoted), 20, "a level change after the promotion")
    assert {c.model_sha256 for c in device.level_events_after(promoted)} == {sha_of(new)}
    assert {c.model_sha256 for c in device.publisher.level_changes[:1]} == {sha_of(old)}
    assert device.manager.figures()["model"] == {"active": {"sha256": sha_of(new), "source": "registry", "form": "int8",
                                                            "key_id": promoted.key_id}, "candidate": None}

    assert "rolled back to " in device.model("rollback").stdout
    rolled = device.wait_event("rolled_back")
    assert (rolled.model, rolled.previous_model, rolled.model_sha256) == (sha_of(old), sha_of(new), sha_of(old))
    wait_until(lambda: device.level_events_after(rolled), 20, "a level change after the rollback")
    assert {c.model_sha256 for c in device.level_events_after(rolled)} == {sha_of(old)}

    schema = json.loads((SCHEMAS / "event.json").read_text())
    me = DeviceIdentity("s", "l", "d")
    for change in [c for c in device.publisher.changes if isinstance(c, ModelChanged)]:
        payload = json.loads(with_replayed(event_body(me, change, event_id="5c9b3a5f-d1d6-4906-a4bd-6e6f19d0d73b", seq=1,
                                                      seq_epoch="0" * 32), False))
        jsonschema.validate(payload, schema)
    device.daemon.publish_telemetry()
    telemetry = json.loads(telemetry_payload(me, device.publisher.snapshots[-1]))
    jsonschema.validate(telemetry, json.loads((SCHEMAS / "telemetry.json").read_text()))
    assert telemetry["model"]["active"]["sha256"] == sha_of(old)


def test_a_candidate_that_passes_its_shadow_run_is_promoted_automatically(tmp_path: Path, keys: dict[str, Path],
                                                                           start_device: Any) -> None:
    """model.shadow.auto_promote: installed before the start, shadowed, promoted by "auto" with the evidence as reason."""
    old, new = model_copy(tmp_path / "old"), model_copy(tmp_path / "new", tag="4")
    make_bundle(new, keys["key"], tmp_path / "new.cwm", None)
    config = write_device_config(tmp_path, old, [keys["pub"]],
                                 {"every_n_frames": 2, "min_frames": 10, "min_duration_s": 0.5, "auto_promote": True})
    subprocess.run([sys.executable, "-m", "edge", "model", "install", str(tmp_path / "new.cwm"), "--config", str(config)],
                   check=True, capture_output=True)
    device = start_device(config)
    promoted = device.wait_event("promoted")
    assert promoted.by == "auto" and "shadow run passed: agreement 1.0" in promoted.reason
    wait_until(lambda: device.daemon.model_sha256 == sha_of(new), 10, "the new model deciding")
    assert [e.action for e in device.publisher.changes if isinstance(e, ModelChanged)] == ["installed", "shadow_passed", "promoted"]
