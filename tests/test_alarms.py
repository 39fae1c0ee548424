"""Alarm acknowledge (ISA-18.2 style): the pure transitions, the records on disk, and the daemon that owns them."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.alarms import AcknowledgeRefused, Alarm, AlarmState, condition_of
from edge.alarms.store import AlarmStore, from_json, to_json
from edge.config import parse_config
from edge.daemon import Daemon, DaemonParts
from edge.events import AlarmChanged
from edge.fakes import FakeClassifier
from edge.publishing.recording import RecordingPublisher
from edge.sources.base import Frame

N, AU, AA, RU = (AlarmState.NORMAL, AlarmState.ACTIVE_UNACKNOWLEDGED, AlarmState.ACTIVE_ACKNOWLEDGED,
                 AlarmState.RETURNED_UNACKNOWLEDGED)


@pytest.mark.parametrize(("start", "event", "expected"), [
    (N, "alert", AU), (N, "clear", N), (N, "unknown", N),
    (AU, "alert", AU), (AU, "clear", RU), (AU, "unknown", AU), (AU, "ack", AA),
    (AA, "alert", AA), (AA, "clear", N), (AA, "unknown", AA),
    (RU, "alert", AU), (RU, "clear", RU), (RU, "unknown", RU), (RU, "ack", N),
])
def test_each_state_moves_as_isa_18_2_says(start: AlarmState, event: str, expected: AlarmState) -> None:
    """The four states, the condition (alert / cleared / cannot judge) and the operator's acknowledgement."""
    alarm = Alarm(start, since=1.0, activated_at=1.0 if start != N else None)
    if event == "ack":
        after = alarm.acknowledge("alice", 5.0)
        assert (after.acked_by, after.acked_at, after.since) == ("alice", 5.0, 5.0)
    else:
        after = alarm.condition({"alert": True, "clear": False, "unknown": None}[event], 5.0)
    assert after.state == expected
    assert after.since == (1.0 if expected == start else 5.0)


@pytest.mark.parametrize("start", [N, AA])
def test_there_is_nothing_to_acknowledge_when_normal_or_already_acknowledged(start: AlarmState) -> None:
    """Acknowledging a normal or acknowledged alarm is refused with the reason (and changes nothing)."""
    alarm = Alarm(start, acked_by="bob" if start == AA else None)
    with pytest.raises(AcknowledgeRefused, match="already acknowledged by bob" if start == AA else "nothing to acknowledge"):
        alarm.acknowledge("alice", 2.0)


def test_a_new_alarm_forgets_the_previous_acknowledgement_and_a_cleared_one_keeps_it() -> None:
    """acked_by names who acknowledged the current alarm; after it clears it stays as the record of the last one."""
    acked = Alarm().condition(True, 1.0).acknowledge("alice", 2.0)
    cleared = acked.condition(False, 3.0)
    assert (cleared.state, cleared.acked_by, cleared.acked_at, cleared.activated_at) == (N, "alice", 2.0, 1.0)
    again = cleared.condition(True, 4.0)
    assert (again.state, again.acked_by, again.acked_at, again.activated_at) == (AU, None, None, 4.0)


def test_levels_map_to_the_alarm_condition() -> None:
    """alert raises, ok and warning clear, unknown (the device cannot judge) neither."""
    assert [condition_of(x) for x in ("alert", "ok", "warning", "unknown")] == [True, False, False, None]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["alert", "clear", "unknown", "ack"]), max_size=40))
def test_any_history_keeps_the_invariants(history: list[str]) -> None:
    """Active follows the last judged condition; only an acknowledgement clears 'unacknowledged'; a refused
    acknowledgement changes nothing."""
    alarm, condition, wall = Alarm(), False, 0.0
    for step in history:
        wall += 1.0
        before = alarm
        if step == "ack":
            try:
                alarm = alarm.acknowledge("op", wall)
                assert before.state.unacknowledged and not alarm.state.unacknowledged
            except AcknowledgeRefused:
                assert not before.state.unacknowledged
        else:
            judged = {"alert": True, "clear": False, "unknown": None}[step]
            alarm = alarm.condition(judged, wall)
            condition = condition if judged is None else judged
            if before.state.unacknowledged:
                assert alarm.state.unacknowledged
        assert alarm.state.active == condition


def test_records_round_trip_through_the_file_format() -> None:
    """Every field of every state comes back as it was written."""
    records = {"a": Alarm(), "b": Alarm(AU, 1.5, 1.5), "c": Alarm(N, 9.0, 1.0, "ölaf ✓", 8.0)}
    assert from_json(to_json(records)) == records


def test_the_store_writes_atomically_only_on_change_and_survives_a_restart(tmp_path: Path) -> None:
    """One write per change (none for the same records again), no temporary file left, read back by a new store."""
    path = tmp_path / "state" / "alarms.json"
    store = AlarmStore(path)
    assert store.load() == {}
    records = {"belt": Alarm(AU, 10.0, 10.0)}
    store.save(records)
    assert store.flush(5)
    store.save(dict(records))
    store.save({"belt": Alarm(AA, 11.0, 10.0, "alice", 11.0)})
    store.close()
    assert store.writes == 2
    assert not path.with_name("alarms.json.tmp").exists()
    assert AlarmStore(path).load() == {"belt": Alarm(AA, 11.0, 10.0, "alice", 11.0)}


