"""Commands on ``<prefix>/command`` (only when ``mqtt.commands`` is true): parsed strictly,
answered always on ``<prefix>/command/reply``.

A command is a small JSON object ``{"command": NAME, "id": OPTIONAL_STRING, ...arguments}``
(schemas/command.json). Every payload gets exactly one reply (schemas/reply.json): ``ok: true``
with the handler's result, or ``ok: false`` with an error that says what was wrong, naming the
allowed commands when the name is unknown. Parsing and dispatch never raise: they run inside
the MQTT client's callbacks, where an exception would stop the network loop.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.messages import REPLY_SCHEMA, encode, iso_utc

log = logging.getLogger(__name__)
MAX_COMMAND_BYTES = 1024
MAX_ID_LENGTH = 64


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


# A handler gets the command and returns the reply's ``result`` (or None).
Handler = Callable[[Command], Mapping[str, Any] | None]


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

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._arguments: dict[str, frozenset[str]] = {}
        self.rejected = 0

    def register(self, name: str, handler: Handler, arguments: frozenset[str] = frozenset()) -> None:
        self._handlers[name] = handler
        self._arguments[name] = arguments

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    def handle(self, payload: bytes, wall: float) -> str:
        """The reply to one payload. Never raises."""
        parsed = parse_command(payload, self._arguments)
        if isinstance(parsed, Rejected):
            self.rejected += 1
            log.debug("command rejected: %s", parsed.reason)
            return reply_payload(command=None, command_id=parsed.id, ok=False, wall=wall, error=parsed.reason)
        try:
            result = self._handlers[parsed.name](parsed)
        except CommandFailed as exc:
            return reply_payload(command=parsed.name, command_id=parsed.id, ok=False, wall=wall, error=str(exc))
        except Exception:
            log.exception("command %s failed", parsed.name)
            return reply_payload(command=parsed.name, command_id=parsed.id, ok=False, wall=wall, error="internal error")
        return reply_payload(command=parsed.name, command_id=parsed.id, ok=True, wall=wall, result=result)
