"""Detection over a simulated hour, from the second renderer, through the device's own code.

    python benchmarks/detection.py MODEL [--minutes 60] [--fps 15] [--workers 2] [--seed 1]

Prints one JSON object. The hour (54,000 frames at 15 fps) is split into segments rendered and judged
by worker processes; each segment is its own belt (same installation family, its own seed) with its
share of the script: gaps of 2 to 12 product pitches (most 2-4.5), single missing rows (1 pitch, not an
alert), stray missing cookies, lighting drift and flicker, belt stops, and unknown scenes (hand,
covered lens, grey wall, sensor noise, glare).

**How an hour fits in minutes**: :class:`converter.holdout.HoldoutStream` draws the belt once per
2,048-pixel stretch as a panorama (cookies at twice the size, reduced once) and makes every frame as a
rotated window into it (one affine resample), then light, noise and JPEG per frame: about 2-4 ms a frame.

Each segment runs the **real daemon** (:class:`edge.daemon.Daemon`: the pipeline's image health, crop,
int8 invoke, scene judges, belt motion and levels, then the device state and its events) with the
default config (level bands from the model's card) over :class:`benchmarks.streams.StreamSource`,
frames stamped with stream time, and a recording publisher in place of MQTT. Alerts, recoveries and
belt events are the daemon's own events; "read unknown" is what ``state/belt`` said on each frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.streams import model_error, run_daemon
from converter.holdout import HoldoutStream, Script
from edge.config import parse_config
from edge.events import BeltChanged
from edge.inference import Classifier, load_runtime
from edge.state import Belt, Level

UNKNOWN_KINDS = ("hand", "covered_lens", "grey_wall", "noise", "glare")


def make_script(rng: np.random.Generator, seconds: float, gaps: int, stops: int, episodes: int, first_kind: int = 0) -> Script:
    """Events spread over ``seconds`` with room between them (a gap takes a few seconds to cross the view)."""
    places = np.arange(8, int(seconds) - 20, 12)  # an event every 12 s at most: each one is over in under 10 s
    slots = min(len(places), gaps + stops + episodes + int(seconds // 90))
    if slots < gaps + stops + episodes:
        raise ValueError(f"{seconds:.0f} s is too short for {gaps} gaps, {stops} stops and {episodes} unknown scenes")
    starts = np.sort(rng.choice(places, size=slots, replace=False)).astype(float)
    kinds = ["gap"] * gaps + ["stop"] * stops + ["episode"] * episodes
    kinds += ["row"] * (slots - len(kinds))
    order = rng.permutation(slots)
    script: dict[str, list[Any]] = {"gap": [], "stop": [], "episode": [], "row": []}
    for slot, kind_index in zip(starts, order, strict=True):
        kind = kinds[kind_index]
        if kind == "gap":
            length = float(rng.uniform(2.0, 4.5) if rng.random() < 0.8 else rng.uniform(4.5, 12.0))
            script["gap"].append((slot, length))
        elif kind == "stop":
            script["stop"].append((slot, 8.0))
        elif kind == "episode":
            # Kinds in turn, each segment starting at another one (first_kind), so that an hour has them all.
            kind_index = (len(script["episode"]) + first_kind) % len(UNKNOWN_KINDS)
            script["episode"].append((UNKNOWN_KINDS[kind_index], slot, 6.0))
        else:
            script["row"].append(slot)
    return Script(gaps=tuple(script["gap"]), missing_rows=tuple(script["row"]), stops=tuple(script["stop"]),
                  episodes=tuple(script["episode"]))


class Warnings(logging.Handler):
    """The daemon's warnings during a segment (the framing check names a view outside the spec there)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_segment(args: tuple[str, int, float, float, int, int, int]) -> dict[str, Any]:
    """One segment through the real daemon (edge.daemon.Daemon over benchmarks.streams.StreamSource)."""
    model, seed, seconds, fps, gaps, stops, episodes = args
    rng = np.random.default_rng((seed, 1))
    script = make_script(rng, seconds, gaps, stops, episodes, first_kind=seed)
    stream = HoldoutStream(seed, script, fps=fps)
    classifier = Classifier.from_files(Path(model), load_runtime("auto"))
    config = parse_config({"model": {"path": model}, "source": {"type": "synthetic", "fps": fps}}, check_files=False)
    frames = int(seconds * fps)
    started = time.perf_counter()
    said, daemon_log = Warnings(), logging.getLogger("edge.daemon")
    daemon_log.addHandler(said)
    try:
        publisher, log, source = run_daemon(config, classifier, stream, frames)
    finally:
        daemon_log.removeHandler(said)
    wall = time.perf_counter() - started

    def at(frame_seq: int) -> float:
        return (frame_seq - 1) / fps

    alerts = [at(c.frame_seq) for c in publisher.level_changes if c.level == Level.ALERT]
    events = [(at(c.frame_seq), str(c.previous), str(c.level)) for c in publisher.level_changes]
    stopped_at = [at(c.frame_seq) for c in publisher.changes if isinstance(c, BeltChanged) and c.belt == Belt.STOPPED]
    unknown_frames, false_unknown = [0, 0], [0, 0]
    by_kind: dict[str, list[int]] = {}
    for i, (_, level, _) in enumerate(log.seen):
        truth = stream.truth(i)
        counter = unknown_frames if truth.episode is not None else false_unknown
        counter[0] += level == Level.UNKNOWN
        counter[1] += 1
        if truth.episode is not None:
            kind = by_kind.setdefault(truth.episode, [0, 0])
            kind[0] += level == Level.UNKNOWN
            kind[1] += 1
    timing = {"render": source.render_s, **log.seconds, "daemon_other": wall - source.render_s - sum(log.seconds.values())}
    spans = [stream.gap_visible_span(k) for k in range(len(script.gaps))]
    return {"seed": seed, "frames": frames, "gaps": [(s, g, *span) for (s, g), span in zip(script.gaps, spans, strict=True)],
            "stops": list(script.stops), "alerts": alerts, "events": events, "stopped_at": stopped_at,
            "episodes": list(script.episodes),
            "unknown_frames": unknown_frames, "false_unknown": false_unknown, "unknown_by_kind": by_kind, "timing": timing,
            "view_pitches": round(stream.inst.width / stream.pitch, 2),
            "framing_warnings": [m for m in said.messages if "product pitches along the flow" in m]}


