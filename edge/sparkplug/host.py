"""Following the primary host application's STATE (Sparkplug 3.0, 5.x). Pure.

The host publishes ``spBv1.0/STATE/<host_id>`` retained, as JSON ``{"online": bool, "timestamp": ms}``
(its birth when it connects, its will when it dies). An edge node configured with a primary host
publishes its births only while that host is online, and ends its session when the host goes
offline; a STATE older than the last one seen is a late death of an earlier host session and is
ignored.
"""

from __future__ import annotations

import json
from enum import Enum


class HostChange(Enum):
    NONE = "none"  # nothing changed (or a stale or unreadable message)
    ONLINE = "online"
    OFFLINE = "offline"


class PrimaryHost:
    """Whether the primary host is online, from its STATE messages (transport thread only)."""

    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.online = False
        self.last_timestamp: int | None = None  # of any STATE accepted
        self.last_online_timestamp: int | None = None
        self.ignored = 0  # unreadable or stale messages

    def state_message(self, payload: bytes) -> HostChange:
        """Take one STATE payload; say what changed."""
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.ignored += 1
            return HostChange.NONE
        if not isinstance(data, dict):
            self.ignored += 1
            return HostChange.NONE
        online, timestamp = data.get("online"), data.get("timestamp")
        if not isinstance(online, bool) or not isinstance(timestamp, int) or isinstance(timestamp, bool):
            self.ignored += 1
            return HostChange.NONE
        if online:
            if self.last_timestamp is not None and timestamp < self.last_timestamp:
                self.ignored += 1
                return HostChange.NONE
            self.last_timestamp = self.last_online_timestamp = timestamp
            was, self.online = self.online, True
            return HostChange.NONE if was else HostChange.ONLINE
        if self.last_online_timestamp is not None and timestamp < self.last_online_timestamp:
            self.ignored += 1  # the death of an older host session, delivered late
            return HostChange.NONE
        self.last_timestamp = max(timestamp, self.last_timestamp or timestamp)
        was, self.online = self.online, False
        return HostChange.OFFLINE if was else HostChange.NONE
