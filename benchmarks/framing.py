"""The framing check (edge.framing) against the truth: product pitches in view on belts of both renderers.

    python -m benchmarks.framing [--renderer second|training] [--seeds 1-60]

Each belt is one stream (320x240, the whole frame as the ROI, the belt running with no gap) read as the daemon reads
it: 15 readings 2 s apart into a :class:`edge.framing.FramingWatch`. The truth is the renderer's own: frame width
over the product pitch (second renderer, :class:`converter.holdout.HoldoutStream`) or the camera's view over the
layout's pitch (training simulator, :class:`edge.simulator.stream.ConveyorStream`, where the method was made). The
second renderer's default seeds add belts 202, 34, 23 and 6, the shortest views in its detection hours (3.45-3.77).

Prints one JSON object: per belt the truth and the reading (null when the watch stays silent), how many readings were
within 5%, silent or wrong, and which belts the daemon would warn about.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gap_belts import seed_range
from converter.holdout import HoldoutStream, Script
from edge.framing import READINGS, FramingWatch, along_flow_profile
from edge.preprocess import WHOLE_FRAME
from edge.simulator.stream import ConveyorStream

FPS = 15.0
READING_EVERY_S = 2.0


def belt(renderer: str, seed: int) -> tuple[Callable[[int], npt.NDArray[np.uint8]], float]:
    """A frame at index i of this belt, and how many pitches its view spans."""
    if renderer == "training":
        stream = ConveyorStream(seed)
        camera = stream.look.camera
        return (lambda i: stream.frame_at(i / FPS)), camera.width / camera.zoom / stream.layout.pitch
    holdout = HoldoutStream(seed, Script(), fps=FPS, size=(320, 240))
    return holdout.frame, 320 / holdout.pitch


def judge(renderer: str, seed: int) -> dict[str, Any]:
    frame, truth = belt(renderer, seed)
    watch = FramingWatch()
    for k in range(READINGS):
        watch.see(along_flow_profile(frame(int(k * READING_EVERY_S * FPS)), WHOLE_FRAME))
    reading = watch.pitches()
    return {"seed": seed, "truth": round(truth, 3), "reading": None if reading is None else round(reading, 3),
            "warned": watch.outside_spec() is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renderer", choices=("second", "training"), default="second")
    parser.add_argument("--seeds", type=seed_range, default=None, help="default 1-60 (and 202, 34, 23, 6 for the second renderer)")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(range(1, 61)) + ([202, 34, 23, 6] if args.renderer == "second" else [])
    belts = [judge(args.renderer, seed) for seed in seeds]
    read = [b for b in belts if b["reading"] is not None]
    within = [b for b in read if abs(b["reading"] / b["truth"] - 1) <= 0.05]
    errors = [abs(b["reading"] / b["truth"] - 1) for b in read]
    print(json.dumps({"renderer": args.renderer, "belts": len(belts), "within_5_percent": len(within),
                      "silent": [b["seed"] for b in belts if b["reading"] is None],
                      "wrong": [b for b in read if b not in within],
                      "median_error": round(float(np.median(errors)), 4) if errors else None,
                      "warned": [b for b in belts if b["warned"]], "per_belt": belts}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
