"""The configuration schema: one frozen, typed model per section of the YAML file.

Pure data: nothing here reads the environment or the file system (start-up does that).
Every field has a default, a range and, where it is not obvious, a description.
"""

from __future__ import annotations

import ipaddress
import typing
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "models" / "conveyor_int8.tflite"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked strictly and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(gt=0.0, le=86400.0)]


class Device(Section):
    site: Name = "site"
    line: Name = "line"
    name: Name = Field(default="edge-01", description="device id; also the default MQTT client id")


class Shadow(Section):
    """A newly installed model (the candidate) judges live frames beside the active one before it may decide (docs/models.md)."""

    every_n_frames: Annotated[int, Field(ge=1, le=10_000)] = Field(default=5, description="compare on every Nth judged frame")
    min_frames: Annotated[int, Field(ge=1, le=10_000_000)] = Field(default=500, description="frames compared before a verdict ...")
    min_duration_s: Annotated[float, Field(ge=0.0, le=30 * 86400.0)] = Field(default=600.0, description="... over at least this long")
    max_duration_s: Annotated[float, Field(gt=0.0, le=30 * 86400.0)] = Field(
        default=86400.0, description="no verdict by then: the shadow run ends incomplete")
    min_agreement: Fraction = Field(default=0.98, description="share of ROI decisions both models must agree on to pass")
    auto_promote: bool = Field(default=False, description="promote a candidate that passed without waiting for a person")

    @model_validator(mode="after")
    def _ordered(self) -> Shadow:
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(f"min_duration_s ({self.min_duration_s}) must not exceed max_duration_s ({self.max_duration_s})")
        return self


class Model(Section):
    path: str = Field(default=str(BUNDLED_MODEL), description=(
        ".tflite file; its .card.json must be beside it. The model store's active model, when there is one, runs instead"))
    runtime: Literal["auto", "ai_edge_litert", "tflite_runtime", "tensorflow"] = "auto"
    num_threads: Annotated[int, Field(ge=1, le=64)] = 1
    form: Literal["auto", "int8", "dynamic"] = Field(
        default="auto", description="auto: time the int8 model and its dynamic-range variant at start-up and run the faster")
    trusted_keys: Annotated[list[str], Field(max_length=16)] = Field(
        default_factory=list, description="public key files (.pub, conveyor-convert keygen): model bundles signed by one of them are accepted")
    allow_unsigned: bool = Field(default=False, description="accept unsigned model bundles: development only, logged loudly")
    shadow: Shadow = Shadow()


class ScriptedDrop(Section):
    """The synthetic belt stops being fed for a while: a gap in flow travels through the view."""

    start_s: Annotated[float, Field(ge=0.0, le=86400.0)]
    duration_s: Seconds
    lanes: Annotated[list[Annotated[int, Field(ge=1, le=8)]], Field(min_length=1, max_length=8)] | None = Field(
        default=None, description="only these lanes (1 = the first across the belt) starve; none = the whole flow")


class SyntheticSource(Section):
    type: Literal["synthetic"]
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 15.0
    seed: Annotated[int, Field(ge=0, le=2**31)] = 3
    width: Annotated[int, Field(ge=32, le=4096)] = 320
    height: Annotated[int, Field(ge=32, le=4096)] = 240
    speed: Annotated[float, Field(gt=0.0, le=10000.0)] = 160.0
    drops: list[ScriptedDrop] = Field(default_factory=lambda: [ScriptedDrop(start_s=4.0, duration_s=4.0)])
    duration_s: Seconds | None = Field(default=None, description="stop after this much stream time; none = forever")
    realtime: bool = Field(default=True, description="pace frames at fps; false stamps frames with stream time")


class ImagesSource(Section):
    type: Literal["images"]
    folder: str
    fps: Annotated[float, Field(gt=0.0, le=240.0)] = 5.0
    loop: bool = True
    realtime: bool = Field(default=True, description="pace frames at fps; false replays as fast as possible, stamping "
                                                     "each frame with the time it was taken at (seq / fps)")


