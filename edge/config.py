"""The daemon's configuration: one YAML file, validated once into frozen, typed objects.

``load_config`` reads the file with ``yaml.safe_load``, validates every field (unknown keys,
types, ranges, cross-field rules), then checks the files it names, and raises
:class:`ConfigError` listing *every* problem as ``file: key.path: what is expected``.
Secrets are never in the YAML: only paths to them (or systemd credential names).
"""

from __future__ import annotations

import math
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ConfigError

BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "conveyor_int8.tflite"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_CONFIG_BYTES = 1 << 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(gt=0.0, le=86400.0)]


class Device(Strict):
    site: Name = "site"
    line: Name = "line"
    name: Name = Field(default="edge-01", description="device id; also the default MQTT client id")


class Model(Strict):
    path: str = Field(default=str(BUNDLED_MODEL), description=".tflite file; its .card.json must be beside it")
    runtime: Literal["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"] = "auto"
    num_threads: Annotated[int, Field(ge=1, le=64)] = 1


class Drop(Strict):
    start_s: Annotated[float, Field(ge=0.0, le=86400.0)]
    duration_s: Seconds


class SyntheticSource(Strict):
    type: Literal["synthetic"]
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 15.0
    seed: Annotated[int, Field(ge=0, le=2**31)] = 3
    width: Annotated[int, Field(ge=32, le=4096)] = 320
    height: Annotated[int, Field(ge=32, le=4096)] = 240
    speed: Annotated[float, Field(gt=0.0, le=10000.0)] = 160.0
    drops: list[Drop] = Field(default_factory=lambda: [Drop(start_s=4.0, duration_s=4.0)])
    duration_s: Seconds | None = Field(default=None, description="stop after this much stream time; none = forever")
    realtime: bool = Field(default=True, description="pace frames at fps; false stamps frames with stream time")


class ImagesSource(Strict):
    type: Literal["images"]
    folder: str
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 5.0
    loop: bool = True
    realtime: bool = True


class OpenCVSource(Strict):
    type: Literal["opencv"]
    uri: str | Annotated[int, Field(ge=0, le=63)] = Field(description="V4L2 index, /dev/videoN, rtsp://, http:// or a video file")
    width: Annotated[int, Field(ge=32, le=4096)] | None = None
    height: Annotated[int, Field(ge=32, le=4096)] | None = None
    fps: Annotated[float, Field(gt=0.0, le=240.0)] | None = None
    loop: bool = False
    read_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0


class Picamera2Source(Strict):
    type: Literal["picamera2"]
    camera: Annotated[int, Field(ge=0, le=8)] = 0
    size: Annotated[list[Annotated[int, Field(ge=16, le=4608)]], Field(min_length=2, max_length=2)] = Field(default_factory=lambda: [320, 240])
    fps: Annotated[float, Field(gt=0.0, le=120.0)] = 15.0
    exposure_us: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    analogue_gain: Annotated[float, Field(ge=1.0, le=64.0)] | None = None
    awb_gains: Annotated[list[Annotated[float, Field(gt=0.0, le=32.0)]], Field(min_length=2, max_length=2)] | None = None
    capture_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 2.0


Source = Annotated[Union[SyntheticSource, ImagesSource, OpenCVSource, Picamera2Source], Field(discriminator="type")]  # noqa: UP007


class Roi(Strict):
    name: Name
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4, description="x, y, width, height as fractions")]

    @model_validator(mode="after")
    def _inside(self) -> Roi:
        x, y, w, h = self.box
        if w <= 0 or h <= 0 or x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9:
            raise ValueError(f"box {self.box} must have width, height > 0 and lie inside the frame (x+width <= 1, y+height <= 1)")
        return self


class Band(Strict):
    enter: Annotated[float, Field(gt=0.0, lt=1.0)]
    exit: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _hysteresis(self) -> Band:
        if self.exit >= self.enter:
            raise ValueError(f"exit ({self.exit}) must be below enter ({self.enter}) for hysteresis")
        return self


class Levels(Strict):
    window_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.6
    dwell_s: Annotated[float, Field(ge=0.0, le=600.0)] = 0.4
    min_frames: Annotated[int, Field(ge=2, le=1000, description="frames a new level must hold, on top of dwell_s")] = 3
    warning: Band = Band(enter=0.35, exit=0.25)
    alert: Band = Band(enter=0.6, exit=0.4)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if not (self.warning.enter < self.alert.enter and self.warning.exit < self.alert.exit):
            raise ValueError("warning thresholds must be below alert thresholds (warning.enter < alert.enter, warning.exit < alert.exit)")
        return self


