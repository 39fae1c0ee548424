"""``edge-daemon``: the conveyor watcher's command line.

Commands:
  run --config FILE     run the service (what systemd starts)
  init                  write a first config for this site, line, device, broker and camera
  check-config FILE     validate a config (and, with --credentials-dir, its credentials) and print it
  demo                  the whole product on this machine: broker, daemon, simulated camera, subscriber, console
  capture --config FILE capture frames for this line's dataset (or --export the labelled ones for training)
  console-user FILE NAME  add or change a console user (the password is read from the terminal or stdin)
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
    p.add_argument("--seconds", type=float, default=None,
                   help="stream time to run (default: until Ctrl-C in a terminal, else 120); a drop in flow every 8-16 s")
    p.add_argument("--runtime", default="auto", help="TFLite runtime (default auto)")
    p.add_argument("--no-console", action="store_true", help="do not serve the console")
    p = sub.add_parser("capture", help="capture frames for a dataset, or export the labelled captures",
                       description="Run the daemon in capture mode (stop the service first: they share the camera), "
                                   "or with --export write the labelled captures as a training_set/ test_set/ archive.")
    p.add_argument("--config", type=Path, required=True, help="YAML config file (capture.* settings, state directory)")
    p.add_argument("--seconds", type=float, default=None, help="capture for this long (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--every", type=float, default=None, help="a frame every this many seconds (default capture.every_s)")
    p.add_argument("--export", type=Path, metavar="OUT.tar.gz", help="export instead of capturing")
    p.add_argument("--include-unconfirmed", action="store_true", help="with --export: use the model's label where no one set one")
    p.add_argument("--test-fraction", type=float, default=0.2, help="with --export: share of each class for test_set (default 0.2)")
    p = sub.add_parser("console-user", help="add or change a console user in a users file")
    p.add_argument("file", type=Path, help="the users file (console.users_file); created if missing, mode 0600")
    p.add_argument("name", help="user name (letters, digits, '_' or '-')")
    p.add_argument("--role", choices=["admin", "viewer"], default="viewer", help="admin may edit lanes, capture and label")
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


def cmd_run(path: Path, capture_seconds: float | None = None, capture_every: float | None = None, capture: bool = False) -> int:
    from edge.service.lifecycle import build_daemon, capture_dir, install_signal_handlers
    from edge.service.logs import setup_logging

    stop = threading.Event()
    install_signal_handlers(stop)  # first: a SIGTERM during start-up must still be a clean stop
    try:
        config = load_config(path)
    except ConfigError as exc:
        return _config_errors(exc)
    if capture:
        update: dict[str, object] = {"enabled": True} | ({"every_s": capture_every} if capture_every is not None else {})
        config = config.model_copy(update={"capture": config.capture.model_copy(update=update)})
    setup_logging(config.service.log_level)
    try:
        daemon = build_daemon(config, stop, config_path=path)
    except ConfigError as exc:
        return _config_errors(exc)
    except ModelError as exc:
        print(f"edge-daemon: model refused: {exc}", file=sys.stderr)
        return EXIT_MODEL
    if not capture:
        return daemon.run()
    if capture_seconds is not None:
        timer = threading.Timer(capture_seconds, stop.set)
        timer.daemon = True
        timer.start()
    folder = capture_dir(config)
    print(f"capturing to {folder}: a frame every {config.capture.every_s:g} s plus uncertain and unknown scenes; Ctrl-C to stop",
          flush=True)
    code = daemon.run()
    keeper = daemon.parts.evidence
    taken = getattr(getattr(keeper, "capture", None), "taken", 0)
    print(f"captured {taken} frame(s) in {folder}; label them in the console (Dataset) and export with "
          f"edge-daemon capture --config {path} --export dataset.tar.gz", flush=True)
    return code


def cmd_export(path: Path, out: Path, include_unconfirmed: bool, test_fraction: float) -> int:
    from edge.evidence import Dataset, DatasetExportError, Records
    from edge.service.lifecycle import capture_dir

    try:
        config = load_config(path, check_files=False)
    except ConfigError as exc:
        return _config_errors(exc)
    if not 0.0 < test_fraction < 1.0:
        print(f"edge-daemon: --test-fraction: expected a number between 0 and 1, got {test_fraction}", file=sys.stderr)
        return EXIT_CONFIG
    records = Records(capture_dir(config), int(config.capture.max_mb * 1e6))
    records.scan()
    try:
        summary = Dataset(records).export_file(out, test_fraction, include_unconfirmed)
    except DatasetExportError as exc:
        print(f"edge-daemon: cannot export: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"edge-daemon: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    split = "; ".join(f"{name}: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())) for name, counts in summary.counts.items())
    print(f"wrote {out}: {split}; {summary.confirmed} labelled by hand, {summary.pseudo} by the model, "
          f"{summary.unknown} unknown scene(s) in unknown/ for the scene head. "
          f"Train: tar xzf {out} -C data && conveyor-convert train --data data --out model")
    return EXIT_OK


def cmd_console_user(file: Path, name: str, role: str) -> int:
    import getpass
    import os
    import re

    from edge.config.schema import NAME_PATTERN
    from edge.console.auth import Role, parse_users, set_user

    if not re.match(NAME_PATTERN, name):
        print(f"edge-daemon: user name {name!r}: expected 1-64 letters, digits, '_' or '-'", file=sys.stderr)
        return EXIT_CONFIG
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != password:
            print("edge-daemon: the passwords differ", file=sys.stderr)
            return EXIT_CONFIG
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("edge-daemon: the password must have at least 8 characters", file=sys.stderr)
        return EXIT_CONFIG
    try:
        text = file.read_text(encoding="utf-8") if file.exists() else ""
        new = set_user(text, name, Role(role), password)
        parse_users(new, str(file))
        fd = os.open(file.with_name(file.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new)
        os.replace(file.with_name(file.name + ".tmp"), file)
    except ConfigError as exc:
        return _config_errors(exc)
    except OSError as exc:
        print(f"edge-daemon: {file}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{file}: {name} ({role}) saved; restart the daemon to apply")
    return EXIT_OK


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

            return run_demo(args.broker, args.seconds, args.runtime, console=not args.no_console)
        if args.command == "capture":
            if args.export is not None:
                return cmd_export(args.config, args.export, args.include_unconfirmed, args.test_fraction)
            if (args.seconds is not None and args.seconds <= 0) or (args.every is not None and not 1.0 <= args.every <= 86400.0):
                print("edge-daemon: --seconds must be > 0 and --every between 1 and 86400", file=sys.stderr)
                return EXIT_CONFIG
            return cmd_run(args.config, args.seconds, args.every, capture=True)
        if args.command == "console-user":
            return cmd_console_user(args.file, args.name, args.role)
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