class OpenCVSource(Section):
    type: Literal["opencv"]
    uri: str | Annotated[int, Field(ge=0, le=63)] = Field(description="V4L2 index, /dev/videoN, rtsp://, http:// or a video file")
    width: Annotated[int, Field(ge=32, le=4096)] | None = None
    height: Annotated[int, Field(ge=32, le=4096)] | None = None
    fps: Annotated[float, Field(gt=0.0, le=240.0)] | None = None
    loop: bool = False
    read_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    decode: Literal["opencv", "jpeg"] = Field(
        default="opencv", description="jpeg: take the camera's MJPEG frames undecoded and decode them with libjpeg-turbo (edge.jpeg)")
    decode_min_side: Annotated[int, Field(ge=16, le=4096)] | None = Field(
        default=None, description="with decode: jpeg, decode reduced (1/2, 1/4, 1/8) while the shorter side stays >= this; none = full size")

    @model_validator(mode="after")
    def _decode_options(self) -> OpenCVSource:
        if self.decode_min_side is not None and self.decode != "jpeg":
            raise ValueError("decode_min_side needs decode: jpeg")
        return self


class Picamera2Source(Section):
    type: Literal["picamera2"]
    camera: Annotated[int, Field(ge=0, le=8)] = 0
    size: Annotated[list[Annotated[int, Field(ge=16, le=4608)]], Field(min_length=2, max_length=2)] = Field(default_factory=lambda: [320, 240])
    fps: Annotated[float, Field(gt=0.0, le=120.0)] = 15.0
    exposure_us: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    analogue_gain: Annotated[float, Field(ge=1.0, le=64.0)] | None = None
    awb_gains: Annotated[list[Annotated[float, Field(gt=0.0, le=32.0)]], Field(min_length=2, max_length=2)] | None = None
    capture_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 2.0


SOURCE_MODELS = (SyntheticSource, ImagesSource, OpenCVSource, Picamera2Source)
Source = Annotated[Union[SyntheticSource, ImagesSource, OpenCVSource, Picamera2Source], Field(discriminator="type")]  # noqa: UP007
# The allowed `source.type` values, read off the schema so they are written down once.
SOURCE_TYPES: tuple[str, ...] = tuple(typing.get_args(m.model_fields["type"].annotation)[0] for m in SOURCE_MODELS)


class Roi(Section):
    name: Name
    box: Annotated[list[Fraction], Field(min_length=4, max_length=4, description="x, y, width, height as fractions")]
    flow: Literal["across", "down"] = Field(
        default="across", description="which way product moves through the box: across the picture (either way) or down it; "
                                      "a box with flow down is turned a quarter before the model sees it, since models "
                                      "learn mostly from cameras that see the flow across")

    @model_validator(mode="after")
    def _inside(self) -> Roi:
        x, y, w, h = self.box
        if w <= 0 or h <= 0 or x + w > 1.0 + 1e-9 or y + h > 1.0 + 1e-9:
            raise ValueError(f"box {self.box} must have width, height > 0 and lie inside the frame (x+width <= 1, y+height <= 1)")
        return self


class Band(Section):
    enter: Annotated[float, Field(gt=0.0, lt=1.0)]
    exit: Annotated[float, Field(gt=0.0, lt=1.0)]

    @model_validator(mode="after")
    def _hysteresis(self) -> Band:
        if self.exit >= self.enter:
            raise ValueError(f"exit ({self.exit}) must be below enter ({self.enter}) for hysteresis")
        return self


