"""``edge-daemon``: the conveyor watcher's command line.

Commands:
  run --config FILE     run the service (what systemd starts)
  init                  write a first config for this site, line, device, broker and camera
  check-config FILE     validate a config (and, with --credentials-dir, its credentials) and print it
  demo                  the whole product on this machine: broker, daemon, simulated camera, subscriber
  model ACTION          the device's models: install a signed bundle, status, list, promote, rollback (docs/models.md)

Exit codes:
  0  success (also after SIGTERM/SIGINT: a clean stop)
  1  unexpected internal error (logged with a traceback)
  2  invalid configuration or arguments; a model bundle or model action refused
  3  the model was refused (missing, corrupt, or not matching its card)
  4  the demo's broker could not be started
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from pathlib import Path

import yaml

from edge import __version__
from edge.config import effective_config, load_config
from edge.errors import ConfigError, EdgeError, ModelError

log = logging.getLogger("edge")
EXIT_OK, EXIT_INTERNAL, EXIT_CONFIG, EXIT_MODEL, EXIT_BROKER = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-daemon", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the service")
    p.add_argument("--config", type=Path, required=True, help="YAML config file")
    p = sub.add_parser("check-config", help="validate a config file and print the effective config")
    p.add_argument("config", type=Path, help="YAML config file")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--credentials-dir", type=Path, help="read systemd credentials from this folder (what LoadCredential= reads)")
    from edge.init_config import add_arguments as add_init_arguments

    add_init_arguments(sub.add_parser("init", help="write a first config (asks on a terminal; --yes for unattended use)"))
    p = sub.add_parser("demo", help="run the whole product locally and print what a subscriber sees")
    p.add_argument("--broker", metavar="HOST:PORT", help="use this broker instead of starting one on loopback")
    p.add_argument("--seconds", type=float, default=20.0, help="stream time to run (default 20: two drops and recoveries)")
    p.add_argument("--runtime", default="auto", help="TFLite runtime (default auto)")
    from edge.modelstore.cli import add_arguments as add_model_arguments

    add_model_arguments(sub.add_parser("model", help="install a signed model bundle; status, list, promote, rollback"))
    return parser


def _config_errors(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(f"edge-daemon: {problem}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_check_config(path: Path, as_json: bool, credentials_dir: Path | None = None) -> int:
    from edge.preflight import checked_config

    try:
        config = checked_config(path, credentials_dir)
    except ConfigError as exc:
        return _config_errors(exc)
    data = effective_config(config)
    print(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False), end="")
    return EXIT_OK


def cmd_run(path: Path) -> int:
    from edge.service.lifecycle import build_daemon, install_signal_handlers
    from edge.service.logs import setup_logging

    stop = threading.Event()
    install_signal_handlers(stop)  # first: a SIGTERM during start-up must still be a clean stop
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_errors(exc)
    setup_logging(config.service.log_level)
    try:
        daemon = build_daemon(config, stop)
    except ConfigError as exc:
        return _config_errors(exc)
    except ModelError as exc:
        print(f"edge-daemon: model refused: {exc}", file=sys.stderr)
        return EXIT_MODEL
    return daemon.run()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return cmd_check_config(args.config, args.json, args.credentials_dir)
        if args.command == "init":
            from edge.init_config import run_init

            return run_init(args)
        if args.command == "run":
            return cmd_run(args.config)
        if args.command == "demo":
            from edge.demo import run_demo

            return run_demo(args.broker, args.seconds, args.runtime)
        if args.command == "model":
            from edge.modelstore.cli import run as run_model

            return run_model(args)
    except ConfigError as exc:
        return _config_errors(exc)
    except ModelError as exc:
        print(f"edge-daemon: model refused: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except EdgeError as exc:
        print(f"edge-daemon: error: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        return EXIT_OK
    raise AssertionError(args.command)