@pytest.mark.parametrize("content", ["{not json", '{"format": "something else"}', '{"format": "conveyor-watch/alarms/1", '
                                     '"alarms": {"belt": {"state": "exploded"}}}'])
def test_a_damaged_file_is_kept_aside_and_alarms_start_normal(tmp_path: Path, content: str) -> None:
    """A file we cannot trust is not trusted, and not lost either: it is renamed for a person to look at."""
    path = tmp_path / "alarms.json"
    path.write_text(content)
    assert AlarmStore(path).load() == {}
    assert (tmp_path / "alarms.json.damaged").read_text() == content and not path.exists()


class Belt:
    """Frames whose brightness says what the fake model sees: dark = a gap (alert), light = flow (ok)."""

    name = "belt"

    def __init__(self, script: list[int], then_forever: int | None = None) -> None:
        self.script, self.then_forever, self.seq = script, then_forever, 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.seq < len(self.script):
            value = self.script[self.seq]
        elif self.then_forever is not None:
            value = self.then_forever
            time.sleep(0.002)
        else:
            return None
        self.seq += 1
        rng = np.random.default_rng(self.seq)
        pixels = np.clip(rng.normal(value, 30, (64, 80, 3)), 0, 255).astype(np.uint8)
        return Frame(pixels, self.seq, 100.0 + self.seq * 0.05, 1000.0 + self.seq)  # stamped at 20 fps: no timing luck

    def close(self) -> None:
        pass


FAST = {"levels": {"window_s": 0.001, "dwell_s": 0.0, "min_frames": 2}, "health": {"dark_level": 1.0, "blur_level": 0.0}}


def alarm_changes(publisher: RecordingPublisher) -> list[tuple[str, str]]:
    return [(str(c.previous), str(c.alarm.state)) for c in publisher.changes if isinstance(c, AlarmChanged)]


def test_the_daemon_raises_clears_and_takes_acknowledgements_from_another_thread(tmp_path: Path) -> None:
    """alert -> active_unacknowledged; an operator's ack through call_soon -> active_acknowledged (an event with who
    and when); flow back -> normal; the records reach the state directory."""
    config = parse_config(FAST, check_files=False)
    publisher, store = RecordingPublisher(), AlarmStore(tmp_path / "alarms.json")
    belt = Belt([200] * 10 + [20] * 10, then_forever=20)
    daemon = Daemon(DaemonParts(config, FakeClassifier.darkness(), belt, publisher, alarm_store=store, wall_clock=lambda: 5000.0))
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert publisher.wait_for(lambda p: (N, AU) in alarm_changes(p), 10)
        acked = daemon.call_soon(lambda: daemon.acknowledge("belt", "alice")).result(10)
        assert (acked.state, acked.acked_by, acked.acked_at) == (AA, "alice", 5000.0)
        with pytest.raises(AcknowledgeRefused, match="already acknowledged by alice"):
            daemon.call_soon(lambda: daemon.acknowledge("belt", "bob")).result(10)
        with pytest.raises(AcknowledgeRefused, match="unknown roi 'nope'"):
            daemon.call_soon(lambda: daemon.acknowledge("nope", "bob")).result(10)
        belt.then_forever = 200  # the gap closes
        assert publisher.wait_for(lambda p: (AA, N) in alarm_changes(p), 10)
    finally:
        daemon.stop.set()
        runner.join(10)
    ack = next(c for c in publisher.changes if isinstance(c, AlarmChanged) and c.alarm.state == AA)
    assert ack.reason == "acknowledged by alice" and str(ack.level) == "alert"
    assert publisher.states[-1].alarm("belt").state == N
    assert json.loads((tmp_path / "alarms.json").read_text())["alarms"]["belt"]["acked_by"] == "alice"


def test_an_unacknowledged_alarm_survives_a_restart(tmp_path: Path) -> None:
    """Alarm raised and cleared but never acknowledged: after a restart it is still returned_unacknowledged,
    and the operator can acknowledge it then."""
    config = parse_config(FAST, check_files=False)
    first = RecordingPublisher()
    daemon = Daemon(DaemonParts(config, FakeClassifier.darkness(), Belt([200] * 6 + [20] * 6 + [200] * 6), first,
                                alarm_store=AlarmStore(tmp_path / "alarms.json")))
    assert daemon.run() == 0
    assert alarm_changes(first) == [(N, AU), (AU, RU)]
    second = RecordingPublisher()
    restarted = Daemon(DaemonParts(config, FakeClassifier.darkness(), Belt([200] * 3), second,
                                   alarm_store=AlarmStore(tmp_path / "alarms.json")))
    assert restarted.state.alarm("belt").state == RU
    assert restarted.acknowledge("belt", "night shift").state == N
    assert alarm_changes(second) == [(RU, N)]
