"""``make bench``: everything measured side by side in one run on this machine.

    python -m benchmarks.run [--quick] [--out bench-results]

1. interpreter latency, int8 vs its dynamic-range variant vs float32, per runtime, 1 thread and all
   cores, measured interleaved (with XNNPACK delegate nodes)
2. the float Keras model per frame (model.predict and a direct call) vs our int8 pipeline
3. the daemon's pipeline on pre-decoded 640x480 frames: frames/s, per-stage ms, CPU per frame, CPU % at 30 fps
4. end-to-end latency through a real Mosquitto: frame capture -> subscriber receives the event
5. peak RSS of the daemon process and time from start to first inference
6. model sizes and test-set accuracy, float vs int8
7. the output side: flash bytes and syncs per day (idle, per event), backlog drain rate, new-event latency while draining
8. where int8 wins or loses, op by op (benchmarks/ops.py): on this CPU, on an AVX2-only CPU emulated
   here (XNNPACK's ISA flags masked; benchmarks/isa.py) and as instruction counts under valgrind
9. the daemon's start-up model choice (edge.model_choice), here and on the emulated AVX2 class
10. camera-side cost of MJPEG frames (read + decode + preprocess) against inference (benchmarks/camera.py)
11. the commissioning console's cost to the daemon: CPU idle and with one live viewer, memory (benchmarks/console.py)
12. detection over a simulated hour from the second renderer (benchmarks/detection.py), with the bundled model

Every figure is printed beside the CPU's ISA class and the runtime's delegate; the bars are set per
ISA class (benchmarks/isa.py). JSON: bench-results/latest.json ("bars" is what a reviewer reads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
VENVS = {"main": REPO / ".venv" / "bin" / "python", "tflite": REPO / ".venv-tflite" / "bin" / "python"}
MACS = 11_900_000


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith(("model name", "Model")))
    except (OSError, StopIteration):
        pass

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    from benchmarks.isa import cpu_facts

    facts = cpu_facts()
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "isa": facts["isa"], "isa_class": facts["isa_class"],
            "numpy": np.__version__, "ai-edge-litert": version("ai-edge-litert"), "tensorflow-cpu": version("tensorflow-cpu"),
            "keras": version("keras"), "paho-mqtt": version("paho-mqtt"), "simplejpeg": version("simplejpeg"),
            "kernel": platform.release()}


def run_json(python: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    result = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:1])} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def build_models(work: Path, quick: bool) -> dict[str, Path]:
    """A float Keras model, its float32 .tflite and its int8 .tflite: one network, three forms (cached)."""
    from converter.gate import GateOptions
    from converter.model import load_source_model
    from converter.package import PackageOptions, package_model
    from converter.quantize import convert_float
    from converter.synth import write_dataset
    from converter.train import TrainOptions, train

    key = "quick" if quick else "full"
    root = work / key
    paths = {"data": root / "data", "keras": root / "float" / "conveyor_cnn.keras",
             "int8": root / "conveyor_int8.tflite", "float32": root / "conveyor_float32.tflite",
             "dynamic": root / "conveyor_int8.dynamic.tflite"}
    if all(p.exists() for p in paths.values()):
        return paths
    train_n, test_n, epochs = (400, 200, 3) if quick else (2000, 600, 10)
    if not paths["keras"].exists():
        write_dataset(paths["data"], train_n, test_n, seed=11)
        train(paths["data"], root / "float", TrainOptions(epochs=epochs, seed=11))
    # The same network as the product's (alert path + scene head); figures here are about speed and size, not
    # the gate (opened wide here; the product's gate is the converter's). Also writes the dynamic-range variant.
    package_model(paths["keras"], paths["data"], paths["int8"],
                  PackageOptions(gate=GateOptions(0.0, 0.0, 0.0, 1.0, 1.0, 0.0)))
    paths["float32"].write_bytes(convert_float(load_source_model(paths["keras"])))
    return paths


def build_int8_io(paths: dict[str, Path]) -> Path:
    """The same network as full-integer int8 with int8 (not uint8) input and output (converter.int8_layout)."""
    from converter.dataset import TRAIN, balanced_sample, check_layout, load_split
    from converter.int8_layout import Int8Layout
    from converter.model import load_source_model
    from converter.quantize import convert_int8

    out = paths["int8"].with_name("conveyor_int8_int8io.tflite")
    if not out.exists():
        calibration = balanced_sample(load_split(check_layout(paths["data"]), TRAIN), 300, 1234)
        out.write_bytes(convert_int8(load_source_model(paths["keras"]), calibration, Int8Layout(io_dtype="int8")))
    return out


def keras_per_frame(keras_path: Path, quick: bool) -> dict[str, Any]:
    import keras

    from benchmarks.stats import per_call_ms

    model = keras.models.load_model(keras_path)
    x = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    calls, repeats = (10, 3) if quick else (30, 5)
    return {"predict_ms": per_call_ms(lambda: model.predict(x, verbose=0), calls, repeats, warmup=5),
            "direct_call_ms": per_call_ms(lambda: model(x, training=False), calls * 3, repeats, warmup=5)}


def accuracy(paths: dict[str, Path]) -> dict[str, Any]:
    from converter.dataset import TEST, check_layout, load_split
    from converter.evaluate import metrics, score
    from edge.inference import Classifier, load_runtime
    from edge.preprocess import PIXEL_SCALE

    test = load_split(check_layout(paths["data"]), TEST)
    test = test.subset(np.flatnonzero(test.belt))
    runtime = load_runtime("auto")
    int8 = score(Classifier.from_files(paths["int8"], runtime), test.images).alert
    interp = runtime.interpreter_class(model_path=str(paths["float32"]))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    float_probs = []
    for image in test.images:
        interp.set_tensor(inp, image[None].astype(np.float32) * np.float32(PIXEL_SCALE))
        interp.invoke()
        float_probs.append(float(interp.get_tensor(out).reshape(-1)[0]))  # column 0: alert
    return {"test_images": len(test.labels),
            "float32_tflite": metrics(test.labels, (np.asarray(float_probs) >= 0.5).astype(np.int32))["accuracy"],
            "int8_tflite": metrics(test.labels, (int8 >= 0.5).astype(np.int32))["accuracy"],
            "size_bytes": {"float32": paths["float32"].stat().st_size, "int8": paths["int8"].stat().st_size,
                           "dynamic": paths["dynamic"].stat().st_size if paths["dynamic"].exists() else 0}}


# --- issue 14: ops, AVX2 emulation, model choice, camera side; bars per ISA class -----------------------
def op_profiles(paths: dict[str, Path], native_class: str, quick: bool) -> dict[str, Any]:
    """Per-op profiles: native, emulated AVX2 (on a CPU above AVX2), and valgrind instruction counts."""
    models = [f"{label}={paths[label]}" for label in ("int8", "float32", "dynamic")]
    rounds = "15" if quick else "41"
    out: dict[str, Any] = {"rounds": int(rounds), "native": run_json(VENVS["main"], "benchmarks/ops.py", "--rounds", rounds, *models)}
    if native_class == "x86-vnni":
        out["emulated_avx2"] = run_json(VENVS["main"], "benchmarks/ops.py", "--emulate-avx2", "--rounds", rounds, *models)
    out["callgrind_avx2"] = run_json(VENVS["main"], "benchmarks/ops.py", "--callgrind", *models, timeout=1800)
    out["perf_native"] = run_json(VENVS["main"], "benchmarks/ops.py", "--perf", *models)
    return out


def model_choices(paths: dict[str, Path], native_class: str) -> dict[str, Any]:
    out = {"native": run_json(VENVS["main"], "benchmarks/choice.py", str(paths["int8"]))}
    if native_class == "x86-vnni":
        out["emulated_avx2"] = run_json(VENVS["main"], "benchmarks/choice.py", "--emulate-avx2", str(paths["int8"]))
    return out


# On these classes the int8 model must beat float32 by this factor at 1 thread (issue 14). On classes
# without an 8-bit dot product (x86-avx2, arm-neon) XNNPACK's int8 kernels cannot get there (per-op
# evidence and the ISA bound in docs/performance.md): the issue's 1.2x is reported there for
# information, and what binds is that the daemon picks the fastest form it has and is never slower
# than the float32 model.
INT8_OVER_FLOAT = {"x86-vnni": 2.0, "arm-dotprod": 1.2}
ISSUE_TARGET = 1.2
CHOICE_SLACK = 1.10  # the start-up choice may be at most 10% slower than the faster form
NO_DOT_PRODUCT_NOTE = "informational: not reachable with XNNPACK's int8 kernels without an 8-bit dot product (docs/performance.md)"

Check = tuple[str, float, str, float, str, bool, str]  # name, value, op, target, unit, binding, note


def class_bars(isa_class: str, where: str, ms: dict[str, float], chosen: str | None, delegate: str) -> list[Check]:
    """Bars for one machine class from per-invoke ms of int8, dynamic and float32 at 1 thread, and the choice made."""
    checks: list[Check] = []
    dot = isa_class in INT8_OVER_FLOAT
    checks.append((f"int8 vs float32 at 1 thread [{where}; {delegate}]", ms["float32"] / ms["int8"], ">=",
                   INT8_OVER_FLOAT.get(isa_class, ISSUE_TARGET), "x", dot, "" if dot else NO_DOT_PRODUCT_NOTE))
    if chosen is not None:
        form_ms = ms[chosen]
        if not dot:
            name = f"deployed form ({chosen}, chosen at start-up) vs float32 at 1 thread [{where}; {delegate}]"
            checks.append((name, ms["float32"] / form_ms, ">=", 1.0, "x", True, "never slower than the float model"))
            checks.append((name, ms["float32"] / form_ms, ">=", ISSUE_TARGET, "x", False, "informational: the issue's target"))
        checks.append((f"start-up choice ({chosen}) ms / fastest form ms [{where}]", form_ms / min(ms["int8"], ms["dynamic"]),
                       "<=", CHOICE_SLACK, "", True, ""))
    return checks


def end_to_end_checks(e2e: dict[str, Any]) -> list[tuple[str, float, str, float, str]]:
    """The capture -> subscriber bar, and beside it whether its figure comes from as many events as were asked for
    (a p99 of one event is no p99)."""
    return [("end-to-end events measured / asked", e2e["events"] / e2e["asked"], ">=", 1.0, ""),
            ("end-to-end p99 (ms)", e2e["p99_ms"], "<", 20.0, "")]


def bars(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues' bars, each with its measured value, the ISA class and the CPU it was measured on."""
    m = r["machine"]
    litert = r["interpreters"]["ai_edge_litert"]
    # The form-vs-form bars use the whole-model figures of benchmarks/ops.py, for this CPU and the emulated
    # class alike: the fastest of many short interleaved blocks, which load from other jobs on a shared
    # machine can only push up (the interpreter table's medians are printed beside them).
    native_ms = {label: r["ops"]["native"][label]["whole_ms"] for label in ("int8", "float32", "dynamic")}
    delegate = f"LiteRT {litert['version']} XNNPACK ({litert['int8_threads1']['delegate_nodes']} delegate partitions)"
    native_where = f"{m['isa_class']}: {m['cpu']}"
    pipeline_ms = r["pipeline"]["unthrottled"]["ms_per_frame"]
    # The daemon runs model.num_threads = 1 (see README): compare with the bare invoke at that setting.
    deployed = r["choice"]["native"]["form"] if r["choice"]["native"].get("available") else "int8"
    # Compare the pipeline with the bare invoke of the form *it* ran (its own start-up choice).
    same_threads = litert[f"{r['pipeline'].get('form', 'int8')}_threads{r['pipeline']['unthrottled']['threads']}"]["ms"]["median"]
    checks: list[tuple[str, float, str, float, str, bool, str, str]] = [
        (*check, native_where) for check in class_bars(m["isa_class"], native_where, native_ms, deployed, delegate)]
    emulated = r["ops"].get("emulated_avx2", {})
    if emulated.get("available"):
        ems = {label: emulated[label]["whole_ms"] for label in ("int8", "float32", "dynamic")}
        echoice = r["choice"].get("emulated_avx2", {})
        where = f"x86-avx2 emulated on {m['cpu']}"
        checks += [(*check, where) for check in class_bars("x86-avx2", where, ems, echoice.get("form"), delegate)]
    checks += [(*check, True, "", native_where) for check in [
        ("int8 pipeline vs Keras model.predict per frame", r["keras"]["predict_ms"]["median"] / pipeline_ms, ">=", 30.0, "x"),
        ("daemon 640x480 throughput / bare invoke throughput (deployed form, same threads)", same_threads / pipeline_ms, ">=", 0.5, ""),
        ("daemon peak RSS (MB, LiteRT, evidence recorder off)", r["process"]["ai_edge_litert"]["peak_rss_mb_evidence_off"],
         "<", 80.0, ""),
        ("start to first inference (s, LiteRT)", r["process"]["ai_edge_litert"]["start_to_first_inference_s"], "<", 1.0, ""),
        *end_to_end_checks(r["pipeline"]["end_to_end"]),
        ("idle storage writes (MB/day, 15 fps, telemetry every 10 s)", r["output"]["storage"]["idle"]["bytes_per_day"] / 1e6,
         "<=", 20.0, ""),
        ("backlog drain (events/s, 50,000 stored)", r["output"]["drain"]["events_per_s"], ">=", 1000.0, ""),
        ("new event while the backlog drains, p99 (ms)", r["output"]["drain"]["live_latency_ms"]["p99"], "<=", 1000.0, ""),
        ("console enabled and idle: daemon CPU above the console off (% of a core)",
         r["console"]["console_cpu_percent"]["idle"], "<=", 1.0, ""),
        ("console with one live viewer: daemon CPU above the console off (% of a core)",
         r["console"]["console_cpu_percent"]["viewer"], "<=", 10.0, ""),
        ("console: daemon RSS above the console off (MB)", r["console"]["console_rss_mb"], "<=", 15.0, ""),
    ]]
    camera = r["camera"]["sizes"]
    for size in ("640x480", "1280x720"):
        c = camera[size]
        inference = c["ms"].get("inference_deployed", c["ms"]["inference_int8"]) if deployed != "int8" else c["ms"]["inference_int8"]
        best = min(c["camera_side_ms"].values())
        checks.append((f"MJPEG {size} camera-side ms (read + reduced decode + preprocess) / inference ms", best / inference,
                       "<=", 1.0, "", True, "", native_where))
    out = []
    for name, value, op, target, unit, binding, note, where in checks:
        ok = value >= target if op == ">=" else value <= target if op == "<=" else value < target
        out.append({"bar": name, "value": value, "target": f"{op} {target}{unit}", "met": ok, "binding": binding, "note": note,
                    "measured_on": where, "isa_class": where.split(":")[0].split(" emulated")[0], "emulated": "emulated" in where})
    out += [{**bar, "bar": f"detection hour: {bar['bar']}", "binding": True, "note": "", "measured_on": native_where,
             "isa_class": native_where.split(":")[0], "emulated": False} for bar in r.get("detection", {}).get("bars", [])]
    return out


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    tag = f"[{m['isa_class']}: {' '.join(m['isa'])}]"
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), {m['machine']}, ISA class {m['isa_class']} ({' '.join(m['isa'])}), "
             f"Python {m['python']}", "",
             "interpreter latency per invoke (median ms [IQR], interleaved), GMAC/s, delegate:"]
    for name, data in r["interpreters"].items():
        for key in sorted((k for k in data if k.startswith(("int8", "float32", "dynamic"))), key=lambda k: (k.split("_threads")[1], k)):
            x = data[key]
            if "unavailable" in x:
                lines.append(f"  {name:15s} {data['version']:8s} {key:18s} not loadable: {x['unavailable']}")
                continue
            delegate = f"XNNPACK x{x['delegate_nodes']}" if x["delegate_nodes"] else "none (builtin kernels)"
            lines.append(f"  {name:15s} {data['version']:8s} {key:18s} {x['ms']['median']:8.3f} ms [{x['ms']['iqr']:.3f}]"
                         f"  {x['gmac_per_s']:6.1f} GMAC/s  delegate: {delegate}  {tag}")
    lines += ["", *ops_table(r)]
    for key, c in r["choice"].items():
        if c.get("available"):
            lines.append(f"start-up model choice ({'x86-avx2 emulated' if key != 'native' else m['isa_class']}): "
                         f"{c['form']} ({c['reason'].split(' (')[0]})")
    k = r["keras"]
    p = r["pipeline"]
    lines += ["", f"Keras float model.predict per frame: {k['predict_ms']['median']:.2f} ms; "
              f"direct call: {k['direct_call_ms']['median']:.2f} ms {tag}",
              f"daemon pipeline, unthrottled, 640x480 replay ({p['runtime']}, {p.get('form', 'int8')} model): "
              f"{p['unthrottled']['fps']:.0f} frames/s, "
              f"{p['unthrottled']['ms_per_frame']:.3f} ms/frame in the steady frame loop, "
              f"CPU {p['unthrottled']['cpu_ms_per_frame']:.3f} ms/frame including start-up {tag}",
              "  per stage (ms/frame): " + ", ".join(f"{s} {v:.3f}" for s, v in p["unthrottled"]["stage_ms"].items()),
              f"daemon at a fixed 30 frames/s: {p['fixed_30fps']['cpu_percent_of_one_core']:.1f}% of one core {tag}",
              f"end-to-end capture -> subscriber ({p['end_to_end']['events']} of {p['end_to_end']['asked']} events, "
              f"{p['end_to_end']['model']}, via {p['broker'].split(' ')[0]}): "
              f"p50 {p['end_to_end']['p50_ms']:.2f} ms, p99 {p['end_to_end']['p99_ms']:.2f} ms {tag}"]
    st, dr = r["output"]["storage"], r["output"]["drain"]

    def syncs(v: float | None) -> str:
        return "n/a (no strace)" if v is None else f"{v:,.0f}"

    lines += [f"storage, idle daemon: {st['idle']['bytes_per_day'] / 1e6:.2f} MB/day, {syncs(st['idle']['syncs_per_day'])} syncs/day {tag}",
              f"storage per event: {st['per_event']['bytes'] / 1e3:.1f} kB, {syncs(st['per_event']['syncs'])} sync(s); "
              f"at one event a minute: {st['one_event_a_minute']['bytes_per_day'] / 1e6:.2f} MB/day, "
              f"{syncs(st['one_event_a_minute']['syncs_per_day'])} syncs/day",
              f"backlog of {dr['rows']:,} events drained at {dr['events_per_s']:,.0f} events/s; new events meanwhile "
              f"({dr['live_received']}/{dr['live_events']} received): p50 {dr['live_latency_ms']['p50']:.1f} ms, "
              f"p99 {dr['live_latency_ms']['p99']:.1f} ms {tag}"]
    for name, proc in r["process"].items():
        lines.append(f"daemon process ({name}): first inference {proc['start_to_first_inference_s']:.2f} s after start, "
                     f"peak RSS {proc['peak_rss_mb']:.1f} MB as configured by default (evidence recorder on), "
                     f"{proc['peak_rss_mb_evidence_off']:.1f} MB with it off {tag}")
    co = r["console"]
    cpu, rss, fps = co["cpu_percent_of_a_core"], co["rss_mb"], co["fps"]
    lines.append(f"console ({co['source']}, median of {co['rounds']} x {co['window_s']:.0f} s side by side): daemon CPU "
                 f"off {cpu['off']:.2f}% / idle {cpu['idle']:.2f}% / one viewer {cpu['viewer']:.2f}% of a core, RSS "
                 f"{rss['off']:.1f} / {rss['idle']:.1f} / {rss['viewer']:.1f} MB, fps {fps['off']} / {fps['idle']} / {fps['viewer']}; "
                 f"the viewer got {co['viewer']['frames_per_s']:.1f} frames/s and {co['viewer']['live_events_per_s']:.1f} events/s {tag}")
    lines += ["", f"camera side, MJPEG (quality {r['camera']['jpeg']['quality']}, {r['camera']['jpeg']['subsampling']}), "
              f"ms per frame {tag}:"]
    for size, c in r["camera"]["sizes"].items():
        x = c["ms"]
        lines.append(f"  {size}: read {x['read_undecoded']:.3f}, decode full {x['decode_full']:.3f} / min side 128 "
                     f"(1/{c['scale_divisor']['min_side_128']}) {x['decode_min_side_128']:.3f} / min side 64 "
                     f"(1/{c['scale_divisor']['min_side_64']}) {x['decode_min_side_64']:.3f}, preprocess {x['preprocess']:.3f}; "
                     f"OpenCV-decoded read {x['read_opencv_decoded_rgb']:.3f}; inference int8 {x['inference_int8']:.3f}")
        effect = c["model_effect"]
        lines.append("     reduced decode vs full, model output: " + "; ".join(
            f"{k}: max |dp| {v['max_abs_probability_change']:.4f}, decisions agree {v['decision_agreement'] * 100:.0f}%"
            for k, v in effect.items()))
    if "detection" in r:
        d = r["detection"]
        lines += [f"detection, {d['hours']:.2f} h at 15 fps from the second renderer ({d['frames']} frames, {d['wall_s']:.0f} s): "
                  f"{d['gaps_with_exactly_one_alert']}/{d['gaps']} gaps with exactly one alert, {d['false_alerts']} false alerts, "
                  f"latency p50 {d['latency_s']['p50']} s p99 {d['latency_s']['p99']} s; stops reported {d['stops_reported']}/{d['stops']} "
                  f"(slowest {d['stop_delay_max_s']} s), false stops {d['false_stops']}; unknown scenes read unknown "
                  f"{d['unknown_scene_read_unknown']:.1%}, normal frames read unknown {d['normal_frames_read_unknown']:.2%}; "
                  f"scene judges cost {d['scene_cost_vs_inference']:.0%} of the invoke, belt motion {d['motion_cost_vs_inference']:.0%}"]
    a = r["accuracy"]
    lines += ["", f"model size: float32 {a['size_bytes']['float32'] / 1e6:.2f} MB, int8 {a['size_bytes']['int8'] / 1e6:.2f} MB "
              f"({a['size_bytes']['int8'] / a['size_bytes']['float32'] * 100:.0f}%), dynamic-range variant "
              f"{a['size_bytes'].get('dynamic', 0) / 1e6:.2f} MB; test accuracy "
              f"float32 {a['float32_tflite']:.4f}, int8 {a['int8_tflite']:.4f} ({a['test_images']} images)", "", "bars:"]
    for b in r["bars"]:
        status = ("met" if b["met"] else "MISSED") if b["binding"] else ("info: met" if b["met"] else "info: below")
        note = f" - {b['note']}" if b["note"] else ""
        lines.append(f"  [{status}] {b['bar']}: {b['value']:.3f} (target {b['target']}) <{b['measured_on']}>{note}")
    return "\n".join(lines)


