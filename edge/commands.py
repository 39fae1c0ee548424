"""Commands on ``<prefix>/command`` (only when ``mqtt.commands`` is true): parsed strictly,
answered always on ``<prefix>/command/reply``.

A command is a small JSON object ``{"command": NAME, "id": OPTIONAL_STRING, ...arguments}``
(schemas/command.json). Every payload gets exactly one reply (schemas/reply.json): ``ok: true``
with the handler's result, or ``ok: false`` with an error that says what was wrong, naming the
allowed commands when the name is unknown. Parsing and dispatch never raise: they run inside
the MQTT client's callbacks, where an exception would stop the network loop.

A handler answers at once (a result mapping or None) or later (a :class:`concurrent.futures.Future`
of one): acknowledging an alarm runs in the frame loop and a snapshot is encoded on its own thread,
and the MQTT thread must not wait for either. The reply goes out when the future completes.

    ping                    is the device there?            -> {"device", "uptime_s"}
    republish               retained topics again            -> {"republished": true}
    rebirth                 republish + Sparkplug births     -> {"republished": true, "sparkplug": bool}
    ack      roi, by        acknowledge a ROI's alarm        -> {"roi", "alarm", "acked_by", "acked_at", ...}
    snapshot [roi]          JPEG of the latest frame on <prefix>/snapshot/<id> -> {"snapshot_id", "topic", ...}
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

from edge.alarms import AcknowledgeRefused, Alarm
from edge.messages import REPLY_SCHEMA, alarm_fields, encode, iso_utc
from edge.snapshots import Snapshot, SnapshotRefused

log = logging.getLogger(__name__)
MAX_COMMAND_BYTES = 1024
MAX_ID_LENGTH = 64
ROI_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
OPERATOR_MAX = 64


@dataclass(frozen=True)
class Command:
    """A well-formed command."""

    name: str
    id: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A payload that is not a command we run, and why."""

    reason: str
    id: str | None = None


class CommandFailed(Exception):
    """Raised by a handler for a request it cannot carry out; the message goes into the reply."""


Result = Mapping[str, Any] | None
# A handler gets the command and returns the reply's ``result`` (or None), now or as a future.
Handler = Callable[[Command], Result | Future[Result]]
# Expected failures whose message is the reply's error (anything else is an "internal error").
REFUSALS = (CommandFailed, AcknowledgeRefused, SnapshotRefused)


