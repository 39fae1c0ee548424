"""Unrelated stills: a "stream" of the second renderer's stills, a new unrelated picture on every frame, through the daemon.

    python -m benchmarks.unrelated_stills [--model M] [--seeds 0-10] [--gaps 10] [--workers 2]

The issue's bar replays a held-out stream with 10 gaps through the daemon: exactly 10 alerts, 10 recoveries and
nothing else. The detection hour plays a moving belt; an evaluator with only stills can also replay a folder of them as
video (``source: images``, one file a frame). Then no two consecutive frames have anything in common: a new
installation, light and noise on every frame. Each run (:class:`StillsStream`, 15 frames/s, 320x240, the default
config) plays ``--gaps`` times 6 s of full belts (a few strays at most) then 2 s of gaps (2 to 8 pitches across every
lane), then 6 s of full belts; each frame is the next :func:`converter.holdout.draw.belt_frame` drawn from the
seed's generator (a full belt has no empty stretch over 0.6 pitch).

Per seed: alerts, recoveries (``alert -> ok``), the gaps that raised an alert, and every other level change (an
``unknown`` on a full belt is "something else"). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gap_belts import seed_range
from benchmarks.streams import model_error, run_belts, run_daemon
from converter.holdout.draw import belt_frame
from edge.config import BUNDLED_MODEL, parse_config
from edge.inference import Classifier, load_runtime

FPS = 15.0
SIZE = (320, 240)
FULL_S, GAP_S = 6.0, 2.0
FULL_BELT = 0.6  # pitches: the longest empty stretch a "full belt" still may have (strays, not a missing row)


class StillsStream:
    """``gaps`` times ``FULL_S`` of full belts then ``GAP_S`` of gaps, then ``FULL_S`` of full belts: one still a frame,
    drawn in turn from one generator (so frames must be asked in order, as the daemon does)."""

    def __init__(self, seed: int, gaps: int) -> None:
        self.fps = FPS
        full, gap = [False] * int(FULL_S * FPS), [True] * int(GAP_S * FPS)
        self.truth = (full + gap) * gaps + full
        self._rng = np.random.default_rng((seed, 5))
        self._next = 0

    def frame(self, i: int) -> npt.NDArray[np.uint8]:
        if i != self._next:
            raise ValueError(f"frame {i} asked for, expected frame {self._next}: the stills are drawn in order")
        self._next += 1
        while True:
            still = belt_frame(self._rng, self.truth[i], SIZE)
            if self.truth[i] or still.gap_pitches < FULL_BELT:
                return np.asarray(still.image)

    def gap_starts(self) -> list[int]:
        return [i for i in range(1, len(self.truth)) if self.truth[i] and not self.truth[i - 1]]


def run_stream(args: tuple[str, int, int]) -> dict[str, Any]:
    """One seed through the daemon: its level changes, sorted into alerts, recoveries and the rest."""
    model, seed, gaps = args
    stream = StillsStream(seed, gaps)
    classifier = Classifier.from_files(Path(model), load_runtime("auto"))
    config = parse_config({"model": {"path": model}, "source": {"type": "synthetic", "fps": FPS}}, check_files=False)
    publisher, log, _ = run_daemon(config, classifier, stream, len(stream.truth))
    changes = [(round((c.frame_seq - 1) / FPS, 2), str(c.previous), str(c.level)) for c in publisher.level_changes]
    levels = [level for _, level, _ in log.seen]
    gap_frames = int(GAP_S * FPS)
    hit = [any(level == "alert" for level in levels[start: start + gap_frames + int(FPS)]) for start in stream.gap_starts()]
    alerts = [c for c in changes if c[2] == "alert"]
    recoveries = [c for c in changes if c[1] == "alert" and c[2] == "ok"]
    other = [c for c in changes if c not in alerts and c not in recoveries]
    return {"seed": seed, "alerts": len(alerts), "recoveries": len(recoveries), "gaps_alerted": sum(hit), "other": other}


def summarise(runs: list[dict[str, Any]], gaps: int) -> dict[str, Any]:
    clean = [r for r in runs if r["alerts"] == r["recoveries"] == r["gaps_alerted"] == gaps and not r["other"]]
    return {"streams": len(runs), "exactly_as_scripted": len(clean),
            "gaps_alerted": sum(r["gaps_alerted"] for r in runs), "gaps": gaps * len(runs),
            "streams_with_other_changes": sum(bool(r["other"]) for r in runs),
            "not_as_scripted": [r for r in runs if r not in clean]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("0-10"))
    parser.add_argument("--gaps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.gaps < 1:
        print(f"unrelated_stills: --gaps {args.gaps}: expected 1 or more", file=sys.stderr)
        return 2
    if model_error("unrelated_stills", args.model):
        return 2
    runs = run_belts(run_stream, [(str(args.model), seed, args.gaps) for seed in args.seeds], args.workers)
    print(json.dumps({"model": str(args.model), "seeds": f"{args.seeds[0]}-{args.seeds[-1]}", **summarise(runs, args.gaps)},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