class Levels(Section):
    window_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.6
    dwell_s: Annotated[float, Field(ge=0.0, le=600.0)] = 0.4
    min_frames: Annotated[int, Field(ge=2, le=1000, description="frames a new level must hold, on top of dwell_s")] = 3
    # None (the default): the bands the model card derives from its threshold (chosen on validation data);
    # a model switched in at run time brings its own. Set both to fix them for every model.
    warning: Band | None = Field(default=None, description="none = from the model card's threshold")
    alert: Band | None = Field(default=None, description="none = from the model card's threshold")

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if (self.warning is None) != (self.alert is None):
            raise ValueError("set both warning and alert bands, or neither (then both come from the model card)")
        if self.warning is not None and self.alert is not None and not (
                self.warning.enter < self.alert.enter and self.warning.exit < self.alert.exit):
            raise ValueError("warning thresholds must be below alert thresholds (warning.enter < alert.enter, warning.exit < alert.exit)")
        return self


class Scene(Section):
    """Does each ROI show a belt with product? A hand, a covered lens, a wall, glare or noise read ``unknown``."""

    enabled: bool = True
    window_s: Annotated[float, Field(gt=0.0, le=60.0)] = Field(
        default=0.6, description="a ROI reads unknown once half the frames of this window were judged not a belt scene")
    belt_colours: bool = Field(
        default=False, description="each ROI learns the colours of its belt and product while the line runs; a view "
                                   "the model takes for a gap that is mostly in other colours (a wall, a cover) reads "
                                   "unknown. Only where the lighting is fixed: after a sudden change of light an empty "
                                   "belt can read unknown until product passes again (docs/detection.md)")
    dark_covers: bool = Field(
        default=False, description="a view mostly dark and plain while the rest of it is lit as usual reads unknown "
                                   "(a dark cloth or coat over most of the lens), once the ROI's belt has shown itself "
                                   "light. Only where the lighting is fixed: a shadow or a failed lamp over most of the "
                                   "view makes a mid-grey empty belt look the same, and a gap then can read unknown "
                                   "for seconds (docs/detection.md)")
    sudden_covers: bool = Field(
        default=True, description="the same, only for a view that goes dark and plain all at once (between two "
                                  "readings of the picture statistics, about half a second apart, as a cloth or a coat "
                                  "thrown over the lens does; a gap brings an empty belt into a shadow only as fast as "
                                  "the belt runs). dark_covers: true covers this too")

    @model_validator(mode="after")
    def _colours_need_the_scene(self) -> Scene:
        for option in ("belt_colours", "dark_covers", "sudden_covers"):  # set, not defaulted: sudden_covers is on by default
            if getattr(self, option) and not self.enabled and option in self.model_fields_set:
                raise ValueError(f"{option} needs enabled: true (it is one of the scene judges)")
        return self


class Belt(Section):
    """Belt motion from the picture: its speed in telemetry and a stopped belt as its own condition."""

    enabled: bool = True
    stopped_below: Annotated[float, Field(gt=0.0, le=10.0)] = Field(
        default=0.03, description="frame widths per second under which the belt counts as stopped")
    stopped_after_s: Annotated[float, Field(ge=0.2, le=600.0)] = 1.5
    status_when_stopped: Literal["alert", "warning", "ok"] = Field(
        default="alert", description="what a stopped belt makes the one-tag status (it starves packaging as a gap does)")


class Tls(Section):
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


class Mqtt(Section):
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
    connect_timeout_s: Annotated[float, Field(gt=0.0, le=120.0)] = Field(
        default=10.0, description="TCP connect + CONNACK must complete within this; else the attempt is abandoned")
    stable_after_s: Annotated[float, Field(ge=0.0, le=3600.0)] = Field(
        default=10.0, description="a connection must stay up this long before the reconnect backoff starts again at the minimum")
    state_expiry_s: Annotated[int, Field(ge=5, le=86400)] | None = Field(
        default=None, description="MQTT 5: message expiry of retained state/health (default 3 x keepalive_s); refreshed while alive")
    max_packet_bytes: Annotated[int, Field(ge=1024, le=268_435_455)] = Field(
        default=65536, description="MQTT 5: Maximum Packet Size sent in CONNECT; the broker drops larger messages for us")

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


class Telemetry(Section):
    interval_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 10.0