def summarise(segments: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    latencies, missed, doubled, false_alerts = [], 0, 0, 0
    stop_delays, false_stops = [], 0
    false_by_belt: dict[int, int] = {}
    for seg in segments:
        windows = [(start, last + 2.0, first) for start, _, first, last in seg["gaps"]]
        used = [0] * len(windows)
        for at in seg["alerts"]:
            hit = next((k for k, (lo, hi, _) in enumerate(windows) if lo <= at <= hi), None)
            if hit is None:
                false_alerts += 1
                false_by_belt[seg["seed"]] = false_by_belt.get(seg["seed"], 0) + 1
            else:
                used[hit] += 1
                if used[hit] == 1:
                    latencies.append(max(0.0, at - windows[hit][2]))
        missed += sum(u == 0 for u in used)
        doubled += sum(u > 1 for u in used)
        for start, duration in seg["stops"]:
            hit = next((t for t in seg["stopped_at"] if start <= t <= start + duration), None)
            stop_delays.append(None if hit is None else hit - start)
        false_stops += sum(not any(s <= t <= s + d + 2.0 for s, d in seg["stops"]) for t in seg["stopped_at"])
    frames = sum(s["frames"] for s in segments)
    unknown = np.sum([s["unknown_frames"] for s in segments], axis=0)
    normal = np.sum([s["false_unknown"] for s in segments], axis=0)
    timing = {k: sum(s["timing"][k] for s in segments) / frames * 1000.0 for k in segments[0]["timing"]}
    gaps = sum(len(s["gaps"]) for s in segments)
    found = [d for d in stop_delays if d is not None]
    return {
        "frames": frames, "hours": frames / fps / 3600.0, "gaps": gaps,
        "gaps_with_exactly_one_alert": gaps - missed - doubled, "gaps_missed": missed, "gaps_with_repeat_alerts": doubled,
        "false_alerts": false_alerts, "false_alerts_by_belt": false_by_belt,
        # The framing check (edge.framing): each belt's true pitches in view and what the daemon's log said about it.
        "framing": {seg["seed"]: {"view_pitches": seg["view_pitches"], "warnings": seg["framing_warnings"]} for seg in segments},
        "latency_s": {"p50": float(np.percentile(latencies, 50)) if latencies else None,
                      "p99": float(np.percentile(latencies, 99)) if latencies else None,
                      "max": max(latencies) if latencies else None},
        "stops": len(stop_delays), "stops_reported": len(found), "stop_delay_max_s": max(found) if found else None,
        "false_stops": false_stops,
        "unknown_scene_frames": int(unknown[1]), "unknown_scene_read_unknown": float(unknown[0] / max(1, unknown[1])),
        "normal_frames_read_unknown": float(normal[0] / max(1, normal[1])),
        "ms_per_frame": timing,
        "unknown_by_kind": {kind: (round(sum(seg["unknown_by_kind"].get(kind, [0, 0])[0] for seg in segments) / frames_of, 4)
                                   if (frames_of := sum(seg["unknown_by_kind"].get(kind, [0, 0])[1] for seg in segments)) else None)
                            for kind in UNKNOWN_KINDS},
        "scene_cost_vs_inference": timing["scene"] / max(timing["inference"], 1e-9),
        "motion_cost_vs_inference": timing["motion"] / max(timing["inference"], 1e-9),
        "alerts_in_unknown_scenes": sum(1 for seg in segments for at in seg["alerts"]
                                        if any(s <= at <= s + d + 1.0 for _, s, d in seg["episodes"])),
    }


def bars(summary: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        ("every gap raises exactly one alert", summary["gaps_with_exactly_one_alert"], summary["gaps"], "=="),
        ("alerts outside gaps", summary["false_alerts"], 0, "=="),
        ("detection latency p99 (s)", summary["latency_s"]["p99"] if summary["latency_s"]["p99"] is not None else 99.0, 1.0, "<="),
        ("slowest stopped-belt report (s)", summary["stop_delay_max_s"] if summary["stop_delay_max_s"] is not None else 99.0, 3.0, "<="),
        ("every stop reported", summary["stops_reported"], summary["stops"], "=="),
        ("unknown-scene frames read unknown", summary["unknown_scene_read_unknown"], 0.95, ">="),
        ("alerts during unknown scenes", summary["alerts_in_unknown_scenes"], 0, "=="),
        ("scene judges' cost / inference", summary["scene_cost_vs_inference"], 0.2, "<="),
    ]
    out = []
    for name, value, target, op in checks:
        met = value == target if op == "==" else value <= target if op == "<=" else value >= target
        out.append({"bar": name, "value": value, "target": f"{op} {target}", "met": bool(met)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if model_error("detection", args.model):
        return 2
    segments = max(1, args.workers) * 2
    seconds = args.minutes * 60.0 / segments
    scale = args.minutes / 60.0
    # 30 gaps, 4 stops and 10 unknown scenes an hour, shared out over the segments.
    totals = [max(1, round(n * scale)) for n in (30, 4, 10)]
    share = [[total // segments + (k < total % segments) for total in totals] for k in range(segments)]
    tasks = [(str(args.model), args.seed * 100 + k, seconds, args.fps, *share[k]) for k in range(segments)]
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(max(1, args.workers)) as pool:
        results = pool.map(run_segment, tasks)
    summary = summarise(results, args.fps)
    summary["wall_s"] = time.monotonic() - started
    summary["bars"] = bars(summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
