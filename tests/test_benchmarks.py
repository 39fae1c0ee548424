"""The benchmark harness runs, and the XNNPACK finding it reports holds (a fact about the graph, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUNDLED_MODEL, REPO


def test_interp_harness_reports_timings_and_delegate_nodes(runtime_name: str) -> None:
    """LiteRT hands the int8 graph to XNNPACK (delegate nodes); tflite-runtime 2.14 leaves it on its own kernels."""
    result = subprocess.run([sys.executable, "benchmarks/interp.py", runtime_name, "20", "3", f"int8={BUNDLED_MODEL}"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    measured = data["int8_threads1"]
    assert measured["ms"]["n"] == 3 and measured["ms"]["median"] > 0 and measured["gmac_per_s"] > 0
    if runtime_name == "ai_edge_litert":
        assert measured["delegate_nodes"] >= 1
    if runtime_name == "tflite_runtime":
        assert measured["delegate_nodes"] == 0


def test_replay_camera_counts_and_stamps_frames() -> None:
    """The benchmark's replay source yields exactly `count` frames, cycling through its pattern."""
    import numpy as np

    from benchmarks.replay import ReplayCamera

    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(2)]
    camera = ReplayCamera(frames, count=5, pattern=[1, 1, 0])
    camera.open()
    got = []
    while (frame := camera.read()) is not None:
        got.append(int(frame.pixels[0, 0, 0]))
    assert got == [1, 1, 0, 1, 1] and sorted(camera.captured) == [0, 1, 2, 3, 4]
    assert Path(REPO / "benchmarks" / "run.py").exists()


def test_op_slicing_covers_every_op_once_and_each_slice_runs(runtime_name: str) -> None:
    """Each op of the bundled model becomes a runnable one-op model; together they are the whole graph."""
    import numpy as np

    from benchmarks.ops import layer_names, macs_of, op_names, segments, slice_model
    from edge.inference import load_runtime

    data = BUNDLED_MODEL.read_bytes()
    if runtime_name != "ai_edge_litert":  # the profiler cuts models with LiteRT's flatbuffer tools
        with pytest.raises(ModuleNotFoundError, match="ai_edge_litert"):
            segments(data)
        return
    groups = segments(data)
    assert sorted(i for g in groups for i in g) == list(range(len(op_names(data))))
    names = layer_names(data, groups)
    assert names[0] == "quantize (input)" and "conv_2d#2" in names and "flatten" in names and names[-1] == "quantize (output)"
    # The alert path (Conv32, Conv32, Dense128, Dense1) plus the scene head on the shared convolutions (~9% more).
    alert_path = 3_321_216 + 7_750_656 + 802_816 + 128
    total = sum(macs_of(data, g) for g in groups)
    assert total == macs_of(data, list(range(len(op_names(data)))))
    assert 1.03 * alert_path < total < 1.15 * alert_path
    runtime = load_runtime(runtime_name)
    for group in groups:
        interp = runtime.plain_interpreter(slice_model(data, group))
        interp.allocate_tensors()
        for detail in interp.get_input_details():
            interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interp.invoke()
        assert interp.get_output_details()[0]["shape"].size >= 1


