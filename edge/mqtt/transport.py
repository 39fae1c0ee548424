"""MqttTransport: one thread that owns the outbox and a paho client, and moves messages.

Three kinds of message, handed over from any thread without waiting:

* **events** (:meth:`send_event`): stored durably by this thread (one fsync per batch, never in
  the frame loop), then published at QoS 1 and deleted after the broker's PUBACK (at QoS 0, which
  Sparkplug requires, once written to the socket: there is no acknowledgement to wait for). After a
  (re)connect, events stored while this connection was up go first; the backlog drains with the
  room left, marked ``replayed``.
* **retained state** (:meth:`retain`): the last payload per topic, republished after every
  reconnect; with MQTT 5 the expiring ones carry a Message Expiry and are refreshed, so they
  vanish from the broker soon after the device dies.
* **passing messages** (:meth:`send`): telemetry and command replies; sent while connected,
  counted and dropped otherwise. Never stored.

What rides on a connection is a :class:`edge.mqtt.session.Session` (will, births, whether to flow
yet, how stored events look on the wire, goodbye); :class:`edge.mqtt.session.PlainSession` is the
default: a retained will on the status topic, the ``replayed`` flag appended to stored JSON.

Payloads are text or bytes; a payload may also be a function, called on this thread at the moment
of sending (so a per-message counter such as Sparkplug's ``seq`` follows the order on the wire).

Designed around paho's limits: its session lives only in memory (durability is the outbox's
job), ``wait_for_publish`` raises for messages queued while disconnected (not used), an exception
in a callback kills its loop (callbacks only record facts and never raise), and a client that
reconnects resends its own in-flight copies (a new client per connection instead). The thread
drives paho's external-loop API with its own ``select`` so a stored event leaves at once.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.mqtt.backoff import Backoff
from edge.mqtt.inflight import InFlight
from edge.mqtt.session import Message, Payload, PayloadSource, PlainSession, Session
from edge.outbox import BodyBuilder, Outbox, StoredEvent

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.5  # the longest the thread waits on the socket when nothing wakes it (keepalive, timeouts)
WINDOW = 64  # events in flight at once: bounds paho's memory during a long replay
LIVE_RESERVE = 8  # of those, kept free for new events while a backlog drains
MAX_UNTRACKED = 256  # other messages in flight (retained, telemetry, replies) before new ones are dropped
SHUTDOWN_FLUSH_S = 3.0

@dataclass(frozen=True)
class MqttSettings:
    """Everything the transport needs to connect, already validated and resolved."""

    host: str
    port: int
    client_id: str
    will_topic: str
    will_payload: str
    protocol: str = "3.1.1"
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = None
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    auth_retry_s: float = 60.0
    connect_timeout_s: float = 10.0
    stable_after_s: float = 10.0
    retained_expiry_s: int = 90
    max_packet_bytes: int = 65536
    qos: int = 1  # of every publish; Sparkplug B's messages are QoS 0 (its will stays QoS 1)

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TransportStatus:
    """What telemetry and ``systemctl status`` say about the link. Safe to read from any thread."""

    connected: bool
    last_error: str | None
    connections: int
    pending: int
    dropped: int
    durable: bool
    not_sent: int  # passing messages dropped because we were offline or too far behind


@dataclass(frozen=True)
class _StoreEvent:
    topic: str
    build: BodyBuilder


@dataclass(frozen=True)
class _Retain:
    topic: str
    payload: Payload
    expires: bool


@dataclass(frozen=True)
class _Send:
    topic: str
    payload: PayloadSource


@dataclass(frozen=True)
class _Republish:
    pass


@dataclass(frozen=True)
class _Rebirth:
    pass


@dataclass(frozen=True)
class _RestartSession:
    reason: str


_Work = _StoreEvent | _Retain | _Send | _Republish | _Rebirth | _RestartSession


class MqttTransport:
    """Connects, reconnects with a backoff that only a stable connection resets, and moves messages."""

    def __init__(self, settings: MqttSettings, outbox: Outbox, clock: Callable[[], float] = time.monotonic,
                 session: Session | None = None) -> None:
        self.settings = settings
        self.outbox = outbox
        self.session: Session = session or PlainSession(settings.will_topic, settings.will_payload)
        self._subscriptions: dict[str, Callable[[bytes], None]] = {}
        self._filters: dict[str, Callable[[str, bytes], None]] = {}
        self._clock = clock
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s, settings.stable_after_s)
        self._inflight = InFlight()
        self._retained: dict[str, tuple[Payload, bool]] = {}
        self._dirty: set[str] = set()
        self._outgoing: deque[_Send] = deque()
        # Per connection:
        self._client: paho.Client | None = None
        self._connack_deadline = 0.0
        self._session_up = False
        self._ready = False  # the session said it may flow, and its births went out
        self._just_connected = False
        self._refused = False
        self._boundary = 0
        self._live_cursor = 0
        self._backlog_cursor = 0
        self._next_refresh = 0.0
        self._next_attempt = 0.0
        self._last_logged: str | None = None
        # Read by other threads:
        self.connected = False
        self.ready = False  # connected and the session flowing (read by other threads)
        self.last_error: str | None = None
        self.connections = 0
        self.not_sent = 0
        self.published = 0  # messages handed to the broker connection since start

    # --- used by other threads -------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Before :meth:`start`: call ``handler(payload)`` on this thread for each message on ``topic``."""
        self._subscriptions[topic] = handler

    def subscribe_filter(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        """Before :meth:`start`: call ``handler(topic, payload)`` for each message matching a wildcard filter."""
        self._filters[topic_filter] = handler

    def start(self) -> None:
        self._thread.start()

    def send_event(self, topic: str, build: BodyBuilder) -> None:
        """Store (on this transport's thread) and deliver an event; returns at once."""
        self._put(_StoreEvent(topic, build))

    def retain(self, topic: str, payload: Payload, expires: bool = False) -> None:
        """Make ``payload`` the retained value of ``topic`` (republished after every reconnect)."""
        self._put(_Retain(topic, payload, expires))

    def send(self, topic: str, payload: PayloadSource) -> None:
        """Publish once if the session flows (not retained, never stored); dropped and counted otherwise.

        ``payload`` may be a function: it is called on this transport's thread when the message goes out.
        """
        self._put(_Send(topic, payload))

    def republish(self) -> None:
        """Publish every retained topic again (the ``republish`` command)."""
        self._put(_Republish())

    def rebirth(self) -> None:
        """Publish the session's births again (a Sparkplug rebirth request), if it is flowing."""
        self._put(_Rebirth())

    def restart_session(self, reason: str) -> None:
        """Say the session's farewell, disconnect, and connect again soon (a new will, new births)."""
        self._put(_RestartSession(reason))

    def status(self) -> TransportStatus:
        counts = self.outbox.counts()
        return TransportStatus(self.connected, self.last_error, self.connections, counts.pending, counts.dropped,
                               counts.durable, self.not_sent)

    def stop(self, timeout: float = 5.0) -> None:
        """Store what is queued, flush what the broker can still take, say the session's farewell, disconnect."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._thread.ident:  # never started: still store what was handed over
            self._take_work()
            self.outbox.close()

    def _put(self, item: _Work) -> None:
        self._work.put(item)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full of wake-ups already, or closed at shutdown

    # --- the transport thread: handing over --------------------------------------------------------

    def _take_work(self) -> bool:
        """Take what other threads handed over; True if there was anything (then the step must not block)."""
        events: list[_StoreEvent] = []
        took = False
        while True:
            try:
                item = self._work.get_nowait()
            except queue.Empty:
                break
            took = True
            if isinstance(item, _StoreEvent):
                events.append(item)
            elif isinstance(item, _Retain):
                if self._retained.get(item.topic) != (item.payload, item.expires):
                    self._retained[item.topic] = (item.payload, item.expires)
                    self._dirty.add(item.topic)
            elif isinstance(item, _Republish):
                self._dirty = set(self._retained)
            elif isinstance(item, _Rebirth):
                if self._ready:
                    self._send_outgoing()  # what was handed over before the rebirth goes out before it
                    self._publish_all(self.session.births())
            elif isinstance(item, _RestartSession):
                self._restart(item.reason)
            elif self._session_up and self._ready:
                self._outgoing.append(item)
            else:
                self.not_sent += 1
        if events:
            try:
                stored = self.outbox.add_many([(e.topic, e.build) for e in events])
            except Exception:
                log.exception("could not store %d event(s)", len(events))
                return took
            for row in stored:
                log.info("event #%d stored (%s)", row.seq, self.settings.client_id)
        return took

    # --- the transport thread: connection --------------------------------------------------------

    def _new_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=paho.MQTTv5 if s.mqtt5 else paho.MQTTv311, clean_session=None if s.mqtt5 else True)
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(WINDOW + MAX_UNTRACKED)
        client.max_queued_messages_set(0)
        will = self.session.will()
        client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls is not None:
            client.tls_set_context(s.tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        s = self.settings
        client = self._new_client()
        self._refused = self._session_up = self._just_connected = self._ready = self.ready = False
        properties = None
        if s.mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.MaximumPacketSize = s.max_packet_bytes
            properties.SessionExpiryInterval = 0
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive_s, properties=properties)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed(f"cannot connect to {s.where}: {exc.__class__.__name__}: {exc}", self._backoff.next_delay(self._clock()))
            return
        sock = client.socket()
        if isinstance(sock, socket.socket):  # (TLS too) small alarm packets go out now, not after Nagle waits for the previous segment's ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        self._connack_deadline = self._clock() + s.connect_timeout_s

    def _failed(self, error: str, delay: float, level: int = logging.WARNING, why_delay: str = "") -> None:
        """Record why there is no connection and when to try again; log it once, not on every attempt."""
        self.connected = False
        self.last_error = error
        self._next_attempt = self._clock() + delay
        why_delay = why_delay or f"backoff up to {self.settings.reconnect_max_s:g} s"
        log.log(level if error != self._last_logged else logging.DEBUG, "MQTT %s; next attempt in %.1f s (%s)", error, delay, why_delay)
        self._last_logged = error

    def _lost(self, reason: str | None = None) -> None:
        """The socket is gone (or abandoned): decide why and when to try again."""
        s = self.settings
        client, self._client = self._client, None
        if client is not None and client.socket() is not None:
            client.socket().close()  # type: ignore[union-attr]
        was_up, self._session_up, self.connected = self._session_up or self.connected, False, False
        self._ready = self.ready = False
        self._inflight.clear()
        self._outgoing.clear()
        now = self._clock()
        if self._refused:
            self._failed(self.last_error or "broker refused the connection", s.auth_retry_s, logging.ERROR, "mqtt.auth_retry_s")
            return
        stable = self._backoff.stable(now)
        delay = self._backoff.next_delay(now)
        if reason is None:
            if was_up:
                reason = f"connection to {s.where} lost" + ("" if stable else " soon after it was accepted")
            else:
                # With TLS 1.3 a rejected client certificate shows up only now.
                reason = f"{s.where} closed the connection before accepting it (client certificate or protocol version rejected?)"
        if stable:
            self._last_logged = None  # a stable connection ended: worth a fresh warning
        self._failed(reason, delay)

    def _after_connect(self) -> None:
        s = self.settings
        self._just_connected = False
        self.connected = True
        self.connections += 1
        self.last_error = None
        self._backoff.connected(self._clock())
        self._inflight.clear()
        self.outbox.flush_acknowledged()
        log.info("MQTT connected to %s as %s (MQTT %s, %d event(s) to replay)", s.where, s.client_id, s.protocol,
                 self.outbox.counts().pending)
        if self._last_logged is not None and self._last_logged.startswith("cannot connect"):
            self._last_logged = None
        assert self._client is not None
        self.session.connected()
        for topic in [*self._subscriptions, *self._filters]:
            self._client.subscribe(topic, qos=1)

    def _begin_session(self) -> None:
        """The session may flow: births first, then retained state, and every event stored so far is a replay."""
        self._ready = self.ready = True
        self._publish_all(self.session.births())
        self._boundary = self._live_cursor = self.outbox.newest_id
        self._backlog_cursor = 0
        self._next_refresh = self._clock() + self.settings.retained_expiry_s / 3
        self._dirty = set(self._retained)

    def _restart(self, reason: str) -> None:
        """Farewell, a clean DISCONNECT, and a new connection after the shortest reconnect delay (no backoff:
        nothing failed; the pause lets the broker see the DISCONNECT before the same client id connects again,
        which it could otherwise take for a session takeover and answer with the old will)."""
        client = self._client
        if client is None or not self._session_up:
            return
        log.warning("MQTT session on %s restarts: %s", self.settings.where, reason)
        self._publish_all(self.session.farewell())
        client.disconnect()
        if client.socket() is not None:
            client.loop_write()
            if client.socket() is not None:
                client.socket().close()  # type: ignore[union-attr]
        self._client = None
        self._session_up = self._ready = self.ready = self.connected = False
        self._inflight.clear()
        self._outgoing.clear()
        self._next_attempt = self._clock() + self.settings.reconnect_min_s

    # --- paho callbacks: record facts, never raise -------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            if getattr(reason_code, "is_failure", False):
                self._refused = True
                self.last_error = (f"broker refused the connection: {reason_code} (check mqtt.username, the password "
                                   "and the broker's ACL)")
                return
            self._session_up = self._just_connected = True
        except Exception:
            log.exception("on_connect failed")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        try:
            self._session_up = False
        except Exception:
            log.exception("on_disconnect failed")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        try:
            if getattr(reason_code, "is_failure", False):
                log.error("MQTT broker rejected message %d: %s (ACL?)", mid, reason_code)
            row_id = self._inflight.acknowledged(mid)
            if row_id is not None:
                self.outbox.acknowledge(row_id)
        except Exception:
            log.exception("on_publish failed")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            handler = self._subscriptions.get(message.topic)
            if handler is not None:
                handler(bytes(message.payload))
                return
            for topic_filter, with_topic in self._filters.items():
                if paho.topic_matches_sub(topic_filter, message.topic):
                    with_topic(message.topic, bytes(message.payload))
                    return
        except Exception:
            log.exception("handling a message on %s failed", getattr(message, "topic", "?"))

    # --- the transport thread: moving messages -----------------------------------------------------

    def _publish(self, topic: str, payload: Payload, retain: bool = False, row_id: int | None = None,
                 expiry_s: int | None = None) -> bool:
        assert self._client is not None
        properties = None
        if expiry_s is not None and self.settings.mqtt5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = expiry_s
        qos = self.settings.qos
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False
        self.published += 1
        if qos == 0 and info.is_published():
            # Written to the socket inside publish(): paho called on_publish before we knew the id. QoS 0
            # has no acknowledgement; a complete write is as far as delivery can be followed.
            if row_id is not None:
                self.outbox.acknowledge(row_id)
            return True
        self._inflight.sent(info.mid, row_id)
        return True

    def _publish_all(self, messages: list[Message]) -> None:
        for m in messages:
            self._publish(m.topic, m.payload, retain=m.retain)

    def _flush_retained(self) -> None:
        now = self._clock()
        if self.settings.mqtt5 and now >= self._next_refresh:
            self._next_refresh = now + self.settings.retained_expiry_s / 3
            self._dirty |= {topic for topic, (_, expires) in self._retained.items() if expires}
        for topic in sorted(self._dirty):
            if self._inflight.untracked >= MAX_UNTRACKED:
                return
            payload, expires = self._retained[topic]
            if not self._publish(topic, payload, retain=True, expiry_s=self.settings.retained_expiry_s if expires else None):
                return
            self._dirty.discard(topic)

    def _send_outgoing(self) -> None:
        while self._outgoing and self._inflight.untracked < MAX_UNTRACKED:
            item = self._outgoing.popleft()
            payload = item.payload() if callable(item.payload) else item.payload
            if not self._publish(item.topic, payload):
                self._outgoing.appendleft(item)
                return
        if len(self._outgoing) > MAX_UNTRACKED:  # the broker is not keeping up: the oldest are stale anyway
            while len(self._outgoing) > MAX_UNTRACKED:
                self._outgoing.popleft()
                self.not_sent += 1

    def _publish_stored(self, row: StoredEvent, replayed: bool) -> bool:
        payload = self.session.render(row, replayed)
        if payload is None:  # the session says it no longer applies: drop it as if delivered
            self.outbox.acknowledge(row.id)
            return True
        return self._publish(row.topic, payload, row_id=row.id)

    def _send_events(self) -> None:
        # New events first: they are what the plant is waiting for.
        while self._inflight.events < WINDOW:
            rows = self.outbox.pending(self._live_cursor, WINDOW - self._inflight.events)
            if not rows:
                break
            for row in rows:
                if not self._publish_stored(row, replayed=False):
                    return
                self._live_cursor = row.id
        # Then the backlog, with the room that is left.
        while self._backlog_cursor < self._boundary and self._inflight.events < WINDOW - LIVE_RESERVE:
            rows = self.outbox.pending(self._backlog_cursor, WINDOW - LIVE_RESERVE - self._inflight.events, up_to=self._boundary)
            if not rows:
                self._backlog_cursor = self._boundary
                break
            for row in rows:
                if not self._publish_stored(row, replayed=True):
                    return
                self._backlog_cursor = row.id

    # --- the transport thread: the loop ----------------------------------------------------------

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _wait_for_wake(self, timeout: float) -> None:
        select.select([self._wake_r], [], [], max(0.0, timeout))
        self._drain_wake()

    def _poll_socket(self, timeout: float) -> None:
        client = self._client
        assert client is not None
        sock = client.socket()
        if sock is None:
            return
        pending_tls = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        want_write = [sock] if client.want_write() else []
        readable, writable, _ = select.select([sock, self._wake_r], want_write, [], 0 if pending_tls else timeout)
        if self._wake_r in readable:
            self._drain_wake()
        if sock in readable or pending_tls:
            client.loop_read()
        if client.socket() is not None and (sock in writable or client.want_write()):
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()

    def _step(self) -> None:
        took_work = self._take_work()
        self.outbox.maintain()
        if self._client is None:
            now = self._clock()
            if now >= self._next_attempt:
                self._connect()
            else:
                self._wait_for_wake(min(self._next_attempt - now, 0.5))
            return
        # The wake-up that brought this work was consumed before it was taken: waiting now would hold a new
        # event until some later traffic (an alarm behind the next frame's wake-up, or the idle timeout).
        self._poll_socket(0.0 if took_work else IDLE_POLL_S)
        if self._client.socket() is None:
            self._lost()
            return
        if self._just_connected:
            self._after_connect()
        if not self._session_up:
            if self._refused or self._clock() >= self._connack_deadline:
                if not self._refused:
                    self.last_error = None
                self._lost(None if self._refused else
                           f"{self.settings.where} accepted the TCP connection but did not answer MQTT CONNECT within "
                           f"{self.settings.connect_timeout_s:g} s (not an MQTT broker, or overloaded?)")
            return
        if not self._ready:
            if not self.session.ready():
                return
            self._begin_session()
        self._flush_retained()
        self._send_outgoing()
        self._send_events()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:  # never let the link die silently: log, drop the connection, go on
                log.exception("MQTT loop error; reconnecting")
                self._lost("internal error in the MQTT loop (see the traceback above)")
        self._shutdown()

    def _shutdown(self) -> None:
        try:
            self._take_work()
            if self._client is not None and self._session_up:
                self._flush_on_the_way_out()
            elif self._client is not None and self._client.socket() is not None:
                self._client.socket().close()  # type: ignore[union-attr]
        except Exception:
            log.exception("MQTT shutdown")
        finally:
            self.connected = False
            self.outbox.close()
            self._wake_r.close()
            self._wake_w.close()

    def _flush_on_the_way_out(self) -> None:
        assert self._client is not None
        deadline = self._clock() + SHUTDOWN_FLUSH_S
        if self._ready:
            self._flush_retained()
            self._send_outgoing()
            self._send_events()
            while self._inflight.events and self._clock() < deadline and self._client.socket() is not None:
                self._poll_socket(0.05)
                self._send_events()
        self._publish_all(self.session.farewell())
        while len(self._inflight) and self._clock() < deadline and self._client.socket() is not None:
            self._poll_socket(0.05)
        self._client.disconnect()
        if self._client.socket() is not None:
            self._client.loop_write()
