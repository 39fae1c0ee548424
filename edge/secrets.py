"""Secrets (MQTT password, TLS client key) are read from files or systemd credentials at start-up.

They are never in the YAML, never in ``repr``, logs, telemetry or ``check-config`` output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import EdgeConfig
from edge.errors import ConfigError


@dataclass(frozen=True)
class Secrets:
    """What the MQTT connection needs that must not be shown."""

    password: str | None = field(default=None, repr=False)
    tls_key_path: Path | None = None

    def __repr__(self) -> str:
        return f"Secrets(password={'***' if self.password else None}, tls_key_path={self.tls_key_path})"


def _credential(name: str, key: str) -> Path:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError([f"{key}: credential {name!r} needs systemd LoadCredential= ($CREDENTIALS_DIRECTORY is not set)"])
    return Path(directory) / name


def _read_secret(path: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
        raise ConfigError([f"{key}: cannot read secret file {str(path)!r} ({reason})"]) from None
    value = text.rstrip("\r\n")
    if not value or "\n" in value:
        raise ConfigError([f"{key}: secret file {str(path)!r} must hold exactly one non-empty line"])
    return value


def load_secrets(config: EdgeConfig) -> Secrets:
    """Read the password and locate the TLS key; :class:`ConfigError` naming the key if unreadable."""
    mqtt = config.mqtt
    password = None
    if mqtt.password_file is not None:
        password = _read_secret(Path(mqtt.password_file), "mqtt.password_file")
    elif mqtt.password_credential is not None:
        password = _read_secret(_credential(mqtt.password_credential, "mqtt.password_credential"), "mqtt.password_credential")
    key_path = None
    if mqtt.tls is not None:
        if mqtt.tls.key_file is not None:
            key_path = Path(mqtt.tls.key_file)
        elif mqtt.tls.key_credential is not None:
            key_path = _credential(mqtt.tls.key_credential, "mqtt.tls.key_credential")
        if key_path is not None and not os.access(key_path, os.R_OK):
            raise ConfigError([f"mqtt.tls: cannot read the client key {str(key_path)!r}"])
    return Secrets(password, key_path)
