"""Where the time goes, op by op: each op of the real converted models cut out and timed alone.

    python benchmarks/ops.py [--emulate-avx2] [--threads N] [--rounds R] LABEL=MODEL.tflite ...
    python benchmarks/ops.py --callgrind LABEL=MODEL.tflite ...      (instruction counts and kernel names)

Prints one JSON object. How it works:

* **Op slicing.** Each op of a model (a run of shape-computing int32 ops goes with the op that
  consumes them) is cut out of the flatbuffer with its exact tensors, weights and quantization
  into a one-op model (LiteRT's ``flatbuffer_utils``), and run by the same runtime with the same
  delegate as the whole model. So a figure is that op with XNNPACK's real kernel choice, plus one
  invoke's fixed overhead (``invoke_overhead_ms``, measured on the smallest op).
* **Interleaved timing.** All interpreters (whole models and every op of every model) are
  measured round-robin, block after block, and each reports the median block: load from other
  processes on a shared machine lands on all of them alike, so the int8/float ratios hold even when
  absolute times wobble.
* **Kernels.** ``--callgrind`` runs the same op models under valgrind, whose CPUID shows an
  AVX2+FMA CPU without AVX-512, so XNNPACK picks its AVX2 kernels as on AMD Zen 3; callgrind
  counts the instructions of one invoke per op and names the XNNPACK microkernels that executed
  them. Instruction counts do not depend on machine load.
* ``--emulate-avx2`` times on this CPU with XNNPACK's ISA flags masked to AVX2 (benchmarks/isa.py).
* ``--perf`` names the kernels that run on *this* CPU (which valgrind cannot show above AVX2):
  ``perf record`` samples each whole model invoked for about a second; the share of samples per
  XNNPACK microkernel or TFLite builtin kernel is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.isa import EmulationUnavailable, cpu_facts, emulate_avx2

WRAPPER_INVOKE = "tflite::interpreter_wrapper::InterpreterWrapper::Invoke(int)"
NOT_TIMED = ("SHAPE", "STRIDED_SLICE", "PACK")


def _model(data: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def op_names(data: bytes) -> list[str]:
    from ai_edge_litert.tools import flatbuffer_utils

    m = _model(data)
    return [str(flatbuffer_utils.opcode_to_name(m, op.opcodeIndex)) for op in m.subgraphs[0].operators]


def segments(data: bytes) -> list[list[int]]:
    """Op indices grouped so that ops computing an int32 shape go with the op that consumes it."""
    from ai_edge_litert import schema_py_generated as schema

    m = _model(data)
    graph = m.subgraphs[0]
    groups, current = [], []
    for index, op in enumerate(graph.operators):
        current.append(index)
        if graph.tensors[op.outputs[0]].type != schema.TensorType.INT32 or index == len(graph.operators) - 1:
            groups.append(current)
            current = []
    return groups


def slice_model(data: bytes, indices: list[int]) -> bytes:
    """A model of just the ops at ``indices``: inputs are what they read and nothing among them makes."""
    from ai_edge_litert.tools import flatbuffer_utils

    m = _model(data)
    graph = m.subgraphs[0]
    ops = [graph.operators[i] for i in indices]
    made = {t for op in ops for t in op.outputs}

    def constant(t: int) -> bool:
        buffer = m.buffers[graph.tensors[t].buffer]
        return buffer.data is not None and len(buffer.data) > 0

    inputs: list[int] = []
    for op in ops:
        inputs += [t for t in op.inputs if t >= 0 and t not in made and not constant(t) and t not in inputs]
    graph.operators, graph.inputs, graph.outputs = ops, inputs, list(ops[-1].outputs)
    m.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def macs_of(data: bytes, indices: list[int]) -> int:
    """Multiply-accumulates of the convolution and fully connected ops among ``indices``."""
    m = _model(data)
    graph = m.subgraphs[0]
    names = op_names(data)
    total = 0
    for i in indices:
        op = graph.operators[i]
        if names[i] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            out = graph.tensors[op.outputs[0]].shape
            w = graph.tensors[op.inputs[1]].shape  # OHWI (conv) or 1HWO (depthwise)
            total += int(np.prod(out)) * int(w[1] * w[2] * (w[3] if names[i] == "CONV_2D" else 1))
        elif names[i] == "FULLY_CONNECTED":
            out = graph.tensors[op.outputs[0]].shape
            w = graph.tensors[op.inputs[1]].shape
            total += int(np.prod(out)) * int(w[1])
    return total


def layer_names(data: bytes, groups: list[list[int]]) -> list[str]:
    """Stable names to line up the same layer across forms: conv_2d#1, max_pool_2d#1, ..., quantize (input)."""
    names = op_names(data)
    seen: dict[str, int] = {}
    out = []
    for n, group in enumerate(groups):
        main = names[group[-1]]
        if main in ("QUANTIZE", "DEQUANTIZE") and n in (0, len(groups) - 1):
            out.append(f"{main.lower()} ({'input' if n == 0 else 'output'})")
            continue
        seen[main] = seen.get(main, 0) + 1
        label = "flatten" if main == "RESHAPE" and len(group) > 1 else f"{main.lower()}#{seen[main]}"
        out.append(label)
    return out


