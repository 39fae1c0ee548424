"""The unit file: it verifies, it is hardened to an exposure score of 2.0 or less, it can still see the camera."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.files import readable_copy

from edge.cli import EXIT_CONFIG, EXIT_MODEL

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "conveyor-watch.service"
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
    exe = root / "opt/conveyor-watch/0.1.0/venv/bin/edge-daemon"  # install.sh's layout: versions beside a `current` link
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "opt/conveyor-watch/current").symlink_to("0.1.0")
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


def test_the_unit_runs_the_current_version_and_stops_retrying_on_config_and_model_errors() -> None:
    """ExecStart goes through the `current` link; exit codes 2 (config) and 3 (model) are not restarted."""
    s = unit_settings()
    assert s["ExecStart"][0].startswith("/opt/conveyor-watch/current/venv/bin/edge-daemon run ")
    assert s["RestartPreventExitStatus"] == [f"{EXIT_CONFIG} {EXIT_MODEL}"] == ["2 3"]


def test_the_unit_keeps_proc_cpuinfo_visible_for_xnnpack() -> None:
    """No ProcSubset=pid: cpuinfo (XNNPACK's CPU detection) must read /proc/cpuinfo on ARM Linux, or LiteRT
    silently runs without XNNPACK (make pi-check counts the delegate nodes both ways); other processes stay hidden."""
    s = unit_settings()
    assert "ProcSubset" not in s
    assert s["ProtectProc"] == ["invisible"]


def test_shell_scripts_are_shellcheck_clean() -> None:
    """install.sh and the bundle/check scripts pass shellcheck (warnings and style included)."""
    scripts = [INSTALL, *sorted((REPO / "scripts").glob("*.sh"))]
    result = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_install_script_refuses_bad_options_before_changing_anything() -> None:
    """An unknown option or a bad value is a one-line error with exit 2; --help prints the usage. (Run as
    `nobody`: options are checked before the root check, and nobody could not change this machine anyway.)"""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.getuid() == 0 else []
    with readable_copy(INSTALL.parent) as systemd:
        install = str(systemd / INSTALL.name)
        for args, message in ((["--runtime", "onnx"], "--runtime must be litert or tflite, got 'onnx'"),
                              (["--frobnicate"], "unknown option --frobnicate"),
                              (["--ready-timeout", "soon"], "--ready-timeout must be a whole number"),
                              (["--purge"], "--purge goes with --uninstall"),
                              (["--site"], "--site needs a value")):
            result = subprocess.run([*nobody, "bash", install, *args], capture_output=True, text=True, timeout=30, cwd="/")
            assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        usage = subprocess.run([*nobody, "bash", install, "--help"], capture_output=True, text=True, timeout=30, cwd="/")
    assert usage.returncode == 0 and "--rollback" in usage.stdout and "--uninstall [--purge]" in usage.stdout
