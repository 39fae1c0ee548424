"""The model store on disk: the registry's transitions and durable writes, models stored by sha256 and checked again
before every use, the start-up chain (registry, history, config), and `edge-daemon model` refusing in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import expected_runtime
from helpers.models import model_copy, sha_of

from converter.bundle import make_bundle
from edge.config import load_config
from edge.inference import load_runtime
from edge.modelstore import actions
from edge.modelstore.bundle import TRAILER
from edge.modelstore.errors import BundleRefused, StoreError
from edge.modelstore.keys import Trust, generate_key_pair
from edge.modelstore.loader import load_form, startup_model
from edge.modelstore.registry import MAX_LOG, Registry, RegistryFile, roles_of
from edge.modelstore.store import KEEP_UNREFERENCED, ModelStore

A, B, C = "a" * 64, "b" * 64, "c" * 64


def clock() -> tuple[float, bool]:
    return time.time(), True


# --- the registry (pure) ---------------------------------------------------------------------------------

def test_install_promote_and_rollback_move_the_models_between_roles_with_a_log_entry_each() -> None:
    """candidate -> active (the config's model, None, goes on the history) -> back; each change one generation."""
    r0 = Registry()
    r1 = r0.installed(A, "k1", "cli", "from a.tflite", 1.0, True)
    assert r1 is not None and (r1.candidate, r1.active, r1.generation) == (A, None, 1)
    r2 = r1.promoted(A, "cli", "by hand", 2.0, True, "k1")
    assert (r2.active, r2.candidate, r2.history) == (A, None, (None,))
    r3 = r2.installed(B, None, "command", "from b.tflite", 3.0, False)
    assert r3 is not None
    r4 = r3.promoted(B, "auto", "shadow passed", 4.0, True)
    assert (r4.active, r4.history, roles_of(A, r4), roles_of(B, r4)) == (B, (None, A), ["previous"], ["active"])
    r5 = r4.rolled_back("cli", "bad model", 5.0, True)
    assert (r5.active, r5.history) == (A, (None,))
    r6 = r5.rolled_back("cli", "again", 6.0, True)
    assert (r6.active, r6.history) == (None, ())
    assert [(c.generation, c.action, c.sha256, c.previous) for c in r6.log] == [
        (1, "installed", A, None), (2, "promoted", A, None), (3, "installed", B, A), (4, "promoted", B, A),
        (5, "rolled_back", A, B), (6, "rolled_back", None, A)]


def test_what_changes_nothing_is_not_a_change_and_what_is_impossible_says_why() -> None:
    """Installing the active or the candidate again: None (nothing written); promoting the active, rolling back with
    no history: StoreError naming the reason."""
    r = Registry().installed(A, None, "cli", "", 1.0, True)
    assert r is not None and r.installed(A, None, "cli", "", 2.0, True) is None
    active = r.promoted(A, "cli", "", 2.0, True)
    assert active.installed(A, None, "cli", "", 3.0, True) is None
    with pytest.raises(StoreError, match="is already active"):
        active.promoted(A, "cli", "", 3.0, True)
    with pytest.raises(StoreError, match="nothing to roll back to"):
        Registry().rolled_back("cli", "", 1.0, True)


def test_the_log_is_bounded_and_survives_a_json_round_trip() -> None:
    """At most MAX_LOG entries, the newest kept; to_json/from_json is lossless; garbage is refused in one line."""
    r = Registry()
    for i in range(MAX_LOG + 5):
        r = r.refused(None, None, "cli", f"refusal {i}", float(i), True)
    assert len(r.log) == MAX_LOG and r.log[0].reason == "refusal 5" and r.generation == MAX_LOG + 5
    assert Registry.from_json(r.to_json(), "x") == r
    for bad in (b"{}", b"[]", b"\xff", json.dumps({"format": "conveyor-watch-model-registry/1", "generation": 1, "active": "zz",
                                                    "candidate": None, "history": [], "log": []}).encode()):
        with pytest.raises(StoreError) as refused:
            Registry.from_json(bad, "registry.json")
        assert "registry.json: not a readable model registry" in str(refused.value) and "\n" not in str(refused.value)


def test_the_registry_file_is_replaced_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """write -> read gives it back, the stamp changes with each write, no temporary file stays."""
    file = RegistryFile(tmp_path / "models")
    assert file.read() == Registry() and file.stamp() is None
    r = Registry().installed(A, None, "cli", "", 1.0, True)
    assert r is not None
    with file.locked():
        file.write(r)
    first = file.stamp()
    with file.locked():
        file.write(r.promoted(A, "cli", "", 2.0, True))
    assert file.read().active == A and file.stamp() not in (None, first)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".lock", "registry.json"]


# --- stored models ------------------------------------------------------------------------------------------

@pytest.fixture
def plant(tmp_path: Path) -> dict[str, Any]:
    """A key pair, two bundles of real models (different sha256s), and the store of a fresh state folder."""
    key, pub, _ = generate_key_pair(tmp_path / "keys", "plant")
    models = {tag: model_copy(tmp_path / f"m{tag}", tag=tag) for tag in ("1", "2")}
    bundles = {}
    for tag, model in models.items():
        bundles[tag] = tmp_path / f"m{tag}.cwm"
        make_bundle(model, key, bundles[tag], None)
    return {"key": key, "pub": pub, "models": models, "bundles": bundles, "trust": Trust.from_files([str(pub)]),
            "store": ModelStore(tmp_path / "state" / "models")}


