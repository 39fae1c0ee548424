"""Reconnect delays: doubling from a minimum to a maximum, reset only by a connection that stayed
up for a while, so a broker that accepts and then drops every connection is not stormed."""

from __future__ import annotations


class Backoff:
    """Call :meth:`next_delay` after each failed or lost connection, :meth:`connected` on CONNACK."""

    def __init__(self, minimum: float, maximum: float, stable_after: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.stable_after = stable_after
        self._delay = minimum
        self._up_since: float | None = None

    def connected(self, now: float) -> None:
        self._up_since = now

    def next_delay(self, now: float) -> float:
        """How long to wait before the next attempt."""
        if self._up_since is not None and now - self._up_since >= self.stable_after:
            self._delay = self.minimum
        self._up_since = None
        delay = self._delay
        self._delay = min(self._delay * 2, self.maximum)
        return delay

    def stable(self, now: float) -> bool:
        """True once the current connection has lasted ``stable_after``."""
        return self._up_since is not None and now - self._up_since >= self.stable_after
