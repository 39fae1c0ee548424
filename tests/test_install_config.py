"""A safe first run: `edge-daemon init` writes a config for this site that `check-config` (with the
credentials folder systemd will read) accepts and the daemon runs; nothing it writes holds a secret."""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.broker import Mosquitto
from helpers.subscriber import Subscriber

from edge.config import load_config
from edge.errors import ConfigError
from edge.init_config import add_arguments, camera_section, run_init

EDGE = [sys.executable, "-m", "edge"]


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def init_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_unattended_init_writes_a_config_check_config_accepts_with_its_credentials(tmp_path: Path) -> None:
    """Password and client key go into the credentials folder (0600) as systemd credentials, certificates
    beside the config; the YAML names them and holds no secret; check-config --credentials-dir accepts it."""
    (tmp_path / "pw").write_text("s3cr3t-Hunter2\n")
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text(f"-----BEGIN {name}-----\n")
    config, credentials = tmp_path / "etc" / "config.yaml", tmp_path / "etc" / "credentials"
    result = edge("init", "--output", str(config), "--credentials-dir", str(credentials), "--yes",
                  "--site", "plant-a", "--line", "biscuit-3", "--device", "pi-01", "--broker", "broker.plant:8883",
                  "--username", "conveyor-pi-01", "--password-file", str(tmp_path / "pw"),
                  "--ca-file", str(tmp_path / "ca.pem"), "--cert-file", str(tmp_path / "client.pem"),
                  "--key-file", str(tmp_path / "client.key"), "--camera", "picamera2:1", "--size", "640x480", "--fps", "10")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(config.read_text())
    assert data["device"] == {"site": "plant-a", "line": "biscuit-3", "name": "pi-01"}
    assert data["source"] == {"type": "picamera2", "camera": 1, "size": [640, 480], "fps": 10.0}
    assert data["mqtt"] == {"host": "broker.plant", "port": 8883, "username": "conveyor-pi-01", "password_credential": "mqtt-password",
                            "tls": {"ca_file": str(config.parent / "ca.crt"), "cert_file": str(config.parent / "client.crt"),
                                    "key_credential": "mqtt-client-key"}}
    assert "s3cr3t" not in config.read_text() and mode(config) == 0o640
    assert (credentials / "mqtt-password").read_text() == "s3cr3t-Hunter2\n" and mode(credentials / "mqtt-password") == 0o600
    assert mode(credentials / "mqtt-client-key") == 0o600 and mode(credentials) == 0o700
    assert (config.parent / "ca.crt").read_text() == "-----BEGIN ca.pem-----\n"
    # The same config with a camera this machine has (Picamera2 is not installed here).
    config.with_name("synthetic.yaml").write_text(config.read_text().replace("type: picamera2\n  camera: 1\n  size:\n  - 640\n  - 480\n",
                                                                             "type: synthetic\n"))
    checked = edge("check-config", str(config.with_name("synthetic.yaml")), "--credentials-dir", str(credentials))
    assert checked.returncode == 0, checked.stderr
    assert "s3cr3t" not in checked.stdout + checked.stderr


def test_check_config_reads_credentials_the_way_the_daemon_will(tmp_path: Path) -> None:
    """Without a credentials folder a credential cannot be checked; an empty one (install.sh's placeholder)
    or a missing folder is a one-line error naming it; exit 2 each time."""
    config = tmp_path / "c.yaml"
    config.write_text("mqtt: {username: u, password_credential: mqtt-password}\n")
    outside = edge("check-config", str(config), env={"CREDENTIALS_DIRECTORY": ""})
    assert outside.returncode == 2 and "needs systemd LoadCredential=" in outside.stderr
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("")
    empty = edge("check-config", str(config), "--credentials-dir", str(credentials))
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1
    assert f"{credentials / 'mqtt-password'}' must hold exactly one non-empty line" in empty.stderr
    missing = edge("check-config", str(config), "--credentials-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "--credentials-dir: folder" in missing.stderr and "does not exist" in missing.stderr
    (credentials / "mqtt-password").write_text("pw\n")
    assert edge("check-config", str(config), "--credentials-dir", str(credentials)).returncode == 0


def test_check_config_refuses_a_camera_library_this_machine_lacks(tmp_path: Path) -> None:
    """A picamera2 source where Picamera2 is not installed cannot run, so check-config (and install.sh) refuse it."""
    config = tmp_path / "c.yaml"
    config.write_text("source: {type: picamera2}\n")
    result = edge("check-config", str(config))
    assert result.returncode == 2 and "needs Picamera2" in result.stderr and "apt install python3-picamera2" in result.stderr


def test_init_never_overwrites_and_names_what_is_missing(tmp_path: Path) -> None:
    """Without a terminal, missing --site/--line/--broker are named in one line; an existing config needs --force."""
    config = tmp_path / "config.yaml"
    missing = edge("init", "--output", str(config), "--site", "a")
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "edge-daemon: init: --line, --broker required (or run it on a terminal without --yes to be asked)")
    assert not config.exists()
    config.write_text("device: {site: kept}\n")
    again = edge("init", "--output", str(config), "--yes", "--site", "a", "--line", "b", "--broker", "h")
    assert again.returncode == 2 and "already exists" in again.stderr and config.read_text() == "device: {site: kept}\n"
    forced = edge("init", "--output", str(config), "--yes", "--site", "a", "--line", "b", "--broker", "h", "--force")
    assert forced.returncode == 0 and yaml.safe_load(config.read_text())["device"]["site"] == "a"


