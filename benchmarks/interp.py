"""Interpreter latency of .tflite files with one runtime, in whatever environment runs this.

Run as a script so each runtime is measured in its own environment (tflite-runtime needs numpy < 2):
    python benchmarks/interp.py RUNTIME CALLS REPEATS LABEL=MODEL.tflite ...
Prints one JSON object. All (model, threads) pairs are measured interleaved: round-robin blocks of
CALLS invokes, REPEATS rounds, so load from other processes lands on every candidate alike and the
ratios between them hold on a shared machine.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import summary
from edge.inference import RUNTIMES, load_runtime

MACS = 11_900_000  # multiply-accumulates per frame of the conveyor CNN


def build(runtime_name: str, model: Path, threads: int) -> tuple[Any, Any]:
    runtime = load_runtime(runtime_name)
    interpreter = runtime.interpreter_class(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = (np.random.default_rng(0).integers(0, 255, detail["shape"]).astype(detail["dtype"])
         if np.dtype(detail["dtype"]) != np.float32 else np.random.default_rng(0).random(detail["shape"]).astype(np.float32))
    index = detail["index"]

    def invoke() -> None:
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    return interpreter, invoke


def main() -> None:
    runtime_name, calls, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    models = {item.split("=", 1)[0]: Path(item.split("=", 1)[1]) for item in sys.argv[4:]}
    cores = os.cpu_count() or 1
    dist = RUNTIMES[runtime_name][1]
    result: dict[str, object] = {"runtime": runtime_name, "version": importlib.metadata.version(dist),
                                 "numpy": np.__version__, "cores": cores}
    runs = {}
    for label, path in models.items():
        for threads in sorted({1, cores}):
            try:
                runs[f"{label}_threads{threads}"] = build(runtime_name, path, threads)
            except (ValueError, RuntimeError) as exc:  # e.g. op versions newer than this runtime knows
                result[f"{label}_threads{threads}"] = {"unavailable": str(exc).strip().splitlines()[0][:200]}
    for _, invoke in runs.values():
        for _ in range(20):
            invoke()
    samples: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, (_, invoke) in runs.items():
            start = time.perf_counter()
            for _ in range(calls):
                invoke()
            samples[key].append((time.perf_counter() - start) / calls * 1000.0)
    for key, (interpreter, _) in runs.items():
        timing = summary(samples[key])
        ops = [d["op_name"] for d in interpreter._get_ops_details()]
        result[key] = {"ms": timing, "gmac_per_s": MACS / (timing["median"] / 1000.0) / 1e9,
                       "delegate_nodes": ops.count("DELEGATE"), "ops": len(ops)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
