"""A small MQTT 3.1.1 broker for the demo on machines without Mosquitto. Not for production.

Supports what the demo needs: CONNECT (with last will), PUBLISH at QoS 0/1 (delivered at most
at QoS 1), retained messages, SUBSCRIBE/UNSUBSCRIBE with + and # wildcards, PING, DISCONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard match of a subscription ``pattern`` against a concrete ``topic``."""
    p_parts, t_parts = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(p_parts) == len(t_parts)


def _encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    n = int.from_bytes(data[pos : pos + 2], "big")
    return data[pos + 2 : pos + 2 + n], pos + 2 + n


@dataclass(eq=False)  # identity semantics: sessions live in a set
class _Session:
    writer: asyncio.StreamWriter
    subscriptions: dict[str, int] = field(default_factory=dict)
    will: tuple[str, bytes, int, bool] | None = None
    next_mid: int = 1


class MiniBroker:
    """Runs on its own thread and event loop; ``start()`` returns the bound port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._sessions: set[_Session] = set()
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="minibroker", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> int:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("mini broker did not start")
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _read_packet(self, reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        header = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 21:
                raise ValueError("bad remaining length")
        return header >> 4, header & 0x0F, await reader.readexactly(length)

    def _send(self, session: _Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        body = len(topic.encode()).to_bytes(2, "big") + topic.encode()
        if qos:
            body += session.next_mid.to_bytes(2, "big")
            session.next_mid = session.next_mid % 65535 + 1
        flags = (qos << 1) | (1 if retain else 0)
        session.writer.write(bytes([0x30 | flags]) + _encode_length(len(body) + len(payload)) + body + payload)

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        for session in list(self._sessions):
            granted = [q for pattern, q in session.subscriptions.items() if topic_matches(pattern, topic)]
            if granted:
                self._send(session, topic, payload, min(qos, max(granted)), False)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        clean = False
        try:
            kind, _, data = await self._read_packet(reader)
            if kind != 1:
                return
            _, pos = _string(data, 0)
            level, flags = data[pos], data[pos + 1]
            if level != 4:
                writer.write(b"\x20\x02\x00\x01")  # unacceptable protocol version
                return
            pos += 4
            _, pos = _string(data, pos)  # client id
            if flags & 0x04:
                will_topic, pos = _string(data, pos)
                will_payload, pos = _string(data, pos)
                session.will = (will_topic.decode(), will_payload, (flags >> 3) & 3, bool(flags & 0x20))
            writer.write(b"\x20\x02\x00\x00")
            self._sessions.add(session)
            while True:
                kind, flags, data = await self._read_packet(reader)
                if kind == 3:  # PUBLISH
                    qos, retain = (flags >> 1) & 3, bool(flags & 1)
                    topic, pos = _string(data, 0)
                    if qos:
                        mid = data[pos : pos + 2]
                        pos += 2
                        writer.write(b"\x40\x02" + mid)
                    self._route(topic.decode(), data[pos:], min(qos, 1), retain)
                elif kind == 8:  # SUBSCRIBE
                    mid, pos, granted = data[:2], 2, bytearray()
                    new = []
                    while pos < len(data):
                        pattern, pos = _string(data, pos)
                        qos = min(data[pos], 1)
                        pos += 1
                        session.subscriptions[pattern.decode()] = qos
                        granted.append(qos)
                        new.append((pattern.decode(), qos))
                    writer.write(bytes([0x90]) + _encode_length(2 + len(granted)) + mid + bytes(granted))
                    for filter_text, qos in new:
                        for topic_name, (payload, rq) in self._retained.items():
                            if topic_matches(filter_text, topic_name):
                                self._send(session, topic_name, payload, min(qos, rq), True)
                elif kind == 10:  # UNSUBSCRIBE
                    pos = 2
                    while pos < len(data):
                        pattern, pos = _string(data, pos)
                        session.subscriptions.pop(pattern.decode(), None)
                    writer.write(b"\xb0\x02" + data[:2])
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    clean = True
                    return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            self._sessions.discard(session)
            if session.will is not None and not clean:
                self._route(*session.will)
            with contextlib.suppress(Exception):
                writer.close()
