"""The model store through a real daemon and a real Mosquitto: refusals while the running model keeps deciding,
every model change on the event topic, and the model commands with their schema'd replies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.broker import Mosquitto
from helpers.daemon import DaemonProcess, daemon_config, write_config
from helpers.models import model_copy, sha_of
from helpers.subscriber import Subscriber, validate

from converter.bundle import make_bundle
from edge.modelstore.bundle import BundleContent, build_bundle
from edge.modelstore.keys import generate_key_pair, load_private_key

pytestmark = [pytest.mark.broker, pytest.mark.output_side]
PREFIX = "plant/s1/l1/dev1"
DROPS = [{"start_s": 1.0 + 4.0 * i, "duration_s": 1.5} for i in range(150)]  # gaps by the alert spec: a level event every 2 s


def edge_model(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "model", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=60)


def model_events(sub: Subscriber, action: str) -> list[dict[str, Any]]:
    return [e for e in sub.events("model") if e["action"] == action]


def test_refused_bundles_leave_the_running_model_deciding_and_each_refusal_is_an_event(tmp_path: Path, mosquitto: Mosquitto,
                                                                                       subscribe: Any) -> None:
    """A flipped byte, an unknown signer and a card of another model: each `model install` exits 2 with one line; the
    device's level events go on carrying its model's sha; three `refused` events arrive; every message is schema-valid."""
    key, pub, _ = generate_key_pair(tmp_path / "keys", "plant")
    stranger, _, _ = generate_key_pair(tmp_path / "keys", "stranger")
    running_model, new_model = model_copy(tmp_path / "run"), model_copy(tmp_path / "new", tag="8")
    good = tmp_path / "good.cwm"
    make_bundle(new_model, key, good, None)
    flipped = bytearray(good.read_bytes())
    flipped[700] ^= 0x10
    (tmp_path / "flipped.cwm").write_bytes(bytes(flipped))
    make_bundle(new_model, stranger, tmp_path / "stranger.cwm", None)
    wrong_card = BundleContent(new_model.read_bytes(), running_model.with_suffix(".card.json").read_bytes())
    (tmp_path / "card.cwm").write_bytes(build_bundle(wrong_card, load_private_key(key), source="x", created="", tool="test"))
    config = write_config(tmp_path / "c.yaml", daemon_config(
        tmp_path, mosquitto, model={"path": str(running_model), "trusted_keys": [str(pub)]},
        source={"realtime": True, "duration_s": 600, "fps": 20, "drops": DROPS}))
    sub = subscribe(mosquitto)
    daemon = DaemonProcess(config, tmp_path / "d.log")
    try:
        sub.wait_for(lambda ms: len(sub.events()) >= 1, 30, "a first level event")
        for name, reason in (("flipped", "damaged or altered"), ("stranger", "signed by an unknown key"),
                             ("card", "model.card.json does not match model.tflite")):
            run = edge_model(config, "install", str(tmp_path / f"{name}.cwm"))
            assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and reason in run.stderr, run.stderr
        sub.wait_for(lambda ms: len(model_events(sub, "refused")) == 3, 20, "three refused events")
        seen = len(sub.events())
        sub.wait_for(lambda ms: len(sub.events()) >= seen + 2, 20, "level events after the refusals")
        assert daemon.alive()
    finally:
        daemon.terminate()
        daemon.close()
    for message in sub.messages:
        validate(message)
    refused = model_events(sub, "refused")
    assert [e["by"] for e in refused] == ["cli"] * 3 and all(e["model_sha256"] == sha_of(running_model) for e in refused)
    assert "damaged or altered" in refused[0]["reason"] and "unknown key" in refused[1]["reason"]
    assert {e["model_sha256"] for e in sub.events()} == {sha_of(running_model)}


def test_model_commands_install_shadow_promote_and_roll_back_with_replies_and_events(tmp_path: Path, mosquitto: Mosquitto,
                                                                                    subscribe: Any) -> None:
    """model_install (from the inbox) -> model_status shows the shadow run -> model_promote (the reply comes once the new
    model decides) -> level events with its sha -> model_rollback; a promote with nothing to promote is ok: false."""
    key, pub, _ = generate_key_pair(tmp_path / "keys", "plant")
    old, new = model_copy(tmp_path / "old"), model_copy(tmp_path / "new", tag="9")
    inbox = tmp_path / "state" / "models" / "inbox"
    inbox.mkdir(parents=True)
    make_bundle(new, key, inbox / "new.cwm", None)
    config = write_config(tmp_path / "c.yaml", daemon_config(
        tmp_path, mosquitto, mqtt={"commands": True},
        model={"path": str(old), "trusted_keys": [str(pub)], "shadow": {"every_n_frames": 1, "min_frames": 10, "min_duration_s": 0.5}},
        source={"realtime": True, "duration_s": 600, "fps": 20, "drops": DROPS}))
    sub = subscribe(mosquitto)
    daemon = DaemonProcess(config, tmp_path / "d.log")

    def command(payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        sub.client.publish(f"{PREFIX}/command", json.dumps(payload), qos=1)
        sub.wait_for(lambda ms: any(m.json().get("id") == payload["id"] for m in sub.on("/command/reply")), timeout, payload["id"])
        return next(m.json() for m in sub.on("/command/reply") if m.json().get("id") == payload["id"])

    try:
        sub.wait_for(lambda ms: len(sub.events()) >= 1, 30, "a first level event")
        installed = command({"command": "model_install", "bundle": "new.cwm", "id": "i1"})
        assert installed["ok"] and installed["result"]["candidate"] == sha_of(new), installed
        sub.wait_for(lambda ms: model_events(sub, "shadow_passed"), 30, "the shadow run's verdict")
        status = command({"command": "model_status", "id": "s1"})
        assert status["result"]["candidate"]["state"] == "passed" and status["result"]["candidate"]["agreement"] == 1.0
        promoted = command({"command": "model_promote", "id": "p1"})
        assert promoted["ok"] and promoted["result"]["switched"] and promoted["result"]["model_sha256"] == sha_of(new), promoted
        after = len(sub.events())
        sub.wait_for(lambda ms: len(sub.events()) > after, 20, "a level event decided by the new model")
        assert {e["model_sha256"] for e in sub.events()[after:]} == {sha_of(new)}
        nothing = command({"command": "model_promote", "id": "p2"})
        assert not nothing["ok"] and nothing["error"].startswith("no candidate to promote")
        rolled = command({"command": "model_rollback", "id": "r1"})
        assert rolled["ok"] and rolled["result"]["model_sha256"] == sha_of(old) and rolled["result"]["active"] is None
        listing = command({"command": "model_list", "id": "l1"})
        assert [m["sha256"] for m in listing["result"]["models"]] == [sha_of(new)]
        telemetry = sub.on("/telemetry")[-1].json()
        sub.wait_for(lambda ms: sub.on("/telemetry")[-1].json()["model"]["active"]["sha256"] == sha_of(old), 10, "telemetry")
        assert telemetry["model"]["active"]["source"] in ("config", "registry")
    finally:
        daemon.terminate()
        daemon.close()
    for message in sub.messages:
        if not message.topic.endswith("/command"):  # our own requests
            validate(message)
    actions = [e["action"] for e in sub.events("model")]
    assert actions == ["installed", "shadow_passed", "promoted", "rolled_back"], actions
    assert all(e["by"] in ("command", "auto") for e in sub.events("model"))