def _interpreter(data: bytes, threads: int) -> tuple[Any, int]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data, num_threads=threads)
    interp.allocate_tensors()
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    delegated = [d["op_name"] for d in interp._get_ops_details()].count("DELEGATE")
    return interp, delegated


def profile(models: dict[str, Path], threads: int, rounds: int, target_block_s: float = 0.004) -> dict[str, Any]:
    """Whole-model and per-op ms, all measured interleaved: the fastest block (the uncontended cost) and the median."""
    runs: dict[tuple[str, str], tuple[Any, int]] = {}
    layout: dict[str, list[dict[str, Any]]] = {}
    for label, path in models.items():
        data = path.read_bytes()
        runs[(label, "whole")] = _interpreter(data, threads)
        groups = segments(data)
        names = op_names(data)
        layout[label] = []
        for name, group in zip(layer_names(data, groups), groups, strict=True):
            runs[(label, name)] = _interpreter(slice_model(data, group), threads)
            layout[label].append({"layer": name, "ops": [names[i] for i in group], "macs": macs_of(data, group)})
    calls = {}
    for key, (interp, _) in runs.items():
        for _ in range(5):
            interp.invoke()
        start = time.perf_counter()
        interp.invoke()
        calls[key] = max(5, min(2000, int(target_block_s / max(time.perf_counter() - start, 1e-7))))
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for _ in range(rounds):
        for key, (interp, _) in runs.items():
            start = time.perf_counter()
            for _ in range(calls[key]):
                interp.invoke()
            samples[key].append((time.perf_counter() - start) / calls[key] * 1000.0)
    # The fastest of many short interleaved blocks estimates the cost without interference from other
    # processes on a shared machine; the median is kept beside it.
    ms = {key: min(values) for key, values in samples.items()}
    median = {key: statistics.median(values) for key, values in samples.items()}
    result: dict[str, Any] = {}
    for label in models:
        layers = []
        for entry in layout[label]:
            value = ms[(label, entry["layer"])]
            layers.append({**entry, "ms": value, "median_ms": median[(label, entry["layer"])],
                           "delegated": runs[(label, entry["layer"])][1] > 0,
                           "gmac_per_s": entry["macs"] / (value / 1000.0) / 1e9 if entry["macs"] else None})
        result[label] = {"whole_ms": ms[(label, "whole")], "whole_median_ms": median[(label, "whole")],
                         "delegate_partitions": runs[(label, "whole")][1], "layers": layers}
    result["invoke_overhead_ms"] = min(layer["ms"] for r in result.values() if isinstance(r, dict) for layer in r["layers"])
    return result


# --- instruction counts under valgrind --------------------------------------------------------------
def callgrind_worker(models: dict[str, Path]) -> None:
    """Invoke every op model twice (the second invoke is the one read); print the invoke order."""
    order = []
    for label, path in models.items():
        data = path.read_bytes()
        groups = segments(data)
        for name, group in zip(layer_names(data, groups), groups, strict=True):
            interp, _ = _interpreter(slice_model(data, group), 1)
            for repeat in range(2):
                interp.invoke()
                order.append([label, name, repeat])
    print(json.dumps(order))


def _annotate(part: Path) -> tuple[int, dict[str, int]]:
    text = subprocess.run(["callgrind_annotate", "--threshold=100", str(part)], capture_output=True, text=True, check=False).stdout
    total = 0
    functions: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.+?)\s*$", line)
        if not match:
            continue
        count = int(match.group(1).replace(",", ""))
        what = match.group(2)
        if what.startswith("PROGRAM TOTALS"):
            total = count
        elif ":" in what:
            name = what.split(":", 1)[1].split(" [", 1)[0]
            functions[name] = functions.get(name, 0) + count
    return total, functions