class Tls(Strict):
    ca_file: str | None = Field(default=None, description="CA bundle; none = the system's")
    cert_file: str | None = None
    key_file: str | None = Field(default=None, description="client key path (a secret: keep it 0600)")
    key_credential: Name | None = Field(default=None, description="systemd credential holding the client key")
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _pairs(self) -> Tls:
        has_key = self.key_file is not None or self.key_credential is not None
        if (self.cert_file is None) != (not has_key):
            raise ValueError("cert_file and key_file (or key_credential) go together")
        if self.key_file is not None and self.key_credential is not None:
            raise ValueError("give key_file or key_credential, not both")
        return self


class Mqtt(Strict):
    host: Annotated[str, Field(min_length=1, max_length=253)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    password_file: str | None = None
    password_credential: Name | None = None
    tls: Tls | None = None
    topic_prefix: Annotated[str, Field(min_length=1, max_length=200)] = "plant/{site}/{line}/{device}"
    reconnect_min_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0.0, le=600.0)] = 30.0
    auth_retry_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 60.0
    commands: bool = Field(default=False, description="subscribe to <prefix>/command (off by default)")

    @model_validator(mode="after")
    def _consistent(self) -> Mqtt:
        if self.password_file is not None and self.password_credential is not None:
            raise ValueError("give password_file or password_credential, not both")
        if (self.password_file is not None or self.password_credential is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        if any(c in self.topic_prefix for c in "+#\0") or self.topic_prefix.startswith("/") or "//" in self.topic_prefix:
            raise ValueError(f"topic_prefix {self.topic_prefix!r} must not contain + # or empty levels")
        try:
            self.topic_prefix.format(site="s", line="l", device="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"topic_prefix {self.topic_prefix!r} may only use {{site}}, {{line}}, {{device}}") from exc
        return self


class Telemetry(Strict):
    interval_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 10.0


class Outbox(Strict):
    path: str | None = Field(default=None, description="SQLite file; default <state_dir>/outbox.sqlite")
    max_messages: Annotated[int, Field(ge=10, le=10_000_000)] = 50_000


class Health(Strict):
    frozen_after_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 10.0
    dark_level: Annotated[float, Field(ge=0.0, le=255.0)] = 12.0
    blur_level: Annotated[float, Field(ge=0.0, le=10000.0)] = 2.0
    degraded_after_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 5.0
    reopen_min_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.5
    reopen_max_s: Annotated[float, Field(gt=0.0, le=600.0)] = 30.0


class Service(Strict):
    state_dir: str | None = Field(default=None, description="default: $STATE_DIRECTORY, else ./state")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class EdgeConfig(Strict):
    """The whole file. Every section is optional; defaults run the synthetic demo camera."""

    device: Device = Device()
    model: Model = Model()
    source: Source = SyntheticSource(type="synthetic")
    rois: Annotated[list[Roi], Field(min_length=1, max_length=16)] = Field(
        default_factory=lambda: [Roi(name="belt", box=[0.0, 0.0, 1.0, 1.0])]
    )
    levels: Levels = Levels()
    mqtt: Mqtt = Mqtt()
    telemetry: Telemetry = Telemetry()
    outbox: Outbox = Outbox()
    health: Health = Health()
    service: Service = Service()

    @model_validator(mode="after")
    def _unique_rois(self) -> EdgeConfig:
        names = [r.name for r in self.rois]
        if len(set(names)) != len(names):
            raise ValueError(f"rois: names must be unique, got {names}")
        return self

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix.format(site=self.device.site, line=self.device.line, device=self.device.name)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"conveyor-{self.device.name}"

    def state_dir(self) -> Path:
        return Path(self.service.state_dir or os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "state")

    def outbox_path(self) -> Path:
        return Path(self.outbox.path) if self.outbox.path else self.state_dir() / "outbox.sqlite"


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


# --- error reporting -------------------------------------------------------------------------

_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated/Optional layers; return the bare type and the constraints met on the way."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(getattr(item, "metadata", None) or [item])
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation, metadata


def _field_at(loc: tuple[Any, ...]) -> tuple[Any, list[Any]] | None:
    annotation: Any = EdgeConfig
    metadata: list[Any] = []
    for part in loc:
        annotation, metadata = _unwrap(annotation)
        if isinstance(part, int) and typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            info = annotation.model_fields[part]
            annotation = info.annotation
            metadata = list(info.metadata)
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            candidates = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            match = [a for a in candidates if part in a.model_fields or part == typing.get_args(a.model_fields["type"].annotation)[0]]
            if match:
                annotation = match[0]
                if part in match[0].model_fields:
                    info = match[0].model_fields[part]
                    annotation, metadata = info.annotation, list(info.metadata)
                continue
        return None
    bare, inner = _unwrap(annotation)
    return bare, metadata + inner


def _expected(loc: tuple[Any, ...]) -> str | None:
    found = _field_at(loc)
    if found is None:
        return None
    bare, metadata = found
    if typing.get_origin(bare) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(bare))
    kind = _KIND.get(bare)
    if kind is None:
        if typing.get_origin(bare) is list:
            lo_len = next((m.min_length for m in metadata if getattr(m, "min_length", None)), None)
            hi_len = next((m.max_length for m in metadata if getattr(m, "max_length", None)), None)
            if lo_len is not None and lo_len == hi_len:
                return f"a list of {lo_len} values"
            if lo_len is not None and hi_len is not None:
                return f"a list of {lo_len}-{hi_len} items"
            return "a list"
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            return "a mapping of keys"
        return None
    lo = next((getattr(m, a) for m in metadata for a in ("ge", "gt") if getattr(m, a, None) is not None), None)
    hi = next((getattr(m, a) for m in metadata for a in ("le", "lt") if getattr(m, a, None) is not None), None)
    strict_lo = any(getattr(m, "gt", None) is not None for m in metadata)
    strict_hi = any(getattr(m, "lt", None) is not None for m in metadata)
    pattern = next((getattr(m, "pattern", None) for m in metadata if getattr(m, "pattern", None)), None)
    if pattern == NAME_PATTERN:
        return "a name of 1-64 letters, digits, '_' or '-'"
    if pattern:
        return f"a string matching {pattern}"
    if lo is not None and hi is not None:
        if bare is int and not strict_lo and not strict_hi:
            return f"{kind} {lo}-{hi}"
        return f"{kind} {'>' if strict_lo else '>='} {lo} and {'<' if strict_hi else '<='} {hi}"
    if lo is not None:
        return f"{kind} {'>' if strict_lo else '>='} {lo}"
    return kind


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _format_error(error: Any) -> str:
    loc = tuple(part for part in error["loc"] if part not in ("synthetic", "images", "opencv", "picamera2") or error["loc"][0] != "source")
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[") or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _field_at(loc[:-1])
        allowed = ""
        if parent and isinstance(parent[0], type) and issubclass(parent[0], BaseModel):
            allowed = " (expected one of: " + ", ".join(parent[0].model_fields) + ")"
        return f"{path}: unknown key{allowed}"
    if kind == "missing":
        return f"{path}: required"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        given = error.get("input")
        tag = given.get("type") if isinstance(given, dict) else given
        return f"{path}: expected type one of 'synthetic', 'images', 'opencv', 'picamera2', got {_show(tag)}"
    if kind == "value_error":
        return f"{path}: {error['msg'].removeprefix('Value error, ')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a mapping of keys, got {_show(error['input'])}"
    expected = _expected(loc)
    if expected:
        return f"{path}: expected {expected}, got {_show(error['input'])}"
    return f"{path}: {error['msg']}, got {_show(error['input'])}"


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
    if isinstance(config.source, ImagesSource):
        readable("source.folder", config.source.folder, want_dir=True)
    readable("mqtt.password_file", config.mqtt.password_file)
    if config.mqtt.tls is not None:
        readable("mqtt.tls.ca_file", config.mqtt.tls.ca_file)
        readable("mqtt.tls.cert_file", config.mqtt.tls.cert_file)
        readable("mqtt.tls.key_file", config.mqtt.tls.key_file)
    for key, name in (("mqtt.password_credential", config.mqtt.password_credential),
                      ("mqtt.tls.key_credential", config.mqtt.tls.key_credential if config.mqtt.tls else None)):
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
        raise ConfigError([f"{source_name}: {_format_error(e)}" for e in exc.errors()]) from None
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
    """The validated config as plain data, for ``check-config``; holds paths, never secret values."""
    return config.model_dump(mode="json")