@pytest.mark.parametrize(("cpuinfo", "arch", "expected"), [
    ("model name\t: AMD EPYC 9R45\nflags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni\n", "x86_64", "x86-vnni"),
    ("model name\t: AMD EPYC 7R13 Processor\nflags\t\t: fpu sse2 avx avx2 fma f16c\n", "x86_64", "x86-avx2"),
    ("model name\t: Intel Alder Lake\nflags\t\t: avx2 fma avx_vnni\n", "x86_64", "x86-vnni"),
    ("Features\t: fp asimd evtstrm crc32 cpuid\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "aarch64", "arm-neon"),
    ("Features\t: fp asimd asimddp lrcpc\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n", "aarch64", "arm-dotprod"),
])
def test_isa_class_from_cpuinfo(cpuinfo: str, arch: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """AVX-512 VNNI or AVX-VNNI -> x86-vnni; AVX2 alone -> x86-avx2; Arm dot product or not."""
    import platform

    from benchmarks.isa import cpu_facts

    monkeypatch.setattr(platform, "machine", lambda: arch)
    facts = cpu_facts(cpuinfo)
    assert facts["isa_class"] == expected and facts["cpu"] != "unknown"


def test_bars_follow_the_isa_class() -> None:
    """VNNI binds int8 >= 2x float32; AVX2 binds the start-up choice and 'never slower than float', the 1.2x only informs."""
    from benchmarks.run import class_bars

    ms = {"int8": 0.33, "dynamic": 0.19, "float32": 0.25}
    avx2 = class_bars("x86-avx2", "here", ms, "dynamic", "XNNPACK")
    int8_bar = next(c for c in avx2 if c[0].startswith("int8 vs float32"))
    assert int8_bar[3] == 1.2 and int8_bar[5] is False and "docs/performance.md" in int8_bar[6]
    binding = [c for c in avx2 if c[5]]
    assert {c[0].split(" (")[0] for c in binding} == {"deployed form", "start-up choice"}
    deployed = next(c for c in binding if c[0].startswith("deployed form"))
    assert deployed[3] == 1.0 and abs(deployed[1] - 0.25 / 0.19) < 1e-9
    wrong = class_bars("x86-avx2", "here", ms, "int8", "XNNPACK")
    assert next(c for c in wrong if c[0].startswith("start-up choice"))[1] > 1.1  # a wrong choice fails its bar
    vnni = class_bars("x86-vnni", "here", {**ms, "int8": 0.06}, "int8", "XNNPACK")
    int8_vnni = next(c for c in vnni if c[0].startswith("int8 vs float32"))
    assert (int8_vnni[1], int8_vnni[3], int8_vnni[5]) == (0.25 / 0.06, 2.0, True)


@pytest.mark.broker
def test_end_to_end_latency_comes_from_every_event_asked_for(mosquitto, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The capture -> subscriber figure measures the output path on the bundled model, whatever model the bench built:
    `make bench-quick`'s 3-epoch model did not tell the ok frames from the alert ones, so one event of 40 was
    measured and its p99 (32.6 ms, a cold first event) was reported as the bar."""
    from benchmarks.pipeline import end_to_end

    result = end_to_end(mosquitto.port, tmp_path, 12)
    assert result["asked"] == 12 and result["events"] >= 12, result
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_an_end_to_end_figure_from_fewer_events_than_asked_is_a_missed_bar() -> None:
    from benchmarks.run import end_to_end_checks

    short = {"events": 1, "asked": 40, "p50_ms": 2.5, "p99_ms": 2.5}
    counted = {check[0]: check for check in end_to_end_checks(short)}
    events = next(check for name, check in counted.items() if name.startswith("end-to-end events measured"))
    assert events[1] == 1 / 40 and events[2:4] == (">=", 1.0)
    full = {check[0]: check[1] for check in end_to_end_checks({**short, "events": 41})}
    assert full[events[0]] >= 1.0 and full["end-to-end p99 (ms)"] == 2.5


def test_framing_reads_each_belt_against_its_truth_and_names_the_warned_ones() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.framing", "--seeds", "201-202"], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["belts"] == 2 and [b["seed"] for b in data["per_belt"]] == [201, 202]
    [warned] = data["warned"]
    assert warned["seed"] == 202 and abs(warned["reading"] / warned["truth"] - 1) < 0.05 and warned["truth"] < 3.5


def test_avx2_emulation_masks_only_the_flags_above_avx2() -> None:
    """On an x86 CPU above AVX2, XNNPACK's flag word keeps SSE..AVX2 and loses AVX-512/VNNI; elsewhere it says why not."""
    result = subprocess.run([sys.executable, "-c", "import json; from benchmarks.isa import emulate_avx2, EmulationUnavailable\n"
                             "try:\n    print(json.dumps(emulate_avx2()))\nexcept EmulationUnavailable as e:\n"
                             "    print(json.dumps({'why': str(e)}))"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    if "why" in data:
        assert data["why"]  # a named reason (no AVX2, not this LiteRT build, no nm)
    else:
        before, after = int(data["arch_flags_before"], 16), int(data["arch_flags_after"], 16)
        assert after == before & 0xFF and after & (1 << 7)  # AVX2 kept, everything above cleared


def test_gap_belts_runs_a_belt_through_the_daemon_and_judges_its_levels() -> None:
    """One simulator belt with an 8 s gap through the real daemon: the bundled model on seed 100 reads exactly
    ok -> alert -> ok, with the alert inside the gap; a bad seed range is one clear error."""
    import argparse

    from benchmarks.gap_belts import GAP_AT_S, run_belt, seed_range

    belt = run_belt((str(BUNDLED_MODEL), 100, 8.0))
    assert belt["passed"] and [(c["from"], c["to"]) for c in belt["changes"]] == [("ok", "alert"), ("alert", "ok")]
    assert GAP_AT_S < belt["changes"][0]["t"] < GAP_AT_S + 3.0 < belt["changes"][1]["t"]
    assert seed_range("161-163") == [161, 162, 163] and seed_range("7") == [7]
    with pytest.raises(argparse.ArgumentTypeError, match="expected FIRST-LAST"):
        seed_range("a-b")


def test_belt_stops_times_the_stop_of_a_starved_belt_and_counts_false_stops() -> None:
    """One simulator belt that runs empty and then stops, through the real daemon: the stop is reported after it
    and within 3 s; on the same belt with a gap and no stop, nothing is reported; a bad scenario is one clear error."""
    import argparse

    from benchmarks.belt_stops import REPORT_WITHIN_S, run_belt, scenario_list, summarise

    starved = run_belt((str(BUNDLED_MODEL), "starved", 104))
    assert starved["reported_after_s"] is not None and 0.0 <= starved["reported_after_s"] <= REPORT_WITHIN_S, starved
    assert starved["false_stops"] == []
    moving = run_belt((str(BUNDLED_MODEL), "gap_moving", 104))
    assert moving["false_stops"] == [] and moving["reported_after_s"] is None
    summary = summarise([starved, moving, {**starved, "seed": 105, "reported_after_s": None}])
    assert summary["starved"]["within_3_s"] == 1 and summary["starved"]["never"] == [105]
    assert summary["gap_moving"] == {"belts": 1, "false_stops": {}}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown scenario stalled; expected some of full"):
        scenario_list("full,stalled")


def test_lane_gaps_judges_the_gap_lanes_roi_the_other_lanes_and_the_whole_belt() -> None:
    """One simulator belt whose middle lane in view has an 8 s gap, a ROI per lane, through the real daemon: on
    seed 162 the bundled model raises that lane's alert once and nothing else; the summary counts each check. With
    the lane empty from the start (seed 170, its view held in doubt) the lane reads unknown, not a stale ok."""
    from benchmarks.gap_belts import GAP_AT_S
    from benchmarks.lane_gaps import run_belt, summarise

    belt = run_belt((str(BUNDLED_MODEL), 162, 8.0))
    assert belt["lane"] and belt["other_lanes"] and not belt["belt_alert"] and not belt["belt_unknown"], belt
    assert list(belt["changes"]) == [belt["roi"]] and GAP_AT_S < belt["changes"][belt["roi"]][0]["t"] < GAP_AT_S + 3.0
    summary = summarise([belt, {**belt, "seed": 5, "lane": False}, {**belt, "seed": 6, "belt_alert": True}])
    assert (summary["belts"], summary["lane_passed"], summary["other_lanes_passed"], summary["belt_alert"]) == (3, 2, 3, 1)
    assert summary["lane_alerted"] == 3 and summary["alert_after_s"]["max"] == belt["alert_after_s"] > 0.0
    assert [b["seed"] for b in summary["failed"]] == [5, 6]
    empty = run_belt((str(BUNDLED_MODEL), 170, None))  # the lane empty from the start, held in doubt by the head
    assert not empty["stale_ok"] and not empty["lane"] and empty["changes"][empty["roi"]][0]["to"] == "unknown", empty
    assert summarise([empty, {**empty, "stale_ok": True}])["stale_ok"] == 1


def test_held_stills_judges_a_still_held_after_a_running_belt_and_counts_alerts_per_variant_and_case() -> None:
    """The second renderer's covered-lens still on seed 0, held after 4 s of a running belt, through the real daemon:
    it raised an alert before gaps on still views were refused; now it never alerts and its end reads unknown. The
    summary counts alerts and unknown shares per variant and case."""
    from benchmarks.held_stills import run_still, summarise

    run = run_still((str(BUNDLED_MODEL), 0, "covered_lens", "after"))
    assert not run["alert"] and run["unknown_share"] == 1.0, run
    assert ("ok", "unknown") in [(a, b) for _, a, b in run["changes"]]
    summary = summarise([run, {**run, "seed": 5, "alert": True, "unknown_share": 0.0},
                         {**run, "case": "half_covered", "variant": "start", "unknown_share": 0.0}])
    assert (summary["runs"], summary["alerted"], summary["unknown_share"]) == (3, 1, 0.5)
    assert summary["by_variant"]["after"]["covered_lens"]["alert_seeds"] == [5]
    assert summary["by_variant"]["start"]["half_covered"]["runs"] == 1


def test_held_stills_slides_show_a_new_still_each_second_and_the_other_variants_one() -> None:
    import numpy as np

    from benchmarks.held_stills import FPS, HeldStill

    def change(stream: HeldStill, a: int, b: int) -> float:
        return float(np.abs(stream.frame(a).astype(np.int16) - stream.frame(b).astype(np.int16)).mean())

    slides, after = HeldStill(3, "hand", "slides"), HeldStill(3, "hand", "after")
    first = slides.before
    assert change(slides, first, first + int(FPS)) > 10.0, "a new still after a second"
    assert change(slides, first, first + int(FPS) - 1) < 5.0, "within the second, the same still and its noise"
    assert change(after, first, first + int(3 * FPS)) == 0.0
    assert change(slides, first, first) < 5.0 and np.array_equal(slides.stills[0], after.stills[0])


def test_held_stills_refuses_an_unknown_variant_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.held_stills", "--variants", "after,sideways"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "held_stills: --variants 'after,sideways': expected a comma-separated list of after, noisy, slides, start"]


def test_unrelated_stills_draws_a_new_picture_a_frame_in_order_and_counts_only_the_scripted_changes_as_clean() -> None:
    import numpy as np

    from benchmarks.unrelated_stills import FPS, StillsStream, summarise

    stream = StillsStream(3, 2)
    assert len(stream.truth) == int(22 * FPS) and stream.gap_starts() == [int(6 * FPS), int(14 * FPS)]
    first, second = stream.frame(0), stream.frame(1)
    assert first.shape == (240, 320, 3) and float(np.abs(first.astype(np.int16) - second).mean()) > 10.0
    with pytest.raises(ValueError, match="frame 5 asked for, expected frame 2"):
        stream.frame(5)
    clean = {"seed": 1, "alerts": 2, "recoveries": 2, "gaps_alerted": 2, "other": []}
    summary = summarise([clean, {**clean, "seed": 2, "other": [(3.0, "ok", "unknown")]},
                         {**clean, "seed": 3, "alerts": 1, "recoveries": 1, "gaps_alerted": 1}], 2)
    assert (summary["streams"], summary["exactly_as_scripted"], summary["gaps_alerted"], summary["gaps"]) == (3, 1, 5, 6)
    assert summary["streams_with_other_changes"] == 1 and [r["seed"] for r in summary["not_as_scripted"]] == [2, 3]


def test_unrelated_stills_refuses_no_gaps_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "benchmarks.unrelated_stills", "--gaps", "0"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["unrelated_stills: --gaps 0: expected 1 or more"]


@pytest.mark.parametrize(("command", "name"), [(["-m", "benchmarks.gap_belts", "--model"], "gap_belts"),
                                             (["-m", "benchmarks.belt_stops", "--model"], "belt_stops"),
                                             (["-m", "benchmarks.lane_gaps", "--model"], "lane_gaps"),
                                             (["-m", "benchmarks.held_stills", "--model"], "held_stills"),
                                             (["-m", "benchmarks.unrelated_stills", "--model"], "unrelated_stills"),
                                             (["benchmarks/detection.py"], "detection")])
def test_a_missing_model_is_one_line_and_exit_2(command: list[str], name: str, tmp_path: Path) -> None:
    """The benchmarks check the model before their worker processes start: one line naming the file, no traceback."""
    missing = tmp_path / "nope.tflite"
    result = subprocess.run([sys.executable, *command, str(missing)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"{name}: {missing}: model file not found"]
