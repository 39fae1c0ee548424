"""What rides on one MQTT connection: the :class:`Session` protocol the transport calls, and the
plain JSON topics' :class:`PlainSession`.

A session decides its last will (asked before every CONNECT), what to do when the broker accepted
it, whether messages may flow yet (a Sparkplug edge node waits for its primary host), its first
messages (Sparkplug's NBIRTH/DBIRTHs; none for the plain topics, whose retained state is
republished anyway), how a stored event looks on the wire (the plain ``replayed`` flag; Sparkplug's
``seq`` and ``is_historical``), and its goodbye. All of it runs on the transport's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.messages import with_replayed
from edge.outbox import StoredEvent

Payload = str | bytes
# A payload, or a function that makes it on the transport's thread when the message is sent.
PayloadSource = Payload | Callable[[], Payload]


@dataclass(frozen=True)
class Message:
    """One message a session asks the transport to publish."""

    topic: str
    payload: Payload
    retain: bool = False


class Session(Protocol):
    """What rides on top of one MQTT connection. Called on the transport's thread only, never blocking."""

    def will(self) -> Message:
        """The last will for the next CONNECT (asked again before every connection attempt)."""

    def connected(self) -> None:
        """The broker accepted the CONNECT carrying the last :meth:`will` (it will publish that will if we die)."""

    def ready(self) -> bool:
        """May the session's births, passing messages and events flow now? Asked until it says yes."""

    def births(self) -> list[Message]:
        """The first messages once the session is ready, and again on :meth:`MqttTransport.rebirth`."""

    def render(self, event: StoredEvent, replayed: bool) -> Payload | None:
        """A stored event as published; ``replayed`` = stored before this session became ready.
        None: it no longer applies (its device is gone) and is dropped unsent."""

    def farewell(self) -> list[Message]:
        """Published before a deliberate disconnect (stop, :meth:`MqttTransport.restart_session`)."""


class PlainSession:
    """The plain JSON topics: a retained will, no births, the ``replayed`` flag added to stored JSON."""

    def __init__(self, will_topic: str, will_payload: Payload) -> None:
        self._will = Message(will_topic, will_payload, retain=True)

    def will(self) -> Message:
        return self._will

    def connected(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def births(self) -> list[Message]:
        return []

    def render(self, event: StoredEvent, replayed: bool) -> Payload:
        return with_replayed(event.body, replayed)

    def farewell(self) -> list[Message]:
        return [self._will]
