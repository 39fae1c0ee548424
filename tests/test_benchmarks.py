"""The benchmark harness runs, and the XNNPACK finding it reports holds (a fact about the graph, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import BUNDLED_MODEL, REPO


def test_interp_harness_reports_timings_and_delegate_nodes(runtime_name: str) -> None:
    """LiteRT hands the int8 graph to XNNPACK (delegate nodes); tflite-runtime 2.14 leaves it on its own kernels."""
    result = subprocess.run([sys.executable, "benchmarks/interp.py", runtime_name, str(BUNDLED_MODEL), str(BUNDLED_MODEL), "20", "3"],
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
