"""The MQTT link: one thread owns the paho client; everything else talks to it through the outbox,
a wake-up socket and two small thread-safe setters.

Designed around paho's limits: its session lives only in memory (so durability is the outbox's
job), ``wait_for_publish`` raises for messages queued while disconnected (so it is not used), and
an exception in a callback kills its loop (so callbacks only record facts and never raise). The
thread drives paho's external-loop API (``loop_read``/``loop_write``/``loop_misc``) with its own
``select``, which lets a new event leave the moment it is stored rather than at the next poll.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import EdgeConfig
from edge.messages import OFFLINE, ONLINE, Topics, encode, mark_replayed
from edge.outbox import Outbox
from edge.secrets import Secrets

log = logging.getLogger(__name__)
WINDOW = 64  # messages in flight at once: bounds paho's memory during a long replay
MAX_COMMAND_BYTES = 1024
COMMANDS = ("ping", "republish")


def build_tls_context(config: EdgeConfig, secrets: Secrets) -> ssl.SSLContext | None:
    """TLS 1.2+ with server verification; the client certificate when configured."""
    tls = config.mqtt.tls
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None and secrets.tls_key_path is not None:
        context.load_cert_chain(tls.cert_file, str(secrets.tls_key_path))
    return context


def parse_command(payload: bytes) -> tuple[str, str | None] | None:
    """A valid command as (name, id), or None for anything else. Never raises."""
    if len(payload) > MAX_COMMAND_BYTES:
        return None
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or set(data) - {"command", "id"} or data.get("command") not in COMMANDS:
        return None
    command_id = data.get("id")
    if command_id is not None and (not isinstance(command_id, str) or len(command_id) > 64):
        return None
    return str(data["command"]), command_id


class MqttLink:
    """Connects, reconnects with capped exponential backoff, publishes status, states and the outbox."""

    def __init__(self, config: EdgeConfig, secrets: Secrets, outbox: Outbox, topics: Topics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.topics = topics
        self.outbox = outbox
        self._clock = clock
        self._secrets = secrets
        self._client = self._make_client()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}
        self._health = "ok"
        self._dirty: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        # Facts recorded by callbacks, acted on by the loop:
        self._session_up = False
        self._just_connected = False
        self._refused = False
        self._got_connack = False
        self._inflight: dict[int, int] = {}
        self._early_acks: set[int] = set()
        self._cursor = 0
        self._replay_boundary = 0
        self.connected = False
        self.last_error: str | None = None
        self.connections = 0
        self.commands_rejected = 0

    # --- used by other threads -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New outbox rows or states: make the MQTT thread look now."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full of wake-ups already, or we are shutting down

    def set_state(self, roi: str, level: str) -> None:
        with self._lock:
            if self._states.get(roi) != level:
                self._states[roi] = level
                self._dirty.add(roi)
        self.wake()

    def set_health(self, health: str) -> None:
        with self._lock:
            if self._health != health:
                self._health = health
                self._dirty.add("\0health")
        self.wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish ``offline``, flush what the broker can still take, disconnect."""
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- the MQTT thread ---------------------------------------------------------------------

    def _make_client(self) -> paho.Client:
        mqtt = self.config.mqtt
        v5 = mqtt.protocol == "5"
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.connect_timeout = 5.0
        client.max_queued_messages_set(WINDOW * 2)
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        if mqtt.username is not None:
            client.username_pw_set(mqtt.username, self._secrets.password)
        context = build_tls_context(self.config, self._secrets)
        if context is not None:
            client.tls_set_context(context)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if getattr(reason_code, "is_failure", False):
                self._refused = True
                self.last_error = f"broker refused the connection: {reason_code}"
                log.error("MQTT %s:%d %s (check mqtt.username, the password and the broker's ACL); retrying in %.0f s",
                          self.config.mqtt.host, self.config.mqtt.port, self.last_error, self.config.mqtt.auth_retry_s)
                return
            self._got_connack = True
            self._session_up = True
            self._just_connected = True
        except Exception:  # a raising callback would kill paho's loop
            log.exception("on_connect failed")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            was_up = self._session_up
            self._session_up = False
            self.connected = False
            if was_up and not self._stop.is_set():
                self.last_error = f"connection lost: {reason_code}"
                log.warning("MQTT %s", self.last_error)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        try:
            if getattr(reason_code, "is_failure", False):
                log.error("MQTT broker rejected message %d: %s (ACL?)", mid, reason_code)
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                self._early_acks.add(mid)
            elif row_id > 0:
                self.outbox.ack(row_id)
        except Exception:
            log.exception("on_publish failed")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            parsed = parse_command(bytes(message.payload))
            if parsed is None:
                self.commands_rejected += 1
                log.debug("ignored invalid command on %s (%d bytes)", message.topic, len(message.payload))
                return
            name, command_id = parsed
            if name == "republish":
                with self._lock:
                    self._dirty.update(self._states)
                    self._dirty.add("\0health")
            reply = encode({"command": name, "id": command_id, "ok": True, "time": time.time()})
            self.outbox.add("reply", self.topics.command_reply, reply, 0)
        except Exception:
            log.exception("command handling failed")

    def _connect(self) -> None:
        mqtt = self.config.mqtt
        self._refused = False
        self._got_connack = False
        self._client.connect(mqtt.host, mqtt.port, keepalive=mqtt.keepalive_s)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _io(self, sock: Any, timeout: float) -> None:
        want_write = [sock] if self._client.want_write() else []
        pending_tls = getattr(sock, "pending", lambda: 0)() > 0
        readable, writable, _ = select.select([sock, self._wake_r], want_write, [], 0 if pending_tls else timeout)
        if self._wake_r in readable:
            self._drain_wake()
        if sock in readable or pending_tls:
            self._client.loop_read()
        if self._client.socket() is not None and (sock in writable or self._client.want_write()):
            self._client.loop_write()
        if self._client.socket() is not None:
            self._client.loop_misc()

    def _after_connect(self) -> None:
        self._just_connected = False
        self.connected = True
        self.connections += 1
        self.last_error = None
        self._inflight.clear()
        self._early_acks.clear()
        self._cursor = 0
        # Everything stored before this moment is late by definition: flag it as replayed.
        self._replay_boundary = self.outbox.max_id()
        log.info("MQTT connected to %s:%d as %s (%d message(s) to replay)", self.config.mqtt.host, self.config.mqtt.port,
                 self.config.client_id, self.outbox.counts()["pending"])
        self._client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        if self.config.mqtt.commands:
            self._client.subscribe(self.topics.command, qos=1)
        with self._lock:
            self._dirty = set(self._states) | {"\0health"}

    def _flush_states(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            states = {roi: self._states[roi] for roi in dirty if roi in self._states}
            health = self._health if "\0health" in dirty else None
        if health is not None:
            self._client.publish(self.topics.health, health, qos=1, retain=True)
        for roi, level in sorted(states.items()):
            self._client.publish(self.topics.state(roi), level, qos=1, retain=True)

    def _pump(self) -> None:
        while len(self._inflight) < WINDOW:
            rows = self.outbox.pending_after(self._cursor, WINDOW - len(self._inflight))
            if not rows:
                return
            for row in rows:
                payload = mark_replayed(row.payload) if row.id <= self._replay_boundary else row.payload
                info = self._client.publish(row.topic, payload, qos=row.qos)
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    return
                self._cursor = row.id
                if info.mid in self._early_acks:  # QoS 0: on_publish ran inside publish()
                    self._early_acks.discard(info.mid)
                    self.outbox.ack(row.id)
                else:
                    self._inflight[info.mid] = row.id

    def _run(self) -> None:
        mqtt = self.config.mqtt
        backoff = mqtt.reconnect_min_s
        next_attempt = 0.0
        last_logged: str | None = None
        while not self._stop.is_set():
            try:
                sock = self._client.socket()
                if sock is None:
                    self.connected = False
                    now = self._clock()
                    if now >= next_attempt:
                        try:
                            self._connect()
                            continue
                        except (OSError, ssl.SSLError, ValueError) as exc:
                            self.last_error = f"cannot connect to {mqtt.host}:{mqtt.port}: {exc.__class__.__name__}: {exc}"
                            if self.last_error != last_logged:
                                log.warning("MQTT %s; retrying with backoff up to %.0f s", self.last_error, mqtt.reconnect_max_s)
                                last_logged = self.last_error
                            next_attempt = now + backoff
                            backoff = min(backoff * 2, mqtt.reconnect_max_s)
                    select.select([self._wake_r], [], [], max(0.0, min(next_attempt - self._clock(), 0.5)))
                    self._drain_wake()
                    continue
                self._io(sock, 0.5)
                if self._client.socket() is None:
                    if not self._refused and not self._got_connack:
                        # Closed before CONNACK: with TLS 1.3 a rejected client certificate shows up only now.
                        self.last_error = (f"{mqtt.host}:{mqtt.port} closed the connection before accepting it "
                                           "(client certificate or protocol version rejected?)")
                        if self.last_error != last_logged:
                            log.warning("MQTT %s; retrying with backoff up to %.0f s", self.last_error, mqtt.reconnect_max_s)
                            last_logged = self.last_error
                    wait = mqtt.auth_retry_s if self._refused else backoff
                    next_attempt = self._clock() + wait
                    backoff = min(backoff * 2, mqtt.reconnect_max_s)
                    continue
                if self._just_connected:
                    self._after_connect()
                    backoff = mqtt.reconnect_min_s
                    last_logged = None
                if self._session_up:
                    self._flush_states()
                    self._pump()
            except Exception:  # never let the link die silently: log, back off, go on
                log.exception("MQTT loop error; reconnecting")
                try:
                    self._client.disconnect()
                except Exception:
                    pass
                next_attempt = self._clock() + backoff
        self._shutdown()

    def _shutdown(self) -> None:
        deadline = self._clock() + 3.0
        sock = self._client.socket()
        if sock is not None and self._session_up:
            try:
                self._flush_states()
                self._pump()
                while self._inflight and self._clock() < deadline and self._client.socket() is not None:
                    self._io(self._client.socket(), 0.05)
                    self._pump()
                info = self._client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
                self._inflight[info.mid] = 0
                while info.mid in self._inflight and self._clock() < deadline and self._client.socket() is not None:
                    self._io(self._client.socket(), 0.05)
                self._client.disconnect()
                if self._client.socket() is not None:
                    self._client.loop_write()
            except Exception:
                log.exception("MQTT shutdown")
        self.connected = False
        self._wake_r.close()
        self._wake_w.close()
