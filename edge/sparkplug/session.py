"""SparkplugSession: what rides on the Sparkplug connection (an :class:`edge.mqtt.Session`).

Everything here runs on the Sparkplug transport's thread, in the order messages go on the wire:

* ``will()`` before every CONNECT: the NDEATH with the next ``bdSeq`` (0..255, wrapping);
  ``connected()`` saves it once the broker accepted it (a restart goes on from there).
* ``births()`` once the session may flow (at once, or when the primary host is online) and on every
  rebirth request: the NBIRTH (``seq`` 0, the same ``bdSeq`` as the will) and a DBIRTH per live ROI.
* ``render()`` for each stored data message: aliases only, the next ``seq``, and ``is_historical``
  on every metric when it was stored before this session's births (held while offline).
* ``farewell()`` before a deliberate disconnect: the NDEATH, published by us.

``seq`` counts every message of the node (births, data, deaths) and wraps after 255.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.mqtt.session import Message, Payload
from edge.outbox import StoredEvent
from edge.sparkplug.host import PrimaryHost
from edge.sparkplug.metrics import Catalogue, Node, NodeView, SparkplugTopics, device_readings, node_readings
from edge.sparkplug.payloads import Reading, Value, encode, encode_ddeath, encode_ndeath

log = logging.getLogger(__name__)


def data_record(device: str | None, values: Sequence[tuple[str, Value]], timestamp_ms: int) -> str:
    """A data message as stored in the outbox (JSON text; encoded with aliases and seq when sent)."""
    return json.dumps({"d": device, "t": timestamp_ms, "m": [[name, value] for name, value in values]}, separators=(",", ":"))


class BdSeqFile:
    """The ``bdSeq`` of the last connection the broker accepted, so a restart goes on counting (one tiny
    write per established connection, none per failed attempt)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.confirmed = -1
        if path is not None:
            try:
                self.confirmed = int(path.read_text().strip()) % 256
            except (OSError, ValueError):
                self.confirmed = -1

    def confirm(self, bd_seq: int) -> None:
        if bd_seq == self.confirmed:
            return
        self.confirmed = bd_seq
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as out:
                out.write(f"{bd_seq}\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("Sparkplug bdSeq not saved to %s: %s", self.path, exc)


def now_ms() -> int:
    return round(time.time() * 1000)


class SparkplugSession:
    """Births, deaths, ``bdSeq`` and ``seq`` of one edge node."""

    def __init__(self, topics: SparkplugTopics, catalogue: Catalogue, view: Callable[[], NodeView], bd_seq: BdSeqFile,
                 host: PrimaryHost | None = None, clock_ms: Callable[[], int] = now_ms) -> None:
        self.topics = topics
        self.catalogue = catalogue
        self._view = view
        self._bd_seq_file = bd_seq
        self.host = host
        self._clock_ms = clock_ms
        self.bd_seq = bd_seq.confirmed  # the one in the current (or last) CONNECT's will
        self._next_bd_seq = (bd_seq.confirmed + 1) % 256
        self._seq = 0
        self.births_sent = 0

    def next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    # --- transport Session -------------------------------------------------------------------------

    def will(self) -> Message:
        self.bd_seq, self._next_bd_seq = self._next_bd_seq, (self._next_bd_seq + 1) % 256
        return Message(self.topics.node("NDEATH"), encode_ndeath(Node.BD_SEQ, self.bd_seq, self._clock_ms()))

    def connected(self) -> None:
        self._bd_seq_file.confirm(self.bd_seq)

    def ready(self) -> bool:
        return self.host is None or self.host.online

    def births(self) -> list[Message]:
        view, now = self._view(), self._clock_ms()
        self._seq = 0
        self.births_sent += 1
        births = [Message(self.topics.node("NBIRTH"), encode(node_readings(self.catalogue, view, self.bd_seq, now),
                                                            timestamp_ms=now, seq=self.next_seq(), birth=True))]
        births += [Message(self.topics.device("DBIRTH", roi), self.dbirth(roi, view))
                   for roi in self.catalogue.rois if view.device(roi).alive]
        return births

    def render(self, event: StoredEvent, replayed: bool) -> Payload | None:
        record = json.loads(event.body)
        device, stamp = record["d"], int(record["t"])
        if device is not None and device not in self.catalogue.devices:
            return None  # held data of a lane removed since: its device is gone

        readings = [Reading(self.catalogue.spec(device, name), value, stamp) for name, value in record["m"]]
        return encode(readings, timestamp_ms=self._clock_ms(), seq=self.next_seq(), historical=replayed)

    def farewell(self) -> list[Message]:
        return [Message(self.topics.node("NDEATH"), encode_ndeath(Node.BD_SEQ, self.bd_seq, self._clock_ms()))]

    # --- messages built at send time (handed to the transport as functions) -------------------------

    def dbirth(self, roi: str, view: NodeView | None = None) -> bytes:
        view = view or self._view()
        now = self._clock_ms()
        return encode(device_readings(self.catalogue, roi, view.device(roi), now), timestamp_ms=now, seq=self.next_seq(),
                      birth=True)

    def ddeath(self) -> bytes:
        return encode_ddeath(self._clock_ms(), self.next_seq())

    def data(self, device: str | None, values: Sequence[tuple[str, Value]], timestamp_ms: int) -> bytes:
        readings = [Reading(self.catalogue.spec(device, name), value, timestamp_ms) for name, value in values]
        return encode(readings, timestamp_ms=self._clock_ms(), seq=self.next_seq())
