"""Counters and timings the frame loop keeps, summarised for the telemetry message."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")
STAGES = ("capture", "preprocess", "inference", "levels", "publish")


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C where the board exposes it (Raspberry Pi does), else None."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def _percentiles(ordered: list[float], qs: tuple[float, ...]) -> list[float]:
    """np.percentile's default (linear) method on sorted values; np.percentile would import numpy.ma (about 1.2 MB)."""
    last = len(ordered) - 1
    out = []
    for q in qs:
        pos = q / 100.0 * last
        lo = int(pos)
        hi = min(lo + 1, last)
        out.append(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
    return out


class FrameStats:
    """Frame counts, per-stage time and recent inference latencies."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.frames = 0
        self.bad_frames = 0
        self.dropped_frames = 0
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)
        self.inference_ms: deque[float] = deque(maxlen=2048)
        self._window_frames = 0
        self._window_start = started
        self._last_seq: int | None = None

    def frame_seen(self, seq: int) -> None:
        if self._last_seq is not None and seq > self._last_seq + 1:
            self.dropped_frames += seq - self._last_seq - 1
        self._last_seq = seq
        self.frames += 1
        self._window_frames += 1

    def source_restarted(self) -> None:
        self._last_seq = None

    def summary(self, now: float) -> dict[str, Any]:
        """Figures for one telemetry message; starts a new frames/s window."""
        elapsed = max(now - self._window_start, 1e-9)
        fps = self._window_frames / elapsed
        self._window_frames, self._window_start = 0, now
        if self.inference_ms:
            p50, p99 = _percentiles(sorted(self.inference_ms), (50, 99))
            latency: dict[str, float | None] = {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}
        else:
            latency = {"p50": None, "p99": None}
        return {
            "uptime_s": round(now - self.started, 1),
            "fps": round(fps, 2),
            "frames": self.frames,
            "dropped_frames": self.dropped_frames,
            "bad_frames": self.bad_frames,
            "inference_ms": latency,
            "cpu_temp_c": cpu_temperature(),
        }
