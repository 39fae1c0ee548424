"""The tests' broker is the demo's launcher (edge.demo.broker): a real Mosquitto on loopback."""

from __future__ import annotations

import random
import socket

from edge.demo.broker import Mosquitto, find_mosquitto, free_port

__all__ = ["Mosquitto", "find_mosquitto", "free_port", "free_port_below_ephemeral"]


def free_port_below_ephemeral() -> int:
    """A free port under Linux's ephemeral range (32768+): a client that keeps connecting to a closed
    ephemeral port can end up connected to itself (TCP self-connect) and hold the port."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 32000")
