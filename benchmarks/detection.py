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

The loop mirrors ``edge/pipeline.py`` (the daemon's frame stage): image health at 10 Hz, the crop, one
int8 invoke (:class:`edge.inference.Classifier`), the scene judges (:mod:`edge.scene`) with the card's
limits, belt motion (:mod:`edge.motion`), and :class:`edge.levels.AlertLevels` with the config's default
timing and the bands derived from the card's threshold. A frame judged unknown (or unhealthy) does not
feed the alert levels, as the daemon's state then reads ``unknown``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from converter.holdout import HoldoutStream, Script
from edge.health import HealthRules, ImageHealth
from edge.inference import Classifier, load_runtime
from edge.levels import AlertLevels, LevelRules, bands_from_threshold
from edge.motion import BeltMotion, MotionRules, small_grey
from edge.preprocess import resize_rgb
from edge.scene import judge_scene, scene_statistics

UNKNOWN_KINDS = ("hand", "covered_lens", "grey_wall", "noise", "glare")
# The daemon's level timing defaults (edge/config.py) and health defaults.
WINDOW_S, DWELL_S, MIN_FRAMES = 0.6, 0.4, 3
HEALTH = HealthRules(frozen_after_s=10.0, dark_level=12.0, blur_level=2.0, degraded_after_s=5.0)
STATS_EVERY = 3


def make_script(rng: np.random.Generator, seconds: float, gaps: int, stops: int, episodes: int) -> Script:
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
            script["episode"].append((UNKNOWN_KINDS[len(script["episode"]) % len(UNKNOWN_KINDS)], slot, 6.0))
        else:
            script["row"].append(slot)
    return Script(gaps=tuple(script["gap"]), missing_rows=tuple(script["row"]), stops=tuple(script["stop"]),
                  episodes=tuple(script["episode"]))


def run_segment(args: tuple[str, int, float, float, int, int, int]) -> dict[str, Any]:
    model, seed, seconds, fps, gaps, stops, episodes = args
    rng = np.random.default_rng((seed, 1))
    script = make_script(rng, seconds, gaps, stops, episodes)
    stream = HoldoutStream(seed, script, fps=fps)
    classifier = Classifier.from_files(Path(model), load_runtime("auto"))
    card = classifier.card
    bands = bands_from_threshold(card.threshold)
    levels = AlertLevels("belt", LevelRules.from_bands(WINDOW_S, DWELL_S, MIN_FRAMES, bands.warning, bands.alert))
    health = ImageHealth(HEALTH)
    motion = BeltMotion(MotionRules(), stream.inst.width)
    batch = np.empty((1, 64, 64, 3), np.uint8)
    alerts: list[float] = []
    events: list[tuple[float, str, str]] = []
    stopped_at: list[float] = []
    was_stopped = False
    unknown_frames = [0, 0]  # judged unknown, frames in episodes
    false_unknown = [0, 0]  # judged unknown, normal frames
    timing = {"render": 0.0, "inference": 0.0, "scene": 0.0, "motion": 0.0, "levels": 0.0}
    next_health = -1.0
    stats = None
    frames = int(seconds * fps)
    for i in range(frames):
        t = i / fps
        t0 = time.perf_counter()
        frame = stream.frame(i)
        truth = stream.truth(i)
        t1 = time.perf_counter()
        crop = resize_rgb(frame)
        if t >= next_health:
            health.update(crop, t)
            next_health = t + 0.1
        batch[0] = crop
        scores = classifier.classify(batch)
        t2 = time.perf_counter()
        if i % STATS_EVERY == 0:  # statistics judge seconds-long conditions: refreshed five times a second
            stats = scene_statistics(crop)
        verdict = judge_scene(crop, None if scores.unknown is None else float(scores.unknown[0]), card.scene, stats)
        t3 = time.perf_counter()
        if not verdict.unknown:  # a hand in the way is not the belt stopping
            reading = motion.update(small_grey(frame), t)
            if reading.stopped and not was_stopped:
                stopped_at.append(t)
            was_stopped = reading.stopped
        t4 = time.perf_counter()
        if truth.episode is not None:
            unknown_frames[0] += verdict.unknown
            unknown_frames[1] += 1
        else:
            false_unknown[0] += verdict.unknown
            false_unknown[1] += 1
        if not verdict.unknown and health.verdict == "ok":
            change = levels.update(float(scores.alert[0]), t)
            if change is not None:
                events.append((t, change.previous, change.level))
                if change.level == "alert":
                    alerts.append(t)
        t5 = time.perf_counter()
        timing["render"] += t1 - t0
        timing["inference"] += t2 - t1
        timing["scene"] += t3 - t2
        timing["motion"] += t4 - t3
        timing["levels"] += t5 - t4
    spans = [stream.gap_visible_span(k) for k in range(len(script.gaps))]
    return {"seed": seed, "frames": frames, "gaps": [(s, g, *span) for (s, g), span in zip(script.gaps, spans, strict=True)],
            "stops": list(script.stops), "alerts": alerts, "events": events, "stopped_at": stopped_at,
            "unknown_frames": unknown_frames, "false_unknown": false_unknown, "timing": timing}


def summarise(segments: list[dict[str, Any]], fps: float) -> dict[str, Any]:
    latencies, missed, doubled, false_alerts = [], 0, 0, 0
    stop_delays, false_stops = [], 0
    for seg in segments:
        windows = [(start, last + 2.0, first) for start, _, first, last in seg["gaps"]]
        used = [0] * len(windows)
        for at in seg["alerts"]:
            hit = next((k for k, (lo, hi, _) in enumerate(windows) if lo <= at <= hi), None)
            if hit is None:
                false_alerts += 1
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
        "false_alerts": false_alerts,
        "latency_s": {"p50": float(np.percentile(latencies, 50)) if latencies else None,
                      "p99": float(np.percentile(latencies, 99)) if latencies else None,
                      "max": max(latencies) if latencies else None},
        "stops": len(stop_delays), "stops_reported": len(found), "stop_delay_max_s": max(found) if found else None,
        "false_stops": false_stops,
        "unknown_scene_frames": int(unknown[1]), "unknown_scene_read_unknown": float(unknown[0] / max(1, unknown[1])),
        "normal_frames_read_unknown": float(normal[0] / max(1, normal[1])),
        "ms_per_frame": timing,
        "scene_cost_vs_inference": timing["scene"] / max(timing["inference"], 1e-9),
    }


def bars(summary: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        ("every gap raises exactly one alert", summary["gaps_with_exactly_one_alert"], summary["gaps"], "=="),
        ("alerts outside gaps", summary["false_alerts"], 0, "=="),
        ("detection latency p99 (s)", summary["latency_s"]["p99"] if summary["latency_s"]["p99"] is not None else 99.0, 1.0, "<="),
        ("slowest stopped-belt report (s)", summary["stop_delay_max_s"] if summary["stop_delay_max_s"] is not None else 99.0, 3.0, "<="),
        ("every stop reported", summary["stops_reported"], summary["stops"], "=="),
        ("unknown-scene frames read unknown", summary["unknown_scene_read_unknown"], 0.95, ">="),
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
