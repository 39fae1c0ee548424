"""``edge-daemon model ...``: install a signed bundle, and see, promote or roll back the device's models.

They work whether the daemon runs or not: they change the registry in the state folder, and a
running daemon follows it within a second (switching, starting a shadow run, publishing events).

The state folder is the daemon's: ``--state-dir``, else the config's ``service.state_dir``, else
``$STATE_DIRECTORY``, else /var/lib/conveyor-watch for the installed service's config
(/etc/conveyor-watch/...), else ./state. Every command prints the folder it used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError, ModelError
from edge.messages import iso_utc
from edge.modelcard import card_path_for, load_card
from edge.modelstore import actions
from edge.modelstore.bundle import read_bundle_file
from edge.modelstore.errors import BundleRefused, StoreError
from edge.modelstore.keys import Trust, trust_from_config
from edge.modelstore.registry import Registry, roles_of
from edge.modelstore.store import STORE_FOLDER, ModelStore

SYSTEM_CONFIG_DIR, SYSTEM_STATE_DIR = Path("/etc/conveyor-watch"), Path("/var/lib/conveyor-watch")
EXIT_OK, EXIT_INTERNAL, EXIT_REFUSED, EXIT_MODEL = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions_ = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, required=True, help="the daemon's YAML config (trusted keys, state folder)")
        p.add_argument("--state-dir", type=Path, help="the daemon's state folder, if not the config's")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = common(actions_.add_parser("install", help="verify a .cwm bundle, store it and make it the candidate"))
    p.add_argument("bundle", type=Path, help="the bundle (conveyor-convert bundle)")
    common(actions_.add_parser("status", help="the active model, the candidate and what rollback goes back to")).add_argument(
        "--verify", action="store_true", help="also load the model a start would run (verified) and run it once")
    common(actions_.add_parser("list", help="every stored model and its role"))
    common(actions_.add_parser("promote", help="make the candidate (or SHA) the active model")).add_argument(
        "sha256", nargs="?", help="a stored model's sha256 (at least 6 hex digits); default: the candidate")
    common(actions_.add_parser("rollback", help="make the model active before the current one active again"))


def state_folder(config: EdgeConfig, config_path: Path, explicit: Path | None) -> Path:
    """Where the daemon keeps its state (see the module docstring)."""
    if explicit is not None:
        return explicit
    if config.service.state_dir:
        return Path(config.service.state_dir)
    from_env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if from_env:
        return Path(from_env)
    if config_path.resolve().parent == SYSTEM_CONFIG_DIR:
        return SYSTEM_STATE_DIR
    return Path("state")


def _clock() -> tuple[float, bool]:
    import time

    from edge.clock import clock_synced

    return time.time(), clock_synced()


def _check(config: EdgeConfig) -> actions.Check:
    """Loads a model in this config's runtime, as the daemon would (so an unloadable model is refused now)."""
    from edge.inference import load_runtime
    from edge.modelstore.loader import load_form

    def check(path: Path) -> None:
        load_form(path, load_runtime(config.model.runtime), config.model.num_threads, len(config.rois), "int8")
    return check


def _config_model_sha(config: EdgeConfig) -> str | None:
    try:
        return load_card(card_path_for(Path(config.model.path))).tflite_sha256
    except ModelError:
        return None


def _describe(store: ModelStore, sha: str | None, config: EdgeConfig) -> dict[str, Any]:
    if sha is None:
        return {"sha256": _config_model_sha(config), "source": "config model.path", "path": config.model.path}
    info = store.info(sha)
    if info is None:
        return {"sha256": sha, "source": "store", "missing": True}
    return {"sha256": sha, "source": info.source, "key_id": info.key_id, "installed_at": iso_utc(info.installed_at),
            "installed_by": info.installed_by, "path": str(store.model_path(sha))}


def _line(item: dict[str, Any]) -> str:
    if item.get("source") == "config model.path":
        return f"{item['sha256']} (the config's model.path {item['path']})"
    if item.get("missing"):
        return f"{item['sha256']} (MISSING from the store)"
    signer = f"signed by key {item['key_id']}" if item.get("key_id") else "UNSIGNED"
    return f"{item['sha256']} ({item['source'] or 'unnamed'}, {signer}, installed {item['installed_at']} by {item['installed_by']})"