def parse_command(payload: bytes, allowed: Mapping[str, frozenset[str]]) -> Command | Rejected:
    """``allowed`` maps each command name to the argument names it takes. Never raises."""
    if len(payload) > MAX_COMMAND_BYTES:
        return Rejected(f"payload of {len(payload)} bytes is larger than {MAX_COMMAND_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Rejected("not a JSON object in UTF-8")
    if not isinstance(data, dict):
        return Rejected("not a JSON object")
    command_id = data.get("id")
    if command_id is not None and (not isinstance(command_id, str) or len(command_id) > MAX_ID_LENGTH):
        return Rejected(f"id must be a string of at most {MAX_ID_LENGTH} characters")
    name = data.get("command")
    if not isinstance(name, str) or name not in allowed:
        return Rejected(f"unknown command {_show(name)}; allowed: {', '.join(sorted(allowed))}", command_id)
    extra = set(data) - {"command", "id"} - allowed[name]
    if extra:
        return Rejected(f"unknown field(s) {', '.join(sorted(map(str, extra)))} for {name!r}", command_id)
    arguments = {k: v for k, v in data.items() if k not in ("command", "id")}
    return Command(str(name), command_id, arguments)


def _show(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def reply_payload(*, command: str | None, command_id: str | None, ok: bool, wall: float,
                  error: str | None = None, result: Mapping[str, Any] | None = None) -> str:
    """The reply message (schemas/reply.json)."""
    reply: dict[str, Any] = {"schema": REPLY_SCHEMA, "command": command, "id": command_id, "ok": ok, "time": iso_utc(wall)}
    if error is not None:
        reply["error"] = error
    if result is not None:
        reply["result"] = dict(result)
    return encode(reply)


class CommandRouter:
    """Runs the registered handlers; unknown names and malformed payloads get an error reply."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._handlers: dict[str, Handler] = {}
        self._arguments: dict[str, frozenset[str]] = {}
        self._wall = wall_clock
        self.rejected = 0

    def register(self, name: str, handler: Handler, arguments: frozenset[str] = frozenset()) -> None:
        self._handlers[name] = handler
        self._arguments[name] = arguments

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def dispatch(self, payload: bytes, respond: Callable[[str], None], wall_clock: Callable[[], float] | None = None) -> None:
        """Call ``respond(reply)`` exactly once for ``payload``: now, or when a deferred handler is done.
        Never raises (a failing ``respond`` is logged). ``wall_clock`` stamps the reply (default: the router's)."""
        clock = wall_clock or self._wall
        parsed = parse_command(payload, self._arguments)
        if isinstance(parsed, Rejected):
            self.rejected += 1
            log.debug("command rejected: %s", parsed.reason)
            self._respond(respond, reply_payload(command=None, command_id=parsed.id, ok=False, wall=clock(), error=parsed.reason))
            return
        try:
            outcome = self._handlers[parsed.name](parsed)
        except Exception as exc:
            self._respond(respond, self._failure(parsed, exc, clock))
            return
        if isinstance(outcome, Future):
            outcome.add_done_callback(lambda done: self._respond(respond, self._settled(parsed, done, clock)))
        else:
            self._respond(respond, reply_payload(command=parsed.name, command_id=parsed.id, ok=True, wall=clock(), result=outcome))

    def handle(self, payload: bytes, wall: float) -> str:
        """The reply to one payload whose handler answers at once (tests, tools), stamped ``wall``. Never raises."""
        replies: list[str] = []
        self.dispatch(payload, replies.append, lambda: wall)
        return replies[0] if replies else reply_payload(command=None, command_id=None, ok=False, wall=wall,
                                                        error="the reply is not ready yet")

    @staticmethod
    def _failure(command: Command, exc: BaseException, clock: Callable[[], float]) -> str:
        if isinstance(exc, REFUSALS):
            error = str(exc)
        elif isinstance(exc, CancelledError):
            error = "cancelled: the device is stopping"
        else:
            log.error("command %s failed", command.name, exc_info=exc)
            error = "internal error"
        return reply_payload(command=command.name, command_id=command.id, ok=False, wall=clock(), error=error)

    def _settled(self, command: Command, done: Future[Result], clock: Callable[[], float]) -> str:
        if done.cancelled():
            return self._failure(command, CancelledError(), clock)
        exc = done.exception()
        if exc is not None:
            return self._failure(command, exc, clock)
        return reply_payload(command=command.name, command_id=command.id, ok=True, wall=clock(), result=done.result())

    @staticmethod
    def _respond(respond: Callable[[str], None], reply: str) -> None:
        try:
            respond(reply)
        except Exception:
            log.exception("sending a command reply failed")


# --- arguments and the device's commands ---------------------------------------------------------------

def text_argument(command: Command, name: str, *, required: bool, pattern: re.Pattern[str] | None = None,
                  max_length: int = OPERATOR_MAX) -> str | None:
    """A string argument, checked; raises :class:`CommandFailed` with what is expected."""
    value = command.arguments.get(name)
    if value is None:
        if required:
            raise CommandFailed(f"{command.name!r} needs {name!r}")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise CommandFailed(f"{name!r} must be a non-empty string of at most {max_length} characters")
    if pattern is not None and not pattern.match(value):
        raise CommandFailed(f"{name!r} must match {pattern.pattern}")
    if any(ord(c) < 32 for c in value):
        raise CommandFailed(f"{name!r} must not contain control characters")
    return value.strip()


def then(future: Future[Any], convert: Callable[[Any], Result]) -> Future[Result]:
    """A future of ``convert(result)`` (exceptions and cancellation carried over)."""
    out: Future[Result] = Future()

    def settle(done: Future[Any]) -> None:
        if done.cancelled():
            out.cancel()
            out.set_running_or_notify_cancel()
            return
        exc = done.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            out.set_result(convert(done.result()))
        except Exception as error:
            out.set_exception(error)

    future.add_done_callback(settle)
    return out


def ack_handler(acknowledge: Callable[[str, str], Future[Alarm]]) -> Handler:
    """``{"command": "ack", "roi": ROI, "by": OPERATOR}``: acknowledge the ROI's alarm (ISA-18.2)."""

    def handle(command: Command) -> Future[Result]:
        roi = text_argument(command, "roi", required=True, pattern=ROI_PATTERN)
        by = text_argument(command, "by", required=True)
        assert roi is not None and by is not None
        return then(acknowledge(roi, by), lambda alarm: {"roi": roi, **alarm_fields(alarm)})

    return handle


def snapshot_handler(take: Callable[[str | None], Future[Snapshot]], topic_of: Callable[[str], str]) -> Handler:
    """``{"command": "snapshot", "roi": OPTIONAL_ROI}``: a JPEG of the latest frame (or ROI) on a topic of its own."""

    def handle(command: Command) -> Future[Result]:
        roi = text_argument(command, "roi", required=False, pattern=ROI_PATTERN)
        return then(take(roi), lambda s: {
            "snapshot_id": s.snapshot_id, "topic": topic_of(s.snapshot_id), "content_type": "image/jpeg", "bytes": len(s.jpeg),
            "width": s.width, "height": s.height, "roi": s.roi, "frame_seq": s.frame_seq, "frame_time": iso_utc(s.frame_wall)})

    return handle


def register_device_commands(router: CommandRouter, *, acknowledge: Callable[[str, str], Future[Alarm]],
                             take_snapshot: Callable[[str | None], Future[Snapshot]], snapshot_topic: Callable[[str], str],
                             rebirths: Mapping[str, Callable[[], None]]) -> None:
    """``ack``, ``snapshot`` and ``rebirth`` (which calls every ``rebirths`` entry: the plain topics'
    republish, the Sparkplug births)."""

    def rebirth(command: Command) -> Result:
        for again in rebirths.values():
            again()
        return {"republished": "plain" in rebirths, "sparkplug": "sparkplug" in rebirths}

    router.register("ack", ack_handler(acknowledge), frozenset({"roi", "by"}))
    router.register("snapshot", snapshot_handler(take_snapshot, snapshot_topic), frozenset({"roi"}))
    router.register("rebirth", rebirth)