class Outbox(Section):
    path: str | None = Field(default=None, description="SQLite file; default <state_dir>/outbox.sqlite")
    max_messages: Annotated[int, Field(ge=10, le=10_000_000)] = Field(
        default=50_000, description="events kept while the broker is unreachable; the oldest go first when full")


class Health(Section):
    frozen_after_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 10.0
    dark_level: Annotated[float, Field(ge=0.0, le=255.0)] = 12.0
    blur_level: Annotated[float, Field(ge=0.0, le=10000.0)] = 2.0
    degraded_after_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 5.0
    reopen_min_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.5
    reopen_max_s: Annotated[float, Field(gt=0.0, le=600.0)] = 30.0


# Sparkplug IDs become MQTT topic levels: no '/', '+' or '#' (Sparkplug 3.0, 4.1).
SparkplugId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class Sparkplug(Section):
    """Sparkplug B 3.0 (Ignition MQTT Engine and other Sparkplug hosts), beside the plain topics."""

    enabled: bool = False
    group_id: SparkplugId | None = Field(default=None, description="Sparkplug group; default: device.site")
    edge_node_id: SparkplugId | None = Field(default=None, description="default: device.name")
    primary_host_id: SparkplugId | None = Field(
        default=None, description="births wait for this host application's STATE; data is held while it is offline")
    client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] | None = Field(
        default=None, description="MQTT client id of the Sparkplug connection; default: <mqtt client id>-spb")
    outbox_path: str | None = Field(default=None, description="SQLite file for held data; default <state_dir>/sparkplug-outbox.sqlite")
    probability_deadband: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.05, description="report a ROI's smoothed probability when it moved at least this much")
    min_interval_s: Annotated[float, Field(ge=0.0, le=3600.0)] = Field(
        default=1.0, description="and at most this often per ROI")


class Service(Section):
    state_dir: str | None = Field(default=None, description="default: $STATE_DIRECTORY (set by systemd), else ./state")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); ``ValueError`` naming what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen {listen!r} must be HOST:PORT, e.g. 127.0.0.1:8080")
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


class Console(Section):
    """The commissioning console: a small web server in the daemon (live view, lanes, events, dataset)."""

    enabled: bool = Field(default=False, description="off in production configs unless wanted; the demo turns it on")
    listen: str = Field(default="127.0.0.1:8080", description="HOST:PORT; anything but loopback needs users_file or users_credential")
    users_file: str | None = Field(
        default=None, description="console users, one 'name:role:scrypt-hash' a line (edge-daemon console-user); roles admin, viewer")
    users_credential: Name | None = Field(default=None, description="systemd credential holding the users file")
    trusted_hosts: Annotated[list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=16)] = Field(
        default_factory=list, description="Host header values accepted besides the listen address (a reverse proxy's public name)")
    live_fps: Annotated[float, Field(gt=0.0, le=15.0)] = Field(default=4.0, description="most frames per second the live view encodes")
    session_hours: Annotated[float, Field(gt=0.0, le=720.0)] = 12.0

    @model_validator(mode="after")
    def _safe_listen(self) -> Console:
        host, _ = split_listen(self.listen)
        if self.users_file is not None and self.users_credential is not None:
            raise ValueError("give users_file or users_credential, not both")
        if self.enabled and not is_loopback(host) and self.users_file is None and self.users_credential is None:
            raise ValueError(f"listen {self.listen!r} is reachable from the network: it needs users_file or users_credential "
                             "(passwords), or listen on 127.0.0.1 behind an authenticating reverse proxy (docs/console.md)")
        return self


