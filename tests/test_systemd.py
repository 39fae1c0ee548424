"""The unit file: it verifies, it is hardened to an exposure score of 2.0 or less, it can still see the camera."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "conveyor-watch.service"
INSTALL = UNIT.with_name("install.sh")
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not on this machine (the issue: 'where it exists')")


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


@needs_systemd_analyze
def test_systemd_analyze_verify_passes_without_warnings(tmp_path: Path) -> None:
    """verify, in a root holding the unit, systemd's own units and the installed ExecStart path."""
    root = tmp_path / "root"
    exe = root / "opt/conveyor-watch/venv/bin/edge-daemon"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    for lib in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if lib.is_dir():
            shutil.copytree(lib, root / lib.relative_to("/"), dirs_exist_ok=True, symlinks=True)
            break
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warnings: none allowed


@needs_systemd_analyze
def test_exposure_score_is_at_most_2() -> None:
    """systemd-analyze security rates the unit 2.0 or better (unhardened services: 8.8-9.7)."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= 2.0


def test_the_unit_is_a_notify_service_with_watchdog_and_a_dedicated_camera_user() -> None:
    """Type=notify, WatchdogSec, Restart=on-failure, non-root user in group video, camera devices allowed."""
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"] and "WatchdogSec" in s
    assert s["User"] == ["conveyor"] and s["SupplementaryGroups"] == ["video"]
    assert {"char-video4linux rw", "char-media rw", "char-dma_heap rw"} <= set(s["DeviceAllow"])
    assert s["StateDirectory"] == ["conveyor-watch"] and s["ConfigurationDirectory"] == ["conveyor-watch"]
    assert any(v.startswith("mqtt-password:") for v in s["LoadCredential"])
    assert "AF_INET" in s["RestrictAddressFamilies"][0]


def test_install_script_is_valid_bash_and_refuses_bad_options() -> None:
    """bash -n passes; an unknown option is a one-line error with exit 2 (before anything is changed)."""
    assert subprocess.run(["bash", "-n", str(INSTALL)], timeout=30).returncode == 0
    result = subprocess.run(["bash", str(INSTALL), "--runtime", "onnx"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--runtime must be litert or tflite" in result.stderr
    script = INSTALL.read_text()
    assert "--system-site-packages" in script and "useradd --system" in script and "systemctl enable" in script
