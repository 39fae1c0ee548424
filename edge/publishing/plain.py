"""PlainJsonPublisher: the plain topics (status, health, state/<roi>, alarm/<roi>, event, telemetry,
snapshot/<id>) and the command topic, over one :class:`edge.mqtt.MqttTransport` (see
edge/messages.py for the topics).

It builds messages from what the daemon reports and hands them to the transport: events to be
stored and delivered, the retained view of the device state, telemetry, snapshots and command
replies (sent when the command is done: some finish on another thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.commands import Command, CommandRouter
from edge.events import Change, TelemetrySnapshot
from edge.messages import DeviceIdentity, Topics, event_body, retained_messages, telemetry_payload
from edge.mqtt import MqttTransport
from edge.publishing import LinkStatus
from edge.snapshots import Snapshot
from edge.state import DeviceState, Level


class PlainJsonPublisher:
    """Implements :class:`edge.publishing.Publisher` for the plain JSON topics."""

    def __init__(self, identity: DeviceIdentity, topics: Topics, transport: MqttTransport,
                 commands: CommandRouter | None = None) -> None:
        self.identity = identity
        self.topics = topics
        self.transport = transport
        self.commands = commands
        self._state: DeviceState | None = None
        if commands is not None:
            commands.register("ping", lambda command: {"device": identity.device})
            commands.register("republish", self._republish)
            transport.subscribe(topics.command, self.on_command)

    def start(self, state: DeviceState) -> None:
        self.state_changed(state)
        self.transport.start()

    def state_changed(self, state: DeviceState) -> None:
        previous, self._state = self._state, state
        if previous is not None:  # ROIs removed from the config (the console's lane editor): clear their retained topics
            now = {roi for roi, _ in state.levels}
            for roi, _ in previous.levels:
                if roi not in now:
                    self.transport.retain(self.topics.state(roi), "", expires=False)
                    self.transport.retain(self.topics.alarm(roi), "", expires=False)
        for topic, payload, expires in retained_messages(self.topics, state, self.identity):
            self.transport.retain(topic, payload, expires)

    def changed(self, change: Change) -> None:
        identity = self.identity
        self.transport.send_event(self.topics.event, lambda seq, event_id, epoch: event_body(
            identity, change, event_id=event_id, seq=seq, seq_epoch=epoch))

    def telemetry(self, snapshot: TelemetrySnapshot) -> None:
        self.transport.send(self.topics.telemetry, telemetry_payload(self.identity, snapshot))

    def link_status(self) -> LinkStatus:
        s = self.transport.status()
        return LinkStatus(s.connected, s.last_error, s.pending, s.dropped, s.durable, s.not_sent)

    def on_command(self, payload: bytes) -> None:
        """Called on the transport's thread for each message on the command topic."""
        if self.commands is not None:
            self.commands.dispatch(payload, lambda reply: self.transport.send(self.topics.command_reply, reply))

    def publish_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot's JPEG on ``snapshot/<id>`` (QoS 1, not retained, never stored)."""
        self.transport.send(self.topics.snapshot(snapshot.snapshot_id), snapshot.jpeg)

    def republish(self) -> None:
        """Every retained topic again (the ``republish`` and ``rebirth`` commands)."""
        if self._state is not None:
            for topic, payload, expires in retained_messages(self.topics, self._state, self.identity):
                self.transport.retain(topic, payload, expires)
        self.transport.republish()

    def _republish(self, command: Command) -> Mapping[str, Any]:
        self.republish()
        return {"republished": True}

    def close(self) -> None:
        """Nothing is known once we stop: every level reads unknown, the status offline (the transport's last word)."""
        if self._state is not None:
            unknown = self._state.with_levels({roi: Level.UNKNOWN for roi, _ in self._state.levels})
            for topic, payload, expires in retained_messages(self.topics, unknown, self.identity):
                if topic != self.topics.status:  # the status goes straight to offline
                    self.transport.retain(topic, payload, expires)
        self.transport.stop()
