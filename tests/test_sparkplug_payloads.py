"""Sparkplug B, the pure parts: payload encoding, the metric catalogue, bdSeq and seq, the primary host's STATE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.alarms import Alarm, AlarmState
from edge.outbox import StoredEvent
from edge.sparkplug.host import HostChange, PrimaryHost
from edge.sparkplug.metrics import Catalogue, DeviceView, Node, NodeView, SparkplugTopics
from edge.sparkplug.payloads import DataType, MetricSpec, PayloadError, Reading, decode, decode_command, encode, encode_ndeath
from edge.sparkplug.session import BdSeqFile, SparkplugSession, data_record

REPO = Path(__file__).resolve().parent.parent
VIEW = NodeView(status="ok", health="ok", model_sha256="f" * 64, runtime="fake 0", version="0.1.0", site="s", line="l")


def session(tmp_path: Path, rois: tuple[str, ...] = ("belt", "lane-2"), view: NodeView = VIEW, host: PrimaryHost | None = None,
            ) -> SparkplugSession:
    return SparkplugSession(SparkplugTopics("g", "n"), Catalogue(rois), lambda: view, BdSeqFile(tmp_path / "bdseq"), host,
                            clock_ms=lambda: 1_700_000_000_000)


def test_births_name_every_metric_and_data_messages_use_the_alias_only() -> None:
    """NBIRTH/DBIRTH: name, alias, datatype, value, timestamp; DDATA: alias and value, no name, no datatype."""
    spec = MetricSpec("Level", 1001, DataType.STRING)
    birth = decode(encode([Reading(spec, "ok", 5)], timestamp_ms=7, seq=0, birth=True))
    data = decode(encode([Reading(spec, "alert", 6)], timestamp_ms=8, seq=1))
    assert (birth.timestamp_ms, birth.seq, birth.metrics) == (7, 0, (("Level", 1001, int(DataType.STRING), "ok", False),))
    assert (data.seq, data.metrics) == (1, ((None, 1001, None, "alert", False),))


def test_values_keep_their_type_and_a_missing_value_is_null() -> None:
    """Int64 (negative too), Float, Boolean, DateTime and a null: what goes in comes out."""
    readings = [Reading(MetricSpec("i", 1, DataType.INT64), -3, 1), Reading(MetricSpec("f", 2, DataType.FLOAT), 0.5, 1),
                Reading(MetricSpec("b", 3, DataType.BOOLEAN), True, 1), Reading(MetricSpec("t", 4, DataType.DATETIME), 1234, 1),
                Reading(MetricSpec("n", 5, DataType.STRING), None, 1)]
    values = [m[3] for m in decode(encode(readings, timestamp_ms=1, seq=0, birth=True, historical=True)).metrics]
    assert values == [2**64 - 3, 0.5, True, 1234, None]  # Int64 travels as its two's complement (uint64)
    assert all(m[4] for m in decode(encode(readings, timestamp_ms=1, seq=0, historical=True)).metrics)


def test_the_ndeath_carries_only_bd_seq_and_no_seq() -> None:
    """Sparkplug 3.0: the NDEATH has exactly one metric, bdSeq (Int64, by name), and no sequence number."""
    death = decode(encode_ndeath(Node.BD_SEQ, 42, 99))
    assert death.seq is None and death.metrics == (("bdSeq", None, int(DataType.INT64), 42, False),)


def test_aliases_are_unique_across_the_node_and_all_its_devices() -> None:
    """The specification requires unique aliases over the whole edge node; they do not depend on the session."""
    catalogue = Catalogue([f"roi-{i}" for i in range(16)])
    aliases = [m.alias for m in catalogue.node.values()] + [m.alias for d in catalogue.devices.values() for m in d.values()]
    assert len(aliases) == len(set(aliases)) == 13 + 16 * 11
    assert Catalogue(["roi-0"]).devices["roi-0"] == catalogue.devices["roi-0"]


def test_commands_name_metrics_by_name_or_by_alias_and_junk_is_refused() -> None:
    """A host may write Node Control/Rebirth by name or alias; bytes that are no payload raise PayloadError."""
    catalogue = Catalogue(["belt"])
    by_alias = decode_command(encode([Reading(Node.REBIRTH, True, 1)], timestamp_ms=1, seq=None))
    assert [(catalogue.named(None, m.name, m.alias), m.value) for m in by_alias] == [("Node Control/Rebirth", True)]
    assert catalogue.named("belt", "Alarm/Acknowledge", None) == "Alarm/Acknowledge"
    assert catalogue.named("belt", "bdSeq", None) is None and catalogue.named("other", "Level", None) is None
    with pytest.raises(PayloadError):
        decode_command(b"\xff\xff\xff\xff")


def payload(value: str | bytes) -> bytes:
    assert isinstance(value, bytes)
    return value


def will_bd_seq(s: SparkplugSession) -> int:
    value = decode(payload(s.will().payload)).metrics[0][3]
    assert isinstance(value, int)
    return value


def test_bd_seq_counts_every_connect_wraps_after_255_and_continues_after_a_restart(tmp_path: Path) -> None:
    """Each CONNECT's will gets the next bdSeq; the one the broker accepted is saved, and a new process goes on
    from it (failed connection attempts are not written to flash)."""
    first = session(tmp_path)
    assert [will_bd_seq(first) for _ in range(3)] == [0, 1, 2]
    assert not (tmp_path / "bdseq").exists()
    first.connected()  # the broker accepted the third CONNECT
    births = first.births()
    assert decode(payload(births[0].payload)).metrics[0][:2] == ("bdSeq", Node.BD_SEQ.alias)
    assert decode(payload(births[0].payload)).metrics[0][3] == 2 == BdSeqFile(tmp_path / "bdseq").confirmed
    assert will_bd_seq(session(tmp_path)) == 3
    (tmp_path / "bdseq").write_text("255\n")
    assert will_bd_seq(session(tmp_path)) == 0


def test_seq_starts_at_0_with_each_nbirth_and_wraps_after_255(tmp_path: Path) -> None:
    """NBIRTH seq 0, DBIRTHs next, then every message +1 modulo 256; a rebirth starts again at 0."""
    s = session(tmp_path)
    s.will()
    births = s.births()
    assert [m.topic for m in births] == ["spBv1.0/g/NBIRTH/n", "spBv1.0/g/DBIRTH/n/belt", "spBv1.0/g/DBIRTH/n/lane-2"]
    seqs = [decode(payload(m.payload)).seq for m in births]
    record = data_record("belt", [("Level", "alert")], 5)
    for _ in range(150):
        seqs.append(decode(payload(s.render(StoredEvent(1, "t", record, 0, 1), False))).seq)
        seqs.append(decode(s.ddeath()).seq)
    assert seqs == [i % 256 for i in range(303)]
    assert decode(payload(s.births()[0].payload)).seq == 0


def test_stored_data_is_rendered_with_aliases_and_the_historical_flag_when_replayed(tmp_path: Path) -> None:
    """A held DDATA keeps its capture timestamp and is marked is_historical; a live one is not."""
    s = session(tmp_path)
    record = data_record("lane-2", [("Level", "alert"), ("Probability", 0.75)], 1234)
    live = decode(payload(s.render(StoredEvent(1, "t", record, 0, 1), False)))
    held = decode(payload(s.render(StoredEvent(2, "t", record, 0, 2), True)))
    assert [(m[0], m[1], m[3], m[4]) for m in live.metrics] == [(None, 2001, "alert", False), (None, 2002, 0.75, False)]
    assert [(m[1], m[3], m[4]) for m in held.metrics] == [(2001, "alert", True), (2002, 0.75, True)]


def test_dbirths_are_only_for_live_devices_and_carry_the_alarm(tmp_path: Path) -> None:
    """A ROI whose camera failed has no DBIRTH; a live one reports its level and alarm record."""
    alarm = Alarm(AlarmState.ACTIVE_ACKNOWLEDGED, 1.0, 1.0, "alice", 2.0)
    view = VIEW.with_device("belt", level="alert", alarm=alarm).with_device("lane-2", alive=False)
    s = session(tmp_path, view=view)
    s.will()
    births = s.births()
    assert [m.topic.split("/")[2] for m in births] == ["NBIRTH", "DBIRTH"]
    values = {m[0]: m[3] for m in decode(payload(births[1].payload)).metrics}
    assert (values["Level"], values["Alarm/State"], values["Alarm/Acked By"], values["Alarm/Acked At"]) == \
        ("alert", "active_acknowledged", "alice", 2000)
    assert DeviceView().alive


def test_a_primary_host_is_online_only_after_a_current_online_state() -> None:
    """Online with a timestamp at least the last one; an offline STATE older than the last online one is a late
    will of an earlier host session and is ignored; junk changes nothing."""
    host = PrimaryHost("scada")
    assert host.state_message(b'{"online": true, "timestamp": 100}') == HostChange.ONLINE and host.online
    assert host.state_message(b'{"online": false, "timestamp": 99}') == HostChange.NONE and host.online
    assert host.state_message(b"not json") == HostChange.NONE and host.state_message(b'{"online": "yes", "timestamp": 1}') == HostChange.NONE
    assert host.state_message(b'{"online": false, "timestamp": 100}') == HostChange.OFFLINE and not host.online
    assert host.state_message(b'{"online": true, "timestamp": 50}') == HostChange.NONE and not host.online
    assert host.state_message(b'{"online": true, "timestamp": 200}') == HostChange.ONLINE
    assert host.ignored == 4


def test_a_session_waits_for_its_primary_host(tmp_path: Path) -> None:
    """ready() is false until the configured host says it is online."""
    host = PrimaryHost("scada")
    s = session(tmp_path, host=host)
    assert not s.ready()
    host.state_message(b'{"online": true, "timestamp": 1}')
    assert s.ready() and session(tmp_path).ready()


@pytest.mark.output_side
def test_the_committed_protobuf_module_is_what_protoc_makes_of_our_proto(tmp_path: Path) -> None:
    """edge/sparkplug/sparkplug_b_pb2.py(i) are generated from our own .proto by the pinned compiler (grpcio-tools)."""
    source = REPO / "edge" / "sparkplug"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{source}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
                    str(source / "sparkplug_b.proto")], check=True)
    for name in ("sparkplug_b_pb2.py", "sparkplug_b_pb2.pyi"):
        assert (tmp_path / name).read_bytes() == (source / name).read_bytes(), f"{name} is stale: regenerate (edge/sparkplug/README.md)"
