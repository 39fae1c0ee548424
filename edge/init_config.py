"""``edge-daemon init``: write a first configuration for this site, line, device, broker and camera.

Values come from options; on a terminal, anything not given is asked for (``--yes`` never
asks). The result is validated with the same schema ``run`` uses before it is written, so
init never leaves a file the daemon would refuse, and it never overwrites a config unless
``--force`` is given.

Secrets are never written into the YAML. With ``--credentials-dir`` (what install.sh passes:
the folder the unit's ``LoadCredential=`` lines read) the password and client key are copied
there as ``mqtt-password`` and ``mqtt-client-key`` (mode 0600) and the config names those
credentials; the CA and client certificates are copied beside the config. Without it the
config points at the given files as they are.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.config import parse_config
from edge.config.schema import NAME_PATTERN
from edge.errors import ConfigError

DEFAULT_OUTPUT = Path("/etc/conveyor-watch/config.yaml")
PASSWORD_CREDENTIAL = "mqtt-password"
KEY_CREDENTIAL = "mqtt-client-key"
CAMERA_KINDS = ("picamera2", "opencv", "images", "synthetic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``init`` subcommand's options (install.sh forwards its site options to these)."""
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"config file to write (default {DEFAULT_OUTPUT})")
    parser.add_argument("--force", action="store_true", help="replace an existing config file")
    parser.add_argument("--yes", action="store_true", help="never ask: use the options and defaults (unattended installs)")
    parser.add_argument("--site", help="plant or site name (topic level)")
    parser.add_argument("--line", help="production line name (topic level)")
    parser.add_argument("--device", help="this device's name (default: the host name)")
    parser.add_argument("--broker", metavar="HOST[:PORT]", help="MQTT broker (port default 1883, or 8883 with TLS)")
    parser.add_argument("--protocol", choices=("3.1.1", "5"), help="MQTT protocol version (default 3.1.1)")
    parser.add_argument("--username", help="MQTT user name")
    parser.add_argument("--password-file", type=Path, help="file holding the MQTT password (one line)")
    parser.add_argument("--tls", action="store_true", help="TLS with the system's CA certificates")
    parser.add_argument("--ca-file", type=Path, help="CA certificate(s) for the broker (implies TLS)")
    parser.add_argument("--cert-file", type=Path, help="client certificate (with --key-file)")
    parser.add_argument("--key-file", type=Path, help="client private key (with --cert-file)")
    parser.add_argument("--credentials-dir", type=Path, help="copy the password and client key here as systemd credentials")
    parser.add_argument("--camera", metavar="KIND[:WHERE]",
                        help="picamera2[:N], opencv:/dev/videoN|rtsp://...|FILE, images:FOLDER or synthetic (default picamera2)")
    parser.add_argument("--size", metavar="WxH", help="frame size for picamera2/opencv (default 320x240)")
    parser.add_argument("--fps", type=float, help="frames per second (default 15)")


@dataclass(frozen=True)
class Answers:
    """Everything init needs, after options and questions."""

    site: str
    line: str
    device: str
    broker: str
    camera: str
    protocol: str | None = None
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    size: str | None = None
    fps: float | None = None


