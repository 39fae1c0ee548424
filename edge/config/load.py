"""Reading the config file: YAML (safe loader, duplicate keys refused), validation into
:class:`EdgeConfig`, and checks of the files it names. Every problem is reported at once as
``file: key.path: what is expected`` in a :class:`ConfigError`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.config.schema import EdgeConfig, ImagesSource
from edge.config.wording import format_error
from edge.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (same safe constructors, no Python tags) that also rejects
    duplicate keys, which plain safe_load silently resolves to the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str) -> Any:
    """Parse YAML with the safe loader (plus the duplicate-key check)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)




def _check_files(config: EdgeConfig) -> list[str]:
    """Problems with the files the config names (they must exist and be readable at start-up)."""
    problems = []

    def readable(key: str, value: str | None, want_dir: bool = False) -> None:
        if value is None:
            return
        path = Path(value)
        if want_dir:
            if not path.is_dir():
                problems.append(f"{key}: folder {value!r} does not exist")
        elif not path.is_file():
            problems.append(f"{key}: file {value!r} does not exist")
        elif not os.access(path, os.R_OK):
            problems.append(f"{key}: file {value!r} is not readable")

    readable("model.path", config.model.path)
    if Path(config.model.path).is_file():
        readable("model.path", str(Path(config.model.path).with_suffix(".card.json")))
    for i, key_file in enumerate(config.model.trusted_keys):
        key = f"model.trusted_keys[{i}]"
        readable(key, key_file)
        if Path(key_file).is_file() and os.access(key_file, os.R_OK):
            from edge.errors import ModelError
            from edge.modelstore.keys import load_public_key

            try:
                load_public_key(Path(key_file))
            except ModelError as exc:
                problems.append(f"{key}: {exc}")
    if isinstance(config.source, ImagesSource):
        readable("source.folder", config.source.folder, want_dir=True)
    readable("mqtt.password_file", config.mqtt.password_file)
    if config.console.enabled:
        readable("console.users_file", config.console.users_file)
    if config.mqtt.tls is not None:
        readable("mqtt.tls.ca_file", config.mqtt.tls.ca_file)
        readable("mqtt.tls.cert_file", config.mqtt.tls.cert_file)
        readable("mqtt.tls.key_file", config.mqtt.tls.key_file)
    for key, name in (("mqtt.password_credential", config.mqtt.password_credential),
                      ("mqtt.tls.key_credential", config.mqtt.tls.key_credential if config.mqtt.tls else None),
                      ("console.users_credential", config.console.users_credential if config.console.enabled else None)):
        if name is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                problems.append(f"{key}: credential {name!r} needs systemd LoadCredential= ($CREDENTIALS_DIRECTORY is not set)")
            else:
                readable(key, str(Path(directory) / name))
    return problems


def parse_config(data: Any, source_name: str = "config.yaml", check_files: bool = True) -> EdgeConfig:
    """Validate already-parsed YAML data; raise :class:`ConfigError` with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source_name}: expected a mapping of sections at the top level, got {type(data).__name__}"])
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{source_name}: {format_error(e)}" for e in exc.errors()]) from None
    problems = [f"{source_name}: {p}" for p in _check_files(config)] if check_files else []
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: Path, check_files: bool = True) -> EdgeConfig:
    """Read, parse and validate the YAML file at ``path``."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{name}: file is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{name}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{name}: is a folder; expected a YAML file"]) from None
    except PermissionError:
        raise ConfigError([f"{name}: permission denied"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read ({exc.strerror})"]) from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{name}: invalid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{name}: YAML nests too deeply"]) from None
    _reject_non_finite(data, name)
    return parse_config(data, name, check_files)


def _reject_non_finite(data: Any, name: str, path: str = "") -> None:
    # .nan and .inf are valid YAML floats but never valid settings; range checks alone let nan through.
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError([f"{name}: {path or '(top level)'}: expected a finite number, got {data}"])
    if isinstance(data, dict):
        for key, value in data.items():
            _reject_non_finite(value, name, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _reject_non_finite(value, name, f"{path}[{i}]")


def effective_config(config: EdgeConfig) -> dict[str, Any]:
    """The validated config as plain data, for ``check-config``; holds paths, never secret values.

    Level bands left to the model card are shown as the card of ``model.path`` gives them (a model
    from the store, edge-daemon model, brings its own card at run time)."""
    data = config.model_dump(mode="json")
    if config.levels.warning is None:
        from edge.errors import ModelError
        from edge.modelcard import card_path_for, load_card

        try:
            bands = load_card(card_path_for(Path(config.model.path))).levels
        except (ModelError, OSError):
            bands = {}
        if "warning" in bands and "alert" in bands:
            for name in ("warning", "alert"):
                data["levels"][name] = {"enter": float(bands[name][0]), "exit": float(bands[name][1]), "from": "model card"}
    return data