def callgrind(models: dict[str, Path]) -> dict[str, Any]:
    """Per-op instructions of one invoke and the XNNPACK microkernels that ran, under valgrind (AVX2 CPUID)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        return {"available": False, "why": "valgrind is not installed (apt-get install valgrind)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        args = [f"{label}={path}" for label, path in models.items()]
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                   f"--toggle-collect={WRAPPER_INVOKE}", f"--dump-after={WRAPPER_INVOKE}",
                   sys.executable, __file__, "--callgrind-worker", *args]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
        if result.returncode != 0:
            return {"available": False, "why": f"valgrind run failed: {result.stderr.strip().splitlines()[-1:]}"}
        order = json.loads(result.stdout.strip().splitlines()[-1])
        parts = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False).stdout.strip()
        per: dict[str, dict[str, Any]] = {}
        for (label, layer, repeat), part in zip(order, parts, strict=False):
            if repeat != 1:
                continue
            total, functions = _annotate(part)
            kernels = {name: count for name, count in sorted(functions.items(), key=lambda kv: -kv[1])
                       if name.startswith("xnn_") and "ukernel" in name and count >= 0.02 * max(total, 1)}
            per.setdefault(label, {})[layer] = {"instructions": total, "kernels": kernels}
    return {"available": True, "valgrind": version, "cpuid_seen": "AVX2+FMA3, no AVX-512/VNNI (valgrind's synthetic CPUID)",
            "models": per}


def perf_worker(path: Path, seconds: float) -> None:
    interp, _ = _interpreter(path.read_bytes(), 1)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            interp.invoke()


def perf_kernels(models: dict[str, Path], seconds: float = 1.0) -> dict[str, Any]:
    """Share of CPU samples per kernel function while each whole model runs, from ``perf record``."""
    if shutil.which("perf") is None:
        return {"available": False, "why": "perf is not installed (apt-get install linux-perf)"}
    out: dict[str, Any] = {"available": True, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models.items():
            data = Path(tmp) / f"{label}.data"
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
            record = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", str(data), sys.executable, __file__,
                                     "--perf-worker", str(seconds), f"{label}={path}"], capture_output=True, text=True, env=env,
                                    timeout=120, check=False)
            if record.returncode != 0 or not data.exists():
                return {"available": False, "why": f"perf record failed: {record.stderr.strip().splitlines()[-1:]}"}
            report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "symbol"], capture_output=True,
                                    text=True, timeout=120, check=False).stdout
            kernels = {}
            for line in report.splitlines():
                match = re.match(r"\s*([\d.]+)%\s+\[\.\]\s+(.+?)\s*$", line)
                if not match or float(match.group(1)) < 1.0:
                    continue
                name = match.group(2).split("<")[0].split("  ")[0].strip()  # perf pads its columns with spaces
                if (name.startswith("xnn_") and "ukernel" in name) or "::builtin::" in name:
                    kernels[name] = float(match.group(1))
            out["models"][label] = kernels
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/ops.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="LABEL=path.tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--emulate-avx2", action="store_true")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--callgrind-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--perf", action="store_true")
    parser.add_argument("--perf-worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = {item.split("=", 1)[0]: Path(item.split("=", 1)[1]) for item in args.models}
    if args.callgrind_worker:
        callgrind_worker(models)
        return
    if args.perf_worker:
        perf_worker(next(iter(models.values())), args.perf_worker)
        return
    if args.perf:
        print(json.dumps(perf_kernels(models)))
        return
    if args.callgrind:
        print(json.dumps(callgrind(models)))
        return
    facts = cpu_facts()
    emulation: dict[str, Any] | None = None
    if args.emulate_avx2:
        try:
            emulation = emulate_avx2()
        except EmulationUnavailable as exc:
            print(json.dumps({"available": False, "why": str(exc)}))
            return
    result = profile(models, args.threads, args.rounds)
    print(json.dumps({"available": True, "machine": facts, "emulated": "x86-avx2" if emulation else None,
                      "emulation": emulation, "threads": args.threads, **result}))


if __name__ == "__main__":
    main()