class Evidence(Section):
    """Frames kept around every level or health change, as JPEG under the state directory."""

    enabled: bool = True
    path: str | None = Field(default=None, description="folder; default <state_dir>/evidence")
    frames_before: Annotated[int, Field(ge=0, le=10)] = 2
    frames_after: Annotated[int, Field(ge=0, le=10)] = 2
    spacing_s: Annotated[float, Field(ge=0.05, le=10.0)] = Field(default=0.5, description="time between the kept frames")
    max_mb: Annotated[float, Field(ge=1.0, le=100_000.0)] = Field(default=100.0, description="disk budget; the oldest go first")
    max_per_hour: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=60, description="snapshots saved per hour at most (a flapping level must not wear the SD card)")
    jpeg_quality: Annotated[int, Field(ge=30, le=95)] = 85
    mqtt_snapshot: bool = Field(default=False, description="also publish a small JPEG of each change on <prefix>/snapshot/<id>")
    mqtt_width: Annotated[int, Field(ge=64, le=640)] = Field(default=320, description="most width of the JPEG on <prefix>/snapshot/<id>")


class Capture(Section):
    """Capture mode: frames for this line's own dataset, pseudo-labelled by the current model."""

    enabled: bool = Field(default=False, description="start in capture mode (the console and edge-daemon capture switch it)")
    path: str | None = Field(default=None, description="folder; default <state_dir>/captures")
    every_s: Annotated[float, Field(ge=1.0, le=86400.0)] = Field(default=10.0, description="a frame every this many seconds ...")
    uncertain: Annotated[list[Fraction], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.3, 0.7], description="... plus frames whose probability lies in [low, high] ...")
    min_interval_s: Annotated[float, Field(ge=0.1, le=3600.0)] = Field(
        default=1.0, description="... or whose scene is unknown, at most one per this many seconds")
    max_mb: Annotated[float, Field(ge=1.0, le=100_000.0)] = Field(default=500.0, description="disk budget; the oldest go first")
    min_crop_px: Annotated[int, Field(ge=64, le=1024)] = Field(default=128, description="each ROI's crop is stored at least this large")
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = 92

    @model_validator(mode="after")
    def _band(self) -> Capture:
        if self.uncertain[0] > self.uncertain[1]:
            raise ValueError(f"uncertain {self.uncertain} must be [low, high] with low <= high")
        return self


class EdgeConfig(Section):
    """The whole file. Every section is optional; defaults run the synthetic demo camera."""

    device: Device = Device()
    model: Model = Model()
    source: Source = SyntheticSource(type="synthetic")
    rois: Annotated[list[Roi], Field(min_length=1, max_length=16)] = Field(
        default_factory=lambda: [Roi(name="belt", box=[0.0, 0.0, 1.0, 1.0])]
    )
    levels: Levels = Levels()
    scene: Scene = Scene()
    belt: Belt = Belt()
    mqtt: Mqtt = Mqtt()
    telemetry: Telemetry = Telemetry()
    outbox: Outbox = Outbox()
    health: Health = Health()
    service: Service = Service()
    console: Console = Console()
    evidence: Evidence = Evidence()
    capture: Capture = Capture()
    sparkplug: Sparkplug = Sparkplug()

    @model_validator(mode="after")
    def _unique_rois(self) -> EdgeConfig:
        names = [r.name for r in self.rois]
        if len(set(names)) != len(names):
            raise ValueError(f"rois: names must be unique, got {names}")
        if self.sparkplug.enabled and self.sparkplug_client_id == self.client_id:
            raise ValueError(f"sparkplug.client_id must differ from the plain connection's client id {self.client_id!r}")
        return self

    @property
    def sparkplug_group_id(self) -> str:
        return self.sparkplug.group_id or self.device.site

    @property
    def sparkplug_edge_node_id(self) -> str:
        return self.sparkplug.edge_node_id or self.device.name

    @property
    def sparkplug_client_id(self) -> str:
        return self.sparkplug.client_id or f"{self.client_id}-spb"[:64]

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix.format(site=self.device.site, line=self.device.line, device=self.device.name)

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"conveyor-{self.device.name}"

    @property
    def state_expiry_s(self) -> int:
        """MQTT 5 message expiry for retained state: long enough to survive a missed refresh, short
        enough that a dead device's last level is gone before anyone trusts it."""
        return self.mqtt.state_expiry_s or 3 * self.mqtt.keepalive_s


