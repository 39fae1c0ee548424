"""kill -9 at every step of an install, a promotion and a rollback, and of a running daemon's switch: whatever the
moment, the next start runs a working, verified model, and doing the action again completes it.

Each step that leaves something on disk names itself (edge.modelstore.faults); ``CONVEYOR_CRASH_AT=<step>`` makes
the real ``edge-daemon`` process SIGKILL itself right there, mid-write included (half a file on disk)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import expected_runtime
from helpers.daemon import DaemonProcess, wait_until
from helpers.models import model_copy, sha_of

from converter.bundle import make_bundle
from edge.config import load_config
from edge.inference import load_runtime
from edge.modelstore.faults import CRASH_ENV
from edge.modelstore.keys import Trust, generate_key_pair
from edge.modelstore.loader import startup_model
from edge.modelstore.store import ModelStore

INSTALL_STEPS = ["install.verified", "install.folder-made", "install.writing-bundle.cwm", "install.writing-model.tflite",
                 "install.writing-model.card.json", "install.writing-installed.json", "install.files-written",
                 "install.folder-renamed", "install.stored", "registry.half-written", "registry.written", "registry.renamed",
                 "install.registered"]
PROMOTE_STEPS = ["promote.verified", "registry.half-written", "registry.written", "registry.renamed", "promote.registered"]
ROLLBACK_STEPS = ["registry.half-written", "registry.written", "registry.renamed", "rollback.registered"]


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("plant")
    key, pub, _ = generate_key_pair(tmp / "keys", "plant")
    models = {"a": model_copy(tmp / "a", tag="1"), "b": model_copy(tmp / "b", tag="2")}
    bundles = {name: tmp / f"{name}.cwm" for name in models}
    for name in models:
        make_bundle(models[name], key, bundles[name], None)
    return {"tmp": tmp, "pub": pub, "models": models, "bundles": bundles, "sha": {n: sha_of(m) for n, m in models.items()}}


def write_config(folder: Path, plant: dict[str, Any], **extra: Any) -> Path:
    config = {"model": {"runtime": expected_runtime(), "trusted_keys": [str(plant["pub"])]},
              "service": {"state_dir": str(folder / "state")}, **extra}
    path = folder / "config.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def edge_model(config: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CRASH_ENV: crash_at} if crash_at else {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    return subprocess.run([sys.executable, "-m", "edge", "model", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=60, env=env)


def start_verified(config_path: Path) -> tuple[str, str | None]:
    """What the next start would run, found exactly as start-up finds it, verified and run once: (model id, registry active)."""
    config = load_config(config_path)
    store = ModelStore(Path(str(config.service.state_dir)) / "models")
    registry = store.registry.read()  # readable after any crash
    trust = Trust.from_files(config.model.trusted_keys)
    running, refusals = startup_model(store, registry, trust, config, load_runtime(config.model.runtime))
    assert refusals == [], refusals
    probabilities = running.classifier.classify(np.zeros((1, 64, 64, 3), np.uint8))
    assert probabilities.alert.shape == (1,) and 0.0 <= float(probabilities.alert[0]) <= 1.0
    for leftover in store.folder.glob(".incoming-*"):  # only ever under a temporary name, never as a model folder
        assert not (store.folder / leftover.name.removeprefix(".incoming-")).exists()
    return running.model_id, registry.active


@pytest.fixture(scope="module")
def baselines(plant: dict[str, Any]) -> dict[str, Path]:
    """The states each crash starts from: a active (for install), a active with b the candidate (for promote), b promoted
    over a (for rollback)."""
    out = {}
    folder = plant["tmp"] / "baseline"
    config = write_config(folder, plant)
    for phase, commands in (("install", [["install", str(plant["bundles"]["a"])], ["promote"]]),
                            ("promote", [["install", str(plant["bundles"]["b"])]]), ("rollback", [["promote"]])):
        for command in commands:
            assert edge_model(config, *command).returncode == 0
        out[phase] = plant["tmp"] / f"baseline-{phase}"
        shutil.copytree(folder / "state", out[phase] / "state")
    return out


def test_kill_9_at_every_step_of_install_promote_and_rollback_always_restarts_with_a_verified_model(
        plant: dict[str, Any], baselines: dict[str, Path], tmp_path: Path) -> None:
    """For each of 22 kill points: the command dies by SIGKILL there; the next start runs the model from before or the
    one the command was making active (never anything else, never nothing), verified and working; doing the command
    again when it did not take effect completes it."""
    a, b = plant["sha"]["a"], plant["sha"]["b"]
    results = []
    for phase, steps in (("install", INSTALL_STEPS), ("promote", PROMOTE_STEPS), ("rollback", ROLLBACK_STEPS)):
        args = {"install": ["install", str(plant["bundles"]["b"])], "promote": ["promote"], "rollback": ["rollback"]}[phase]
        before, target = {"install": (a, a), "promote": (a, b), "rollback": (b, a)}[phase]
        for step in steps:
            folder = tmp_path / f"{phase}-{step}"
            shutil.copytree(baselines[phase] / "state", folder / "state")
            config = write_config(folder, plant)
            killed = edge_model(config, *args, crash_at=step)
            assert killed.returncode == -signal.SIGKILL, (phase, step, killed.returncode, killed.stderr[-400:])
            running, active = start_verified(config)
            assert running in (before, target), (phase, step, running)
            store = ModelStore(folder / "state" / "models")
            done = store.registry.read().candidate == b if phase == "install" else running == target
            if not done:
                again = edge_model(config, *args)
                assert again.returncode == 0, (phase, step, again.stderr)
            after, active = start_verified(config)
            assert after == active == target, (phase, step)
            if phase == "install":
                assert store.registry.read().candidate == b and store.verified(b, Trust.from_files([str(plant["pub"])]))
            results.append((phase, step, running))
    assert len(results) == len(INSTALL_STEPS) + len(PROMOTE_STEPS) + len(ROLLBACK_STEPS) == 22
    # Kills before the registry's rename leave the model from before, after it the new one: both happened.
    assert {r for p, _, r in results if p == "promote"} == {a, b} and {r for p, _, r in results if p == "rollback"} == {a, b}


def test_kill_9_while_the_daemon_switches_models_restarts_with_the_promoted_model(plant: dict[str, Any],
                                                                                    baselines: dict[str, Path], tmp_path: Path) -> None:
    """A running daemon killed after loading the promoted model but before the swap, and right after it: restarted, it
    runs the promoted model (the registry's), and its log says so."""
    b = plant["sha"]["b"]
    for step in ("switch.loaded", "switch.done"):
        folder = tmp_path / step
        shutil.copytree(baselines["promote"] / "state", folder / "state")
        run_config = write_config(folder, plant, source={"type": "synthetic", "fps": 20, "width": 160, "height": 120,
                                                         "realtime": True, "duration_s": 600.0},
                                  mqtt={"host": "127.0.0.1", "port": 1})
        daemon = DaemonProcess(run_config, folder / "daemon.log", env={CRASH_ENV: step})
        try:
            wait_until(lambda: "first inference done" in daemon.log(), 60, "the daemon's first inference")  # noqa: B023
            assert edge_model(run_config, "promote").returncode == 0
            assert daemon.wait(30) == -signal.SIGKILL, daemon.log()[-2000:]
        finally:
            daemon.close()
        running, active = start_verified(run_config)
        assert running == active == b
        restart_config = folder / "restart.yaml"
        restart_config.write_text(run_config.read_text().replace("duration_s: 600.0", "duration_s: 1.0").replace("realtime: true",
                                                                                                                 "realtime: false"))
        restarted = DaemonProcess(restart_config, folder / "restart.log")
        try:
            assert restarted.wait(60) == 0, restarted.log()[-2000:]
        finally:
            restarted.close()
        assert f"model {b[:12]} from the store (conveyor_int8.tflite, signed by key" in restarted.log()