def default_device_name() -> str:
    """The host name, cut to what a topic level allows."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64].strip("-")
    return name or "edge-01"


def gather(args: argparse.Namespace, ask: Callable[[str, str | None], str] | None) -> Answers:
    """Combine options with answers; ``ask`` is None when nobody can be asked (then required options must be given)."""
    missing = []

    def value(option: str, prompt: str, default: str | None) -> str:
        given = getattr(args, option)
        if given is not None:
            return str(given)
        if ask is not None:
            return ask(prompt, default)
        if default is None:
            missing.append("--" + option.replace("_", "-"))
            return ""
        return default

    site = value("site", "Site (plant) name", None)
    line = value("line", "Production line", None)
    device = value("device", "This device's name", default_device_name())
    broker = value("broker", "MQTT broker host[:port]", None)
    camera = value("camera", "Camera (picamera2, opencv:/dev/video0, images:FOLDER, synthetic)", "picamera2")
    if missing:
        raise ConfigError([f"init: {', '.join(missing)} required (or run it on a terminal without --yes to be asked)"])
    username, password_file = args.username, args.password_file
    if ask is not None and username is None:
        username = ask("MQTT user name (empty: none)", "") or None
        if username and password_file is None:
            answer = ask("File holding the MQTT password (empty: none)", "")
            password_file = Path(answer) if answer else None
    return Answers(site=site, line=line, device=device, broker=broker, camera=camera, protocol=args.protocol,
                   username=username, password_file=password_file, tls=args.tls, ca_file=args.ca_file,
                   cert_file=args.cert_file, key_file=args.key_file, size=args.size, fps=args.fps)


def _broker(text: str, tls: bool) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPV6] or [IPV6]:PORT; a bare IPv6 address takes the default port."""
    text = text.strip()
    port: str | None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (None if rest else "")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or port is None:
        raise ConfigError([f"init: --broker {text!r}: expected HOST, HOST:PORT or [IPV6]:PORT"])
    if not port:
        return host, 8883 if tls else 1883
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError([f"init: --broker {text!r}: port must be 1-65535"])
    return host, int(port)


