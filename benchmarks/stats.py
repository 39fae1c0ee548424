"""Repeat-and-summarise helpers: every figure is a median with its spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def summary(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and interquartile range of repeated measurements."""
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "iqr": q[2] - q[0], "n": len(ordered)}


def per_call_ms(fn: Callable[[], object], calls: int, repeats: int, warmup: int = 20) -> dict[str, Any]:
    """Time ``repeats`` blocks of ``calls`` calls; each sample is the mean ms per call in one block."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1000.0)
    return summary(samples)
