"""Belt stops: many belts of the training simulator stop, full, empty or with a lane starved, through the real daemon.

    python -m benchmarks.belt_stops [--model M] [--seeds 231-270] [--workers 2] [--scenarios full,starved,...]

Each belt is an :class:`edge.simulator.stream.ConveyorStream` of its own seed at 15 fps, run through
:class:`edge.daemon.Daemon` (:func:`benchmarks.streams.run_daemon`) in one of these scenarios:

* ``full``: a full belt stops at 12 s for 8 s (default config);
* ``starved``: the belt runs empty from 10 s and stops at 20 s for 10 s (default config);
* ``gap_then_stop``: an 8 s gap from 14 s, the belt stopping at 17 s, inside it (default config);
* ``lane_starved``: the whole belt and one ROI per lane (as ``edge/examples/lanes.yaml``); lane 2 starves at 14 s
  and the belt stops at 20 s for 8 s;
* ``lane_empty``: the same ROIs; lane 2 is empty from the start and the belt stops at 8 s for 8 s;
* ``gap_moving``: a 12 s gap from 10 s on a belt that never stops (default config): only false stops count.

A stop counts as reported when the belt reads ``stopped`` within 3 s of it (the issue's bar); a stop reported
before the belt stopped, or on a belt that never stops, is a false stop. Prints one JSON object: per scenario the belts, reported within 3 s,
late (seconds), never, and false stops.

Why it exists: the detection hour stops full belts only. An empty belt shows little texture to follow, and a
starved lane can make the scene head call a view "not a belt", which skips motion readings; both hid stops.
The default seeds were not looked at while the motion rules were changed (that used 100-139).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gap_belts import FPS, SimulatorFrames, seed_range
from benchmarks.streams import model_error, run_belts, run_daemon
from edge.config import BUNDLED_MODEL, EdgeConfig, parse_config
from edge.events import BeltChanged
from edge.inference import Classifier, load_runtime
from edge.simulator.stream import ConveyorStream, Drop, Stop
from edge.state import Belt

REPORT_WITHIN_S = 3.0
Scenario = Callable[[int], tuple[ConveyorStream, bool, float | None, float]]  # seed -> (stream, lanes?, stop at, run for)

SCENARIOS: dict[str, Scenario] = {
    "full": lambda seed: (ConveyorStream(seed, stops=(Stop(12.0, 8.0),)), False, 12.0, 24.0),
    "starved": lambda seed: (ConveyorStream(seed, drops=(Drop(10.0, 30.0),), stops=(Stop(20.0, 10.0),)), False, 20.0, 34.0),
    "gap_then_stop": lambda seed: (ConveyorStream(seed, drops=(Drop(14.0, 8.0),), stops=(Stop(17.0, 6.0),)), False, 17.0, 28.0),
    "lane_starved": lambda seed: (ConveyorStream(seed, drops=(Drop(14.0, 20.0, lanes=(1,)),), stops=(Stop(20.0, 8.0),)),
                                  True, 20.0, 32.0),
    "lane_empty": lambda seed: (ConveyorStream(seed, drops=(Drop(-10.0, 40.0, lanes=(1,)),), stops=(Stop(8.0, 8.0),)),
                                True, 8.0, 20.0),
    "gap_moving": lambda seed: (ConveyorStream(seed, drops=(Drop(10.0, 12.0),)), False, None, 26.0),
}


def config_for(stream: ConveyorStream, lanes: bool) -> EdgeConfig:
    """The default config, or the whole belt and one ROI per lane in view."""
    raw: dict[str, Any] = {"source": {"type": "synthetic", "fps": FPS}}
    if lanes:
        raw["rois"] = [{"name": "belt", "box": [0.0, 0.0, 1.0, 1.0]},
                       *({"name": f"lane-{k + 1}", "box": list(box)} for k, box in enumerate(stream.lane_boxes()))]
    return parse_config(raw, check_files=False)


def run_belt(args: tuple[str, str, int]) -> dict[str, Any]:
    """One belt of one scenario through the daemon: when its stop was first reported (None: never), and false stops."""
    model, scenario, seed = args
    stream, lanes, stop_at, run_s = SCENARIOS[scenario](seed)
    config = config_for(stream, lanes)
    classifier = Classifier.from_files(Path(model), load_runtime("auto"), batch=len(config.rois))
    publisher, _, _ = run_daemon(config, classifier, SimulatorFrames(stream), int(run_s * FPS))
    stops = [(c.frame_seq - 1) / FPS for c in publisher.changes if isinstance(c, BeltChanged) and c.belt == Belt.STOPPED]
    after = [] if stop_at is None else [t - stop_at for t in stops if t >= stop_at]
    return {"scenario": scenario, "seed": seed, "stops": stop_at is not None,
            "reported_after_s": round(after[0], 2) if after else None,
            "false_stops": [round(t, 2) for t in stops if stop_at is None or t < stop_at]}


def summarise(belts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario: belts, stops reported within 3 s, late ones (seed: seconds), never reported, false stops."""
    out: dict[str, Any] = {}
    for scenario in dict.fromkeys(b["scenario"] for b in belts):
        rows = [b for b in belts if b["scenario"] == scenario]
        if not rows[0]["stops"]:
            out[scenario] = {"belts": len(rows), "false_stops": {b["seed"]: b["false_stops"] for b in rows if b["false_stops"]}}
            continue
        out[scenario] = {
            "belts": len(rows),
            "within_3_s": sum(b["reported_after_s"] is not None and b["reported_after_s"] <= REPORT_WITHIN_S for b in rows),
            "late": {b["seed"]: b["reported_after_s"] for b in rows
                     if b["reported_after_s"] is not None and b["reported_after_s"] > REPORT_WITHIN_S},
            "never": [b["seed"] for b in rows if b["reported_after_s"] is None],
            "false_stops": {b["seed"]: b["false_stops"] for b in rows if b["false_stops"]},
        }
    return out


def scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown scenario {', '.join(unknown) or repr(text)}; expected some of {', '.join(SCENARIOS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("231-270"))
    parser.add_argument("--scenarios", type=scenario_list, default=list(SCENARIOS))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if model_error("belt_stops", args.model):
        return 2
    tasks = [(str(args.model), scenario, seed) for scenario in args.scenarios for seed in args.seeds]
    belts = run_belts(run_belt, tasks, args.workers)
    print(json.dumps({"model": str(args.model), "seeds": f"{args.seeds[0]}-{args.seeds[-1]}", "report_within_s": REPORT_WITHIN_S,
                      "scenarios": summarise(belts)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
