"""Which stored event each QoS 1 message in flight carries.

Every QoS 1 publish is recorded, including the ones no outbox row stands behind (status,
retained state, telemetry, replies), so an acknowledgement can only ever delete the row it
belongs to. paho refuses to reuse a message id that is still in flight, so after its ids wrap
past 65,535 a new id can only name a message whose acknowledgement already came. Everything
the transport publishes is QoS 1 for this reason: paho reports QoS 0 messages through the same
callback, with ids that could name an event still waiting for its PUBACK.
"""

from __future__ import annotations


class InFlight:
    """Message id -> outbox row id (or None for a message without a row)."""

    def __init__(self) -> None:
        self._rows: dict[int, int | None] = {}
        self.events = 0  # how many of them carry outbox rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def untracked(self) -> int:
        return len(self._rows) - self.events

    def sent(self, mid: int, row_id: int | None) -> None:
        if mid in self._rows:  # paho does not do this; if it ever did, the old entry is no longer in flight
            self.acknowledged(mid)
        self._rows[mid] = row_id
        if row_id is not None:
            self.events += 1

    def acknowledged(self, mid: int) -> int | None:
        """The outbox row the acknowledged message carried, or None (no row, or an id we never sent)."""
        if mid not in self._rows:
            return None
        row_id = self._rows.pop(mid)
        if row_id is not None:
            self.events -= 1
        return row_id

    def clear(self) -> None:
        self._rows.clear()
        self.events = 0
