"""Interpreter latency for int8 and float32 .tflite files with one runtime, in whatever environment runs this.

Run as a script so each runtime is measured in its own environment (tflite-runtime needs numpy < 2):
    python benchmarks/interp.py RUNTIME INT8.tflite FLOAT.tflite CALLS REPEATS
Prints one JSON object.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import per_call_ms
from edge.inference import RUNTIMES, load_runtime

MACS = 11_900_000  # multiply-accumulates per frame of the conveyor CNN


def measure(runtime_name: str, model: Path, threads: int, calls: int, repeats: int) -> dict[str, object]:
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

    timing = per_call_ms(invoke, calls, repeats)
    ops = [d["op_name"] for d in interpreter._get_ops_details()]
    return {"ms": timing, "gmac_per_s": MACS / (timing["median"] / 1000.0) / 1e9,
            "delegate_nodes": ops.count("DELEGATE"), "ops": len(ops)}


def main() -> None:
    runtime_name, int8, float_model, calls, repeats = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    cores = os.cpu_count() or 1
    dist = RUNTIMES[runtime_name][1]
    result: dict[str, object] = {"runtime": runtime_name, "version": importlib.metadata.version(dist),
                                 "numpy": np.__version__, "cores": cores}
    for label, path in (("int8", int8), ("float32", float_model)):
        for threads in sorted({1, cores}):
            result[f"{label}_threads{threads}"] = measure(runtime_name, path, threads, calls, repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