def check() -> actions.Check:
    runtime = load_runtime(expected_runtime())
    return lambda path: load_form(path, runtime, 1, 1, "int8")


def test_install_stores_the_bundle_under_its_model_sha_and_makes_it_the_candidate(plant: dict[str, Any]) -> None:
    """The folder holds the bundle, model, card and installed.json; a second install of it writes nothing."""
    store: ModelStore = plant["store"]
    outcome = actions.install(store, plant["trust"], plant["bundles"]["1"].read_bytes(), "m1.cwm", "cli", clock, check())
    sha = sha_of(plant["models"]["1"])
    assert (outcome.action, outcome.sha256, outcome.registry.candidate) == ("installed", sha, sha)
    assert sorted(p.name for p in store.model_dir(sha).iterdir()) == ["bundle.cwm", "installed.json", "model.card.json", "model.tflite"]
    assert store.model_path(sha).read_bytes() == plant["models"]["1"].read_bytes()
    stamp = store.registry.stamp()
    again = actions.install(store, plant["trust"], plant["bundles"]["1"].read_bytes(), "m1.cwm", "cli", clock, check())
    assert again.action == "unchanged" and store.registry.stamp() == stamp
    assert "is already stored and the candidate" in again.line()


def test_a_model_changed_on_disk_after_install_is_refused_when_promoted(plant: dict[str, Any]) -> None:
    """A stored model's file edited in place: promote refuses it (one line), the registry keeps its active model and logs the refusal."""
    store: ModelStore = plant["store"]
    actions.install(store, plant["trust"], plant["bundles"]["1"].read_bytes(), "m1.cwm", "cli", clock, check())
    sha = sha_of(plant["models"]["1"])
    data = bytearray(store.model_path(sha).read_bytes())
    data[5000] ^= 0xFF
    store.model_path(sha).write_bytes(bytes(data))
    with pytest.raises(BundleRefused, match=f"stored model {sha[:12]}: model.tflite differs from its bundle"):
        actions.promote(store, plant["trust"], None, "cli", clock, check())
    registry = store.registry.read()
    assert registry.active is None and registry.log[-1].action == "refused" and registry.log[-1].sha256 == sha


def test_start_up_runs_the_registry_model_and_falls_back_when_it_is_no_longer_trusted(plant: dict[str, Any], tmp_path: Path) -> None:
    """Promoted model 2 runs at start; once its key is no longer trusted, start-up refuses it (listed) and runs the model
    before it; with no stored model left, the config's model.path."""
    store: ModelStore = plant["store"]
    trust: Trust = plant["trust"]
    for tag in ("1", "2"):
        actions.install(store, trust, plant["bundles"][tag].read_bytes(), f"m{tag}.cwm", "cli", clock, check())
        actions.promote(store, trust, None, "cli", clock, check())
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({"model": {"runtime": expected_runtime(), "path": str(model_copy(tmp_path / "cfg"))}}))
    config = load_config(config_path)
    runtime = load_runtime(expected_runtime())
    registry = store.registry.read()
    running, refusals = startup_model(store, registry, trust, config, runtime)
    assert (running.sha256, running.source, refusals) == (sha_of(plant["models"]["2"]), "registry", [])
    store.model_path(sha_of(plant["models"]["2"])).write_bytes(b"garbage")
    running, refusals = startup_model(store, registry, trust, config, runtime)
    assert running.sha256 == sha_of(plant["models"]["1"]) and [sha for sha, _ in refusals] == [sha_of(plant["models"]["2"])]
    running, refusals = startup_model(store, registry, Trust(), config, runtime)  # no key trusted any more
    assert running.source == "config" and running.model_id == sha_of(BUNDLED := model_copy(tmp_path / "x")) and len(refusals) == 2
    assert "signed by an unknown key" in refusals[0][1] and BUNDLED.exists()


def test_stored_models_nobody_needs_are_pruned_beyond_the_newest_few(plant: dict[str, Any], tmp_path: Path) -> None:
    """Referenced models always stay; of the rest only the newest KEEP_UNREFERENCED remain."""
    store: ModelStore = plant["store"]
    shas = []
    for tag in "3456789":
        bundle = tmp_path / f"p{tag}.cwm"
        make_bundle(model_copy(tmp_path / f"p{tag}", tag=tag), plant["key"], bundle, None)
        shas.append(actions.install(store, plant["trust"], bundle.read_bytes(), bundle.name, "cli", clock).sha256)
        if tag == "3":
            actions.promote(store, plant["trust"], shas[0][:8], "cli", clock)
    kept = {m.sha256 for m in store.stored()}
    assert kept == {shas[0], *shas[-KEEP_UNREFERENCED - 1:]}  # the active, the newest unreferenced, the candidate


# --- the command line ------------------------------------------------------------------------------------------------

