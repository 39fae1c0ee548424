"""A paho subscriber that records every message and lets tests wait on conditions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

SCHEMAS = Path(__file__).resolve().parents[2] / "edge" / "schemas"
EVENT_VALIDATOR = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "event.json").read_text()))
TELEMETRY_VALIDATOR = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "telemetry.json").read_text()))
REPLY_VALIDATOR = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "reply.json").read_text()))
ALARM_VALIDATOR = jsonschema.Draft202012Validator(json.loads((SCHEMAS / "alarm.json").read_text()))
PLAIN = json.loads((SCHEMAS / "plain.json").read_text())["$defs"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool
    qos: int
    at: float
    raw: bytes = b""

    def json(self) -> dict[str, Any]:
        return json.loads(self.payload)  # type: ignore[no-any-return]


def validate(message: Message) -> None:
    """Every published message must match its JSON Schema (or plain enumeration)."""
    kind = message.topic.split("/")[-1] if "/state/" not in message.topic else "state"
    kind = {"/alarm/": "alarm", "/snapshot/": "snapshot"}.get(next((k for k in ("/alarm/", "/snapshot/") if k in message.topic), ""), kind)
    if kind == "alarm":
        ALARM_VALIDATOR.validate(message.json())
    elif kind == "snapshot":
        assert message.raw.startswith(b"\xff\xd8\xff") and message.raw.endswith(b"\xff\xd9"), f"{message.topic}: not a JPEG"
    elif kind == "event":
        EVENT_VALIDATOR.validate(message.json())
    elif kind == "telemetry":
        TELEMETRY_VALIDATOR.validate(message.json())
    elif kind in ("status", "health", "state"):
        assert message.payload in PLAIN[kind]["enum"], f"{message.topic}: {message.payload!r}"
    elif kind == "motion":
        assert message.payload in PLAIN["belt"]["enum"], f"{message.topic}: {message.payload!r}"
    elif kind == "reply":
        REPLY_VALIDATOR.validate(message.json())
    else:
        raise AssertionError(f"unexpected topic {message.topic}")


class Subscriber:
    def __init__(self, host: str, port: int, topic: str = "plant/#", client_id: str | None = None,
                 tls: Any = None, username: str | None = None, password: str | None = None,
                 clean_session: bool = True) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{time.monotonic_ns()}", clean_session=clean_session)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        if tls is not None:
            self.client.tls_set_context(tls)
        if username:
            self.client.username_pw_set(username, password)
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload.decode("utf-8", "replace"), bool(msg.retain), msg.qos,
                                         time.monotonic(), bytes(msg.payload)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    topics = [(m.topic, m.payload[:60]) for m in self.messages[-15:]]
                    raise AssertionError(f"timed out waiting for {what}; last messages: {topics}")
                self._cond.wait(remaining)

    def on(self, suffix: str) -> list[Message]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def events(self, kind: str = "level") -> list[dict[str, Any]]:
        return [m.json() for m in self.on("/event") if m.json().get("type") == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