def ops_table(r: dict[str, Any]) -> list[str]:
    """Per-op ms (and valgrind instructions) side by side: int8 / dynamic / float32."""
    lines = []
    views = [("native", r["ops"]["native"], f"{r['machine']['isa_class']} ({r['machine']['cpu']})")]
    if r["ops"].get("emulated_avx2", {}).get("available"):
        views.append(("emulated_avx2", r["ops"]["emulated_avx2"], "x86-avx2 emulated (XNNPACK ISA flags masked)"))
    for _, view, label in views:
        lines.append(f"per op, ms per invoke at 1 thread (fastest of {r['ops']['rounds']} interleaved blocks), one-op models, {label}:")
        lines.append(f"  {'layer':20s} {'MMAC':>6s} {'int8':>8s} {'dynamic':>8s} {'float32':>8s} {'int8/float':>10s}")
        layers: dict[str, dict[str, Any]] = {}
        for form in ("int8", "dynamic", "float32"):
            for layer in view[form]["layers"]:
                layers.setdefault(layer["layer"], {})[form] = layer
        for name, forms in layers.items():
            macs = max(f["macs"] for f in forms.values()) / 1e6
            cells = [f"{forms[f]['ms']:8.4f}" if f in forms else f"{'-':>8s}" for f in ("int8", "dynamic", "float32")]
            ratio = (f"{forms['int8']['ms'] / forms['float32']['ms']:10.2f}" if "int8" in forms and "float32" in forms else f"{'':10s}")
            undelegated = " (not delegated)" if any(not f["delegated"] for f in forms.values()) else ""
            lines.append(f"  {name:20s} {macs:6.2f} {' '.join(cells)} {ratio}{undelegated}")
        lines.append(f"  {'whole model':20s} {'':6s} {view['int8']['whole_ms']:8.4f} {view['dynamic']['whole_ms']:8.4f} "
                     f"{view['float32']['whole_ms']:8.4f} {view['int8']['whole_ms'] / view['float32']['whole_ms']:10.2f}")
    cg = r["ops"].get("callgrind_avx2", {})
    if cg.get("available"):
        lines.append(f"per op, instructions per invoke under valgrind (CPUID: {cg['cpuid_seen']}), and XNNPACK's kernels:")
        for form in ("int8", "dynamic", "float32"):
            for layer, d in cg["models"][form].items():
                kernels = ", ".join(cg_name for cg_name in d["kernels"]) or "-"
                lines.append(f"  {form:8s} {layer:20s} {d['instructions']:>10,d}  {kernels}")
    elif cg:
        lines.append(f"valgrind instruction counts: skipped ({cg.get('why')})")
    perf = r["ops"].get("perf_native", {})
    if perf.get("available"):
        lines.append(f"kernels on this CPU ({r['machine']['isa_class']}), % of perf samples while the whole model runs:")
        for form, kernels in perf["models"].items():
            lines.append(f"  {form:8s} " + ", ".join(f"{name} {share:.0f}%" for name, share in kernels.items()))
    elif perf:
        lines.append(f"native kernel names: skipped ({perf.get('why')})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a smaller model build (< 2 min)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    print("building the float/int8 model pair (cached)...", flush=True)
    paths = build_models(args.out / "work", args.quick)
    paths["int8_int8io"] = build_int8_io(paths)
    calls, repeats = ("200", "7") if args.quick else ("1000", "11")
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick,
                               "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "interpreters": {}, "process": {}}
    native_class = results["machine"]["isa_class"]
    print("interpreters...", flush=True)
    models = [f"{label}={paths[label]}" for label in ("int8", "int8_int8io", "dynamic", "float32")]
    for runtime, venv in (("ai_edge_litert", "main"), ("tensorflow", "main"), ("tflite_runtime", "tflite")):
        if VENVS[venv].exists():
            results["interpreters"][runtime] = run_json(VENVS[venv], "benchmarks/interp.py", runtime, calls, repeats, *models)
    print("per-op profiles (native, emulated AVX2, valgrind)...", flush=True)
    results["ops"] = op_profiles(paths, native_class, args.quick)
    print("start-up model choice...", flush=True)
    results["choice"] = model_choices(paths, native_class)
    print("keras...", flush=True)
    results["keras"] = keras_per_frame(paths["keras"], args.quick)
    print("daemon pipeline and end-to-end latency...", flush=True)
    results["pipeline"] = run_json(VENVS["main"], "benchmarks/pipeline.py", str(paths["int8"]),
                                   "3000" if args.quick else "20000", "4" if args.quick else "10", "40" if args.quick else "200")
    print("daemon process: start-up and memory...", flush=True)
    for runtime, venv in (("ai_edge_litert", "main"), ("tflite_runtime", "tflite")):
        if VENVS[venv].exists():
            results["process"][runtime] = run_json(VENVS[venv], "benchmarks/process.py", str(paths["int8"]), "4" if args.quick else "8")
    print("output side: storage writes, backlog drain...", flush=True)
    results["output"] = {"storage": run_json(VENVS["main"], "benchmarks/output.py", "storage", "20" if args.quick else "60"),
                         "drain": run_json(VENVS["main"], "benchmarks/output.py", "drain", "50000")}
    print("console: cost to the daemon (idle, one viewer)...", flush=True)
    results["console"] = run_json(VENVS["main"], "benchmarks/console.py", str(paths["int8"]), "2" if args.quick else "4",
                                  "10" if args.quick else "15")
    print("camera side (MJPEG)...", flush=True)
    deployed = paths["dynamic"] if results["choice"]["native"].get("form") == "dynamic" else paths["int8"]
    results["camera"] = run_json(VENVS["main"], "benchmarks/camera.py", str(paths["int8"]), str(deployed), "10" if args.quick else "30")
    print("sizes and accuracy...", flush=True)
    results["accuracy"] = accuracy(paths)
    print("detection over a simulated hour (second renderer, bundled model)...", flush=True)
    results["detection"] = run_json(VENVS["main"], "benchmarks/detection.py", str(REPO / "edge" / "models" / "conveyor_int8.tflite"),
                                    "--minutes", "12" if args.quick else "60", "--workers", "2", timeout=1800)
    results["bars"] = bars(results)
    results["seconds"] = time.monotonic() - started
    text = table(results)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"results-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "latest.txt").write_text(text + "\n")
    print(text)
    print(f"\n({results['seconds']:.0f} s; JSON in {args.out / 'latest.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