def edge_model(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "model", *args], capture_output=True, text=True, timeout=60)


def test_install_then_status_names_the_model_in_a_fresh_state_folder(plant: dict[str, Any], tmp_path: Path) -> None:
    """The reviewer's check: install into an empty state folder, then status names the candidate and its signer."""
    config = tmp_path / "device.yaml"
    config.write_text(yaml.safe_dump({"model": {"runtime": expected_runtime(), "trusted_keys": [str(plant["pub"])]}}))
    state = tmp_path / "fresh-state"
    installed = edge_model("install", str(plant["bundles"]["1"]), "--config", str(config), "--state-dir", str(state))
    assert installed.returncode == 0, installed.stderr
    status = edge_model("status", "--config", str(config), "--state-dir", str(state))
    sha = sha_of(plant["models"]["1"])
    assert status.returncode == 0 and f"candidate:   {sha} (conveyor_int8.tflite, signed by key " in status.stdout
    assert "active:      " in status.stdout and "the config's model.path" in status.stdout


@pytest.mark.parametrize("case", ["flipped byte", "unknown key", "card does not match", "unsigned", "not a bundle"])
def test_a_refused_bundle_is_one_line_exit_2_and_changes_nothing_but_the_log(plant: dict[str, Any], tmp_path: Path, case: str) -> None:
    """Each refusal: exit code 2, exactly one line on stderr naming the file and the reason, no model stored, the registry's
    roles unchanged, the refusal in its log (the running daemon publishes it as an event)."""
    bundle = tmp_path / "bad.cwm"
    data = bytearray(plant["bundles"]["1"].read_bytes())
    if case == "flipped byte":
        data[len(data) // 2] ^= 0x04
    elif case == "unknown key":
        other, _, _ = generate_key_pair(tmp_path / "other", "stranger")
        make_bundle(plant["models"]["1"], other, bundle, None)
        data = bytearray(bundle.read_bytes())
    elif case == "card does not match":
        model = model_copy(tmp_path / "mm", tag="6")
        model.with_suffix(".card.json").write_text(plant["models"]["2"].with_suffix(".card.json").read_text())
        from edge.modelstore.bundle import BundleContent, build_bundle
        from edge.modelstore.keys import load_private_key

        data = bytearray(build_bundle(BundleContent(model.read_bytes(), model.with_suffix(".card.json").read_bytes()),
                                      load_private_key(plant["key"]), source="mm.tflite", created="", tool="test"))
    elif case == "unsigned":
        make_bundle(plant["models"]["1"], None, bundle, None)
        data = bytearray(bundle.read_bytes())
    else:
        data = bytearray(b"PK\x03\x04" + bytes(4000))
    bundle.write_bytes(bytes(data))
    config = tmp_path / "device.yaml"
    config.write_text(yaml.safe_dump({"model": {"runtime": expected_runtime(), "trusted_keys": [str(plant["pub"])]},
                                      "service": {"state_dir": str(tmp_path / "state")}}))
    run = edge_model("install", str(bundle), "--config", str(config))
    expected = {"flipped byte": "damaged or altered", "unknown key": "signed by an unknown key", "unsigned": "unsigned; only bundles",
                "card does not match": "model.card.json does not match model.tflite", "not a bundle": "not a conveyor-watch model bundle"}
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"edge-daemon: refused: {bundle}: "), run.stderr
    assert expected[case] in lines[0] and "Traceback" not in run.stderr
    store = ModelStore(tmp_path / "state" / "models")
    registry = store.registry.read()
    assert store.stored() == [] and (registry.active, registry.candidate) == (None, None)
    assert [c.action for c in registry.log] == ["refused"] and expected[case] in registry.log[0].reason


def test_model_commands_without_a_model_to_act_on_say_what_to_do(tmp_path: Path) -> None:
    """promote with no candidate, rollback with no history, an unknown sha prefix: one line each, exit 2."""
    config = tmp_path / "device.yaml"
    config.write_text(yaml.safe_dump({"service": {"state_dir": str(tmp_path / "state")}}))
    for args, message in ((["promote"], "no candidate to promote: install a bundle first"),
                          (["rollback"], "nothing to roll back to"),
                          (["promote", "abcdef12"], "no stored model's sha256 starts with abcdef12")):
        run = edge_model(*args, "--config", str(config))
        assert run.returncode == 2 and message in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


def test_a_trusted_key_that_is_not_a_public_key_is_a_config_error(plant: dict[str, Any], tmp_path: Path) -> None:
    """model.trusted_keys naming the private key: check-config and model both refuse it naming the entry."""
    config = tmp_path / "device.yaml"
    config.write_text(yaml.safe_dump({"model": {"trusted_keys": [str(plant["key"])]}}))
    run = subprocess.run([sys.executable, "-m", "edge", "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "model.trusted_keys[0]: " in run.stderr and "this is a private key: give the .pub file" in run.stderr


def test_trailer_size_is_what_the_docs_say() -> None:
    """docs/models.md describes a 112-byte trailer."""
    assert TRAILER.size == 112 and "112 bytes" in (Path(__file__).resolve().parent.parent / "docs" / "models.md").read_text()
