"""The MQTT side: one thread that moves stored events, retained state and passing messages to
the broker, and nothing else.

    transport.py  MqttTransport: the connection state machine and the paho client (one per connection)
    session.py    Session: what rides on a connection (will, births, rendering stored events); PlainSession
    inflight.py   which stored event each message id carries (pure)
    backoff.py    reconnect delays that grow until a connection proves stable (pure)
    tls.py        the TLS context

What to publish is decided elsewhere (``edge.publishing``); the transport only moves it.
"""

from edge.mqtt.session import Message, PlainSession, Session
from edge.mqtt.transport import MqttSettings, MqttTransport, TransportStatus

__all__ = ["Message", "MqttSettings", "MqttTransport", "PlainSession", "Session", "TransportStatus"]
