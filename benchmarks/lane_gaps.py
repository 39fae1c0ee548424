"""Lane gaps: many belts of the training simulator, one lane's gap each, a ROI per lane, through the real daemon.

    python -m benchmarks.lane_gaps [--model M] [--seeds 161-200] [--gap-s 8] [--from-start] [--workers 2]

Each belt is an :class:`edge.simulator.stream.ConveyorStream` of its own seed at 15 fps for 32 s with the ROIs of
``edge/examples/lanes.yaml`` (the whole belt and one per lane in view). From 20 s the middle lane in view gets no
product for ``--gap-s`` seconds; the other lanes run full. The alert spec (docs/alert-spec.md) asks for that lane's
alert and nothing else: the whole belt still carries product across the gap's stretch. Per belt:

* ``lane``: the gap's own lane reads exactly ``ok -> alert -> ok``; ``alert_after_s``: its first alert, seconds after
  the drop began upstream (the gap then still has to travel into view); ``lane_alerted``: the lanes that alerted;
* ``other_lanes``: no other lane's ROI changes level;
* ``belt``: what the whole belt's ROI read (its level changes), counted as ``belt_alert`` and ``belt_unknown``.

With ``--from-start`` the lane is empty from before the daemon starts to the end of a 20 s run (a daemon restarted
while a lane is starved): ``lane`` then asks for exactly ``ok -> alert``, and ``stale_ok`` counts the lanes whose
ROI never changed from the ``ok`` it starts with.

Prints one JSON object: belts, how many passed each check, and every belt that failed one.

Why it exists: the stills' rows in the card score a lane's crop frame by frame; this is the issue's "a one-lane
gap raises that lane's alert" with the levels, the scene rules and a belt that moves, on seeds nobody chose.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.belt_stops import config_for
from benchmarks.gap_belts import FPS, GAP_AT_S, TAIL_S, SimulatorFrames, seed_range
from benchmarks.streams import model_error, run_belts, run_daemon
from edge.config import BUNDLED_MODEL
from edge.inference import Classifier, load_runtime
from edge.simulator.stream import ConveyorStream, Drop

BELT_ROI = "belt"


FROM_START_RUN_S = 20.0


def run_belt(args: tuple[str, int, float | None]) -> dict[str, Any]:
    """One belt through the daemon: the level changes of every ROI and the checks. ``gap_s`` None: the lane is empty
    from the start."""
    model, seed, gap_s = args
    visible = ConveyorStream(seed).visible_lanes()
    place = len(visible) // 2  # the middle lane in view (of two, the lower one)
    lane = visible[place][0]
    drop = Drop(-10.0, FROM_START_RUN_S + 20.0, lanes=(lane,)) if gap_s is None else Drop(GAP_AT_S, gap_s, lanes=(lane,))
    run_s = FROM_START_RUN_S if gap_s is None else GAP_AT_S + gap_s + TAIL_S
    stream = ConveyorStream(seed, drops=(drop,))
    config = config_for(stream, lanes=True)
    classifier = Classifier.from_files(Path(model), load_runtime("auto"), batch=len(config.rois))
    publisher, _, _ = run_daemon(config, classifier, SimulatorFrames(stream), int(run_s * FPS))
    target = config.rois[1 + place].name
    changes: dict[str, list[dict[str, Any]]] = {roi.name: [] for roi in config.rois}
    for c in publisher.level_changes:
        changes[c.roi].append({"t": round((c.frame_seq - 1) / FPS, 2), "from": str(c.previous), "to": str(c.level),
                               "reason": c.reason})
    belt_levels = {c["to"] for c in changes[BELT_ROI]}
    start = 0.0 if gap_s is None else GAP_AT_S
    alerts = [c["t"] - start for c in changes[target] if c["to"] == "alert" and c["t"] >= start]
    expected = [("ok", "alert")] if gap_s is None else [("ok", "alert"), ("alert", "ok")]
    return {"seed": seed, "lanes_in_view": len(visible), "roi": target,
            "lane": [(c["from"], c["to"]) for c in changes[target]] == expected, "stale_ok": not changes[target],
            "alert_after_s": round(alerts[0], 2) if alerts else None,
            "other_lanes": not any(changes[name] for name in changes if name not in (target, BELT_ROI)),
            "belt_alert": "alert" in belt_levels, "belt_unknown": "unknown" in belt_levels,
            "changes": {name: rows for name, rows in changes.items() if rows}}


def summarise(belts: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts over all belts, and the belts that failed a check (with their level changes)."""
    checks = ("lane", "other_lanes")
    after = sorted(b["alert_after_s"] for b in belts if b["alert_after_s"] is not None)
    return {"belts": len(belts), **{f"{check}_passed": sum(bool(b[check]) for b in belts) for check in checks},
            "lane_alerted": len(after), "stale_ok": sum(bool(b["stale_ok"]) for b in belts),
            "alert_after_s": {"median": after[len(after) // 2], "max": after[-1]} if after else None,
            "belt_alert": sum(bool(b["belt_alert"]) for b in belts), "belt_unknown": sum(bool(b["belt_unknown"]) for b in belts),
            "failed": [b for b in belts if not all(b[check] for check in checks) or b["belt_alert"] or b["belt_unknown"]]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--seeds", type=seed_range, default=seed_range("161-200"))
    parser.add_argument("--gap-s", type=float, default=8.0)
    parser.add_argument("--from-start", action="store_true", help="the lane is empty from before the start (20 s runs)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if model_error("lane_gaps", args.model):
        return 2
    gap_s = None if args.from_start else args.gap_s
    belts = run_belts(run_belt, [(str(args.model), seed, gap_s) for seed in args.seeds], args.workers)
    print(json.dumps({"model": str(args.model), "seeds": f"{args.seeds[0]}-{args.seeds[-1]}", "gap_s": gap_s,
                      **summarise(belts)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