def test_init_asks_for_what_the_options_do_not_say(tmp_path: Path) -> None:
    """On a terminal each missing value is asked, with the default shown; the answers become the config."""
    asked: list[tuple[str, str | None]] = []
    camera = "Camera (picamera2, opencv:/dev/video0, images:FOLDER, synthetic)"
    answers = {"Site (plant) name": "plant-b", "Production line": "line-2", "This device's name": "",
               "MQTT broker host[:port]": "[fd00::5]:1884", camera: "opencv:/dev/video2", "MQTT user name (empty: none)": ""}

    def ask(prompt: str, default: str | None) -> str:
        asked.append((prompt, default))
        return answers[prompt] or (default or "")

    output = tmp_path / "config.yaml"
    assert run_init(init_args("--output", str(output)), ask=ask) == 0
    data = yaml.safe_load(output.read_text())
    device_default = dict(asked)["This device's name"]
    assert device_default and data["device"] == {"site": "plant-b", "line": "line-2", "name": device_default}
    assert data["mqtt"] == {"host": "fd00::5", "port": 1884}
    assert data["source"] == {"type": "opencv", "uri": "/dev/video2"}
    assert dict(asked)[camera] == "picamera2"
    assert load_config(output, check_files=False).mqtt.port == 1884


@pytest.mark.parametrize(("spec", "size", "expected"), [
    ("picamera2", None, {"type": "picamera2", "size": [320, 240]}),
    ("opencv:0", "640x480", {"type": "opencv", "uri": 0, "width": 640, "height": 480}),
    ("opencv:rtsp://cam/stream", None, {"type": "opencv", "uri": "rtsp://cam/stream"}),
    ("synthetic", "160x120", {"type": "synthetic", "width": 160, "height": 120}),
])
def test_camera_specs_become_source_sections(spec: str, size: str | None, expected: dict[str, Any]) -> None:
    """--camera KIND[:WHERE] and --size map onto the source schema's own keys."""
    assert camera_section(spec, size, None) == expected


@pytest.mark.parametrize(("argv", "message"), [
    (["--camera", "webcam"], "--camera 'webcam': expected one of picamera2, opencv, images, synthetic"),
    (["--camera", "opencv"], "say which camera"),
    (["--size", "big"], "--size 'big': expected WIDTHxHEIGHT"),
    (["--broker", "h:99999"], "port must be 1-65535"),
    (["--site", "plant a"], "--site 'plant a': expected a name of 1-64 letters"),
    (["--password-file", "/nonexistent/pw", "--username", "u"], "--password-file '/nonexistent/pw': file does not exist"),
    (["--fps", "0"], "source.fps: expected a number > 0"),
])
def test_init_rejects_bad_values_before_writing_anything(tmp_path: Path, argv: list[str], message: str) -> None:
    """Every bad value is a ConfigError naming the option; no config or credential is written."""
    base = {"--site": "a", "--line": "b", "--broker": "h", "--camera": "synthetic"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    flat = [part for pair in base.items() for part in pair]
    output = tmp_path / "config.yaml"
    with pytest.raises(ConfigError) as info:
        run_init(init_args("--output", str(output), "--yes", "--credentials-dir", str(tmp_path / "creds"), *flat))
    assert any(message in problem for problem in info.value.problems), info.value.problems
    assert not output.exists() and not (tmp_path / "creds" / "mqtt-password").exists()


def test_a_config_init_writes_runs(tmp_path: Path, mosquitto: Mosquitto, subscribe: Callable[..., Subscriber]) -> None:
    """The daemon starts on the config init wrote (synthetic camera, the test broker), judges the belt and stops cleanly."""
    config = tmp_path / "config.yaml"
    written = edge("init", "--output", str(config), "--yes", "--site", "plant-a", "--line", "biscuit-3", "--device", "pi-01",
                   "--broker", f"127.0.0.1:{mosquitto.port}", "--camera", "synthetic", "--size", "160x120")
    assert written.returncode == 0, written.stderr
    subscriber = subscribe(mosquitto, "plant/plant-a/biscuit-3/pi-01/#")
    daemon = subprocess.Popen([*EDGE, "run", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "STATE_DIRECTORY": str(tmp_path / "state")})
    try:
        subscriber.wait_for(lambda ms: any(m.topic.endswith("/status") and m.payload == "ok" for m in ms)
                            and any(m.topic.endswith("/state/belt") and m.payload == "ok" for m in ms), timeout=60,
                            what="status and belt state ok")
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output[-2000:]
    assert (tmp_path / "state" / "outbox.sqlite").exists()
