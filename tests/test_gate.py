"""The gate's pure parts: the threshold chosen on validation, scene calibration, and the failure reasons."""

from __future__ import annotations

import numpy as np

from converter.gate import OUTPUT_STEP, GateOptions, calibrate_scene, choose_threshold, gate_failures, recall_target
from edge.scene import SceneStatistics


def test_separated_classes_get_the_log_odds_midpoint() -> None:
    """Acceptable frames near 0.05 and alert frames near 0.9: the threshold sits between them, on the uint8 grid."""
    rng = np.random.default_rng(0)
    neg = rng.uniform(0.01, 0.08, 500)
    pos = rng.uniform(0.85, 0.99, 500)
    threshold, info = choose_threshold(np.r_[neg, pos].astype(np.float32), np.r_[np.zeros(500), np.ones(500)].astype(np.int32), 0.97)
    assert neg.max() < threshold < pos.min() and "midpoint" in info["rule"]
    assert abs(threshold / OUTPUT_STEP - round(threshold / OUTPUT_STEP - 0.5) - 0.5) < 1e-9


def test_overlapping_classes_are_lowered_until_validation_recall_meets_the_floor() -> None:
    """When the classes overlap, the chosen threshold keeps at least the recall floor on validation."""
    rng = np.random.default_rng(1)
    neg = np.clip(rng.normal(0.3, 0.15, 1000), 0, 1)
    pos = np.clip(rng.normal(0.7, 0.15, 1000), 0, 1)
    probs = np.r_[neg, pos].astype(np.float32)
    labels = np.r_[np.zeros(1000), np.ones(1000)].astype(np.int32)
    threshold, info = choose_threshold(probs, labels, 0.97)
    assert np.mean(pos >= threshold) >= 0.97 and "recall floor" in info["rule"]


def _stats(n: int, rng: np.random.Generator) -> list[SceneStatistics]:
    return [SceneStatistics(float(rng.uniform(0, 0.05)), float(rng.uniform(0.5, 0.95)), float(rng.uniform(3, 30)),
                            float(rng.uniform(40, 200)), float(rng.uniform(0, 0.3))) for _ in range(n)]


def test_scene_calibration_puts_the_head_between_belt_and_unknown_frames() -> None:
    """Belt frames' unknown probabilities below 0.2, unknown scenes' above 0.7: the head threshold lands between;
    statistics limits sit outside the belt frames' range."""
    rng = np.random.default_rng(2)
    stats = _stats(600, rng)
    probs = np.r_[rng.uniform(0.0, 0.2, 500), rng.uniform(0.7, 1.0, 100)].astype(np.float32)
    is_unknown = np.r_[np.zeros(500), np.ones(100)].astype(np.int32)
    rules, _ = calibrate_scene(stats, probs, is_unknown, 0.01)
    assert rules.unknown_threshold is not None and 0.2 < rules.unknown_threshold < 0.7
    belt = stats[:500]
    assert all(s.saturated <= rules.max_saturated and s.detail >= rules.min_detail and s.brightness >= rules.min_brightness
               and s.correlation >= rules.min_correlation and s.dark_share <= rules.max_dark_share for s in belt)
    assert 0.6 <= rules.max_dark_share <= 0.85  # a cover over most of the view always reads covered


def test_gate_names_each_missed_floor() -> None:
    """Recall, precision, agreement and the scene judges each produce their own reason."""
    report = {"int8": {"recall": 0.9, "precision": 0.8, "accuracy": 0.85}, "float": {"accuracy": 0.85}, "agreement": 0.95,
              "scene": {"false_unknown_rate": 0.05, "unknown_images": 10, "unknown_recall": 0.5}}
    problems = gate_failures(report, GateOptions())
    assert len(problems) == 5
    assert [p.split()[0] for p in problems] == ["alert", "alert", "float/int8", "5.00%", "only"]
    good = {"int8": {"recall": 0.99, "precision": 0.99, "accuracy": 0.99}, "float": {"accuracy": 0.99}, "agreement": 1.0,
            "scene": {"false_unknown_rate": 0.0, "unknown_images": 10, "unknown_recall": 1.0}}
    assert gate_failures(good, GateOptions()) == []


def test_overlapping_classes_get_the_highest_threshold_whose_recall_meets_the_floor_plus_its_sampling_error() -> None:
    """Precision first: of the thresholds whose validation recall meets the floor plus one standard error, the highest."""
    rng = np.random.default_rng(3)
    neg = np.clip(rng.normal(0.25, 0.12, 500), 0, 1)
    pos = np.clip(rng.normal(0.75, 0.12, 500), 0, 1)
    probs = np.r_[neg, pos].astype(np.float32)
    labels = np.r_[np.zeros(500), np.ones(500)].astype(np.int32)
    threshold, info = choose_threshold(probs, labels, 0.97, 0.95)
    target = recall_target(0.97, 500)
    assert 0.977 < target < 0.978 and info["validation_recall_target"] == target
    assert np.mean(pos >= threshold) >= target
    assert np.mean(pos >= threshold + OUTPUT_STEP) < target  # one step higher would miss the target
    assert info["validation_false_alert_rate"] == np.mean(neg >= threshold)