def _status(store: ModelStore, registry: Registry, config: EdgeConfig) -> dict[str, Any]:
    config_sha = _config_model_sha(config)
    status = {"state_folder": str(store.folder), "generation": registry.generation, "active": _describe(store, registry.active, config),
              "candidate": None if registry.candidate is None else _describe(store, registry.candidate, config),
              "rollback_to": None if not registry.history else _describe(store, registry.history[-1], config),
              "history": [_describe(store, s, config) for s in reversed(registry.history)]}
    if registry.candidate is not None and registry.candidate == config_sha and registry.active is None:
        status["note"] = "the candidate is the same model as the config's model.path"
    return status


def _print_status(status: dict[str, Any]) -> None:
    print(f"model store: {status['state_folder']}")
    print(f"active:      {_line(status['active'])}")
    print(f"candidate:   {_line(status['candidate']) if status['candidate'] else '(none)'}")
    print(f"rollback to: {_line(status['rollback_to']) if status['rollback_to'] else '(nothing: no model was active before)'}")
    if status.get("note"):
        print(f"note:        {status['note']}")
    if "running" in status:
        print(f"verified:    a start runs {status['running']['sha256']} ({status['running']['source']}, "
              f"{status['running']['form']} form); one inference: {status['running']['probabilities']}")


def _verify_start(store: ModelStore, registry: Registry, trust: Trust, config: EdgeConfig) -> dict[str, Any]:
    """Load the model a start would run, exactly as start-up does, and run it once on a blank batch."""
    import numpy as np

    from edge.inference import load_runtime
    from edge.modelstore.loader import startup_model

    running, refusals = startup_model(store, registry, trust, config, load_runtime(config.model.runtime))
    card = running.classifier.card
    probabilities = running.classifier.classify(np.zeros((len(config.rois), *card.input.shape[1:]), dtype=card.input.dtype))
    alert = np.asarray(probabilities.alert).reshape(-1)
    return {"sha256": running.model_id, "source": running.source, "form": running.form, "key_id": running.key_id,
            "refused": [{"sha256": s, "reason": r} for s, r in refusals], "probabilities": [round(float(p), 4) for p in alert]}


def run(args: argparse.Namespace) -> int:
    """``edge-daemon model ACTION``; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="edge-daemon: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        trust = trust_from_config(config.model.trusted_keys, config.model.allow_unsigned)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"edge-daemon: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    store = ModelStore(state_folder(config, args.config, args.state_dir) / STORE_FOLDER)
    if trust.allow_unsigned:
        print("edge-daemon: WARNING: model.allow_unsigned is true: unsigned bundles are accepted (development only)", file=sys.stderr)
    try:
        return _run(args, config, trust, store)
    except BundleRefused as exc:
        print(f"edge-daemon: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StoreError as exc:
        print(f"edge-daemon: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:  # ModelError and EdgeError reach edge.cli.main, which maps them for every command
        print(f"edge-daemon: {store.folder}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INTERNAL


def _run(args: argparse.Namespace, config: EdgeConfig, trust: Trust, store: ModelStore) -> int:
    def emit(data: dict[str, Any], text: str) -> None:
        print(json.dumps(data, indent=2) if args.json else text)

    command = args.model_command
    if command in ("status", "list"):
        registry = store.registry.read()
        if command == "list":
            models = [{**_describe(store, m.sha256, config), "roles": roles_of(m.sha256, registry)} for m in store.stored()]
            text = "\n".join(f"{','.join(m['roles']) or 'stored':<18} {_line(m)}" for m in models) or f"no models stored in {store.folder}"
            emit({"state_folder": str(store.folder), "models": models}, text)
            return EXIT_OK
        status = _status(store, registry, config)
        if args.verify:
            status["running"] = _verify_start(store, registry, trust, config)
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            _print_status(status)
        return EXIT_OK
    if command == "install":
        outcome = actions.install(store, trust, read_bundle_file(args.bundle), str(args.bundle), "cli", _clock, _check(config))
    elif command == "promote":
        outcome = actions.promote(store, trust, args.sha256, "cli", _clock, _check(config), "promoted by hand")
    else:
        outcome = actions.rollback(store, trust, "cli", _clock, _check(config), Path(config.model.path))
    emit({"state_folder": str(store.folder), "action": outcome.action, "sha256": outcome.sha256, "key_id": outcome.key_id,
          "active": outcome.registry.active, "candidate": outcome.registry.candidate},
         f"{outcome.line()} (model store {store.folder}; a running daemon follows within a second)")
    return EXIT_OK