def _size(text: str | None) -> list[int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ConfigError([f"init: --size {text!r}: expected WIDTHxHEIGHT, e.g. 320x240"])
    return [int(match.group(1)), int(match.group(2))]


def camera_section(spec: str, size: str | None, fps: float | None) -> dict[str, Any]:
    """The ``source`` section for ``--camera KIND[:WHERE]``."""
    kind, _, where = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in CAMERA_KINDS:
        raise ConfigError([f"init: --camera {spec!r}: expected one of {', '.join(CAMERA_KINDS)} (e.g. opencv:/dev/video0)"])
    section: dict[str, Any] = {"type": kind}
    dims = _size(size)
    if kind == "picamera2":
        if where:
            if not where.isdigit():
                raise ConfigError([f"init: --camera {spec!r}: picamera2 takes a camera number, e.g. picamera2:1"])
            section["camera"] = int(where)
        section["size"] = dims or [320, 240]
    elif kind == "opencv":
        if not where:
            raise ConfigError([f"init: --camera {spec!r}: say which camera, e.g. opencv:/dev/video0 or opencv:rtsp://host/stream"])
        section["uri"] = int(where) if where.isdigit() else where
        if dims:
            section["width"], section["height"] = dims
    elif kind == "images":
        if not where:
            raise ConfigError([f"init: --camera {spec!r}: say which folder, e.g. images:/srv/frames"])
        section["folder"] = str(Path(where).resolve())
    elif dims:
        section["width"], section["height"] = dims
    if fps is not None:
        section["fps"] = fps
    return section


def build_config(answers: Answers, password_ref: tuple[str, str] | None, tls_refs: dict[str, str] | None) -> dict[str, Any]:
    """The config data for these answers; ``password_ref``/``tls_refs`` say where secrets and certificates live."""
    host, port = _broker(answers.broker, tls_refs is not None)
    mqtt: dict[str, Any] = {"host": host, "port": port}
    if answers.protocol is not None:
        mqtt["protocol"] = answers.protocol
    if answers.username is not None:
        mqtt["username"] = answers.username
    if password_ref is not None:
        mqtt[password_ref[0]] = password_ref[1]
    if tls_refs is not None:
        mqtt["tls"] = tls_refs
    return {
        "device": {"site": answers.site, "line": answers.line, "name": answers.device},
        "source": camera_section(answers.camera, answers.size, answers.fps),
        "mqtt": mqtt,
    }


def _copy(source: Path, target: Path, mode: int, what: str) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError([f"init: {what} {str(source)!r}: {exc.strerror or exc}"]) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def place_files(answers: Answers, output: Path, credentials_dir: Path | None) -> tuple[tuple[str, str] | None, dict[str, str] | None]:
    """Copy secrets and certificates where the service will read them; return how the config refers to them."""
    if answers.password_file is not None and answers.username is None:
        raise ConfigError(["init: --password-file needs --username"])
    if (answers.cert_file is None) != (answers.key_file is None):
        raise ConfigError(["init: --cert-file and --key-file go together"])
    for option, path in (("--password-file", answers.password_file), ("--ca-file", answers.ca_file),
                         ("--cert-file", answers.cert_file), ("--key-file", answers.key_file)):
        if path is not None and not path.is_file():
            raise ConfigError([f"init: {option} {str(path)!r}: file does not exist"])
    if credentials_dir is not None:
        credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    password_ref = None
    if answers.password_file is not None:
        if credentials_dir is not None:
            _copy(answers.password_file, credentials_dir / PASSWORD_CREDENTIAL, 0o600, "--password-file")
            password_ref = ("password_credential", PASSWORD_CREDENTIAL)
        else:
            password_ref = ("password_file", str(answers.password_file.resolve()))
    use_tls = answers.tls or answers.ca_file is not None or answers.cert_file is not None
    if not use_tls:
        return password_ref, None
    tls: dict[str, str] = {}
    here = output.resolve().parent
    if answers.ca_file is not None:
        tls["ca_file"] = str(answers.ca_file.resolve())
        if credentials_dir is not None:
            _copy(answers.ca_file, here / "ca.crt", 0o644, "--ca-file")
            tls["ca_file"] = str(here / "ca.crt")
    if answers.cert_file is not None and answers.key_file is not None:
        tls["cert_file"] = str(answers.cert_file.resolve())
        tls["key_file"] = str(answers.key_file.resolve())
        if credentials_dir is not None:
            _copy(answers.cert_file, here / "client.crt", 0o644, "--cert-file")
            _copy(answers.key_file, credentials_dir / KEY_CREDENTIAL, 0o600, "--key-file")
            tls["cert_file"] = str(here / "client.crt")
            del tls["key_file"]
            tls["key_credential"] = KEY_CREDENTIAL
    return password_ref, tls


def render(data: dict[str, Any], answers: Answers) -> str:
    """The YAML text, with a header saying where it came from and how to check it."""
    today = datetime.date.today().isoformat()
    header = (
        f"# conveyor-watch: {answers.site} / {answers.line} / {answers.device}, written by `edge-daemon init` on {today}.\n"
        "# Only what differs from the defaults is here; every key and its default is in the annotated\n"
        "# example (edge/examples/config.yaml in the package). After editing, check it and restart:\n"
        "#   edge-daemon check-config /etc/conveyor-watch/config.yaml --credentials-dir /etc/conveyor-watch/credentials\n"
        "#   systemctl restart conveyor-watch\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _terminal_ask(prompt: str, default: str | None) -> str:
    while True:
        shown = f" [{default}]" if default else ""
        try:
            answer = input(f"{prompt}{shown}: ").strip()
        except EOFError:
            raise ConfigError(["init: no answer (end of input)"]) from None
        if answer or default is not None:
            return answer or (default or "")
        print("  (required)", file=sys.stderr)


def run_init(args: argparse.Namespace, ask: Callable[[str, str | None], str] | None = None) -> int:
    """Write the config; :class:`ConfigError` (exit 2) for anything missing or invalid."""
    output: Path = args.output
    if output.exists() and not args.force:
        raise ConfigError([f"init: {output} already exists; edit it, or pass --force to replace it"])
    if ask is None and not args.yes and sys.stdin.isatty():
        ask = _terminal_ask
    answers = gather(args, ask)
    for option, name in (("--site", answers.site), ("--line", answers.line), ("--device", answers.device)):
        if not re.fullmatch(NAME_PATTERN, name):
            raise ConfigError([f"init: {option} {name!r}: expected a name of 1-64 letters, digits, '_' or '-'"])
    data = build_config(answers, None, {} if (answers.tls or answers.ca_file or answers.cert_file) else None)
    parse_config(data, str(output), check_files=False)  # every schema problem before any file is touched
    password_ref, tls_refs = place_files(answers, output, args.credentials_dir)
    data = build_config(answers, password_ref, tls_refs)
    parse_config(data, str(output), check_files=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        os.fchmod(descriptor, 0o640)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(render(data, answers))
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    print(f"edge-daemon: wrote {output}")
    return 0

