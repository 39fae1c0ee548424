"""Measure a float model and its int8 conversion: per split, on the second renderer, and per hard case.

Every int8 figure comes from the real TFLite interpreter fed by the device's own preprocessing
(:func:`edge.preprocess.resize_rgb` / :func:`~edge.preprocess.quantize_input`) and judged by the device's
own scene code (:func:`edge.scene.judge_scene`) at the card's limits. Rows:

* ``test`` (and ``validation``): alert recall, precision, false-alert rate and confusion on belt frames,
  float vs int8 agreement, the scene judges on belt frames (false unknowns) and on unknown scenes, and
  one row per kind of frame when the dataset has a manifest;
* ``second_renderer``: the same alert figures on frames from :mod:`converter.holdout`;
* ``hard_cases``: one row per case (hand, covered lens, grey wall, noise, glare, night, lanes, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.dataset import Split
from converter.model import SourceModel
from edge.inference import Classifier
from edge.preprocess import PIXEL_SCALE, Box, quantize_input, resize_rgb
from edge.scene import SceneRules, judge_scene, judge_statistics, scene_statistics

Uint8Image = npt.NDArray[np.uint8]


def metrics(labels: npt.NDArray[np.int32], predicted: npt.NDArray[np.int32]) -> dict[str, Any]:
    """Accuracy, precision/recall of the alert class, the false-alert rate, and the confusion matrix."""
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    total = max(1, len(labels))
    return {
        "images": len(labels),
        "accuracy": (tp + tn) / total,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "false_alert_rate": fp / (fp + tn) if fp + tn else 0.0,
        # rows: true class (acceptable, alert); columns: predicted class
        "confusion": [[tn, fp], [fn, tp]],
    }


@dataclass(frozen=True)
class Scored:
    """Per-image int8 outputs and scene verdicts for a set of 64x64 crops."""

    alert: npt.NDArray[np.float32]
    unknown: npt.NDArray[np.float32] | None
    judged_unknown: npt.NDArray[np.bool_]
    stats_unknown: npt.NDArray[np.bool_]


def score(classifier: Classifier, crops: Uint8Image | Sequence[Uint8Image], rules: SceneRules | None = None) -> Scored:
    """Run each 64x64 crop through the interpreter (one invoke per crop, as on the device) and the scene judges."""
    card = classifier.card
    rules = rules or card.scene
    n = len(crops)
    alert = np.empty(n, np.float32)
    unknown = np.empty(n, np.float32) if card.has_unknown_head else None
    judged = np.zeros(n, bool)
    stats_only = np.zeros(n, bool)
    for i, crop in enumerate(crops):
        scores = classifier.classify(quantize_input(crop, card.input.scale, card.input.zero_point, card.input.dtype)[None])
        alert[i] = scores.alert[0]
        u = None if scores.unknown is None else float(scores.unknown[0])
        if unknown is not None and u is not None:
            unknown[i] = u
        judged[i] = judge_scene(crop, u, rules).unknown
        stats_only[i] = judge_statistics(scene_statistics(crop), rules).unknown
    return Scored(alert, unknown, judged, stats_only)


def crops_of(frames: Sequence[Uint8Image], rois: Sequence[tuple[float, float, float, float] | None] | None = None) -> list[Uint8Image]:
    """The 64x64 crops the device would feed the model (whole frame, or each frame's region of interest)."""
    rois = rois or [None] * len(frames)
    return [resize_rgb(frame, Box(*roi) if roi is not None else Box()) for frame, roi in zip(frames, rois, strict=True)]


def split_report(split: Split, scored: Scored, float_probs: npt.NDArray[np.float32] | None, threshold: float) -> dict[str, Any]:
    """Alert figures on the belt frames, scene figures on all frames, and a row per kind of frame."""
    belt = split.belt
    labels = split.labels[belt]
    int8_pred = (scored.alert[belt] >= threshold).astype(np.int32)
    report: dict[str, Any] = {"images": len(split.labels), "belt_images": int(belt.sum()), "threshold": threshold,
                              "int8": metrics(labels, int8_pred)}
    if float_probs is not None:
        float_pred = (float_probs[belt] >= threshold).astype(np.int32)
        report["float"] = metrics(labels, float_pred)
        report["agreement"] = float(np.mean(float_pred == int8_pred)) if len(labels) else 1.0
        report["max_abs_probability_difference"] = float(np.max(np.abs(float_probs[belt] - scored.alert[belt]))) if len(labels) else 0.0
    odd = split.unknown == 1
    report["scene"] = {
        "false_unknown_rate": float(np.mean(scored.judged_unknown[belt])) if belt.any() else 0.0,
        "unknown_images": int(odd.sum()),
        "unknown_recall": float(np.mean(scored.judged_unknown[odd])) if odd.any() else 0.0,
        "unknown_called_alert_after_scene_judge": int(np.sum(odd & ~scored.judged_unknown & (scored.alert >= threshold))),
    }
    if split.kinds:
        rows = []
        kinds = np.asarray(split.kinds)
        for kind in sorted(set(split.kinds)):
            sel = kinds == kind
            row = {"kind": kind, "images": int(sel.sum()), "alert_rate": float(np.mean(scored.alert[sel] >= threshold)),
                   "unknown_rate": float(np.mean(scored.judged_unknown[sel]))}
            if (split.unknown[sel] == 0).all():
                row["expected"] = "alert" if (split.labels[sel] == 1).all() else "acceptable" if (split.labels[sel] == 0).all() else "mixed"
            else:
                row["expected"] = "unknown"
            rows.append(row)
        report["rows"] = rows
    report["misclassified_int8"] = [str(p) for p, y, b, a in zip(split.paths, split.labels, belt, scored.alert >= threshold, strict=True)
                                    if b and bool(a) != bool(y)][:200]
    return report


def float_alert(source: SourceModel, images: Uint8Image) -> npt.NDArray[np.float32]:
    """The float model's alert probability (column 0) for uint8 64x64 crops."""
    return source.predict(images.astype(np.float32) * np.float32(PIXEL_SCALE))[:, 0].copy()


def holdout_crops(count: int, seed: int) -> tuple[list[Uint8Image], npt.NDArray[np.int32]]:
    """``count`` whole-frame crops from the second renderer, alternating acceptable and alert."""
    from converter.holdout import holdout_set

    frames, labels = holdout_set(count, seed)
    return crops_of(frames), labels


def holdout_report(classifier: Classifier, crops: list[Uint8Image], labels: npt.NDArray[np.int32], threshold: float) -> dict[str, Any]:
    """Alert figures on second-renderer frames (never used for training or tuning), and how often they read unknown."""
    scored = score(classifier, crops)
    report = metrics(labels, (scored.alert >= threshold).astype(np.int32))
    report["unknown_rate_on_belt_frames"] = float(np.mean(scored.judged_unknown))
    report["unknown_rate_on_belt_frames_statistics_only"] = float(np.mean(scored.stats_unknown))
    head = classifier.card.scene.unknown_threshold
    if scored.unknown is not None and head is not None:
        report["unknown_rate_on_belt_frames_head_only"] = float(np.mean(scored.unknown >= head))
    report["alert_after_scene_judge"] = metrics(labels, ((scored.alert >= threshold) & ~scored.judged_unknown).astype(np.int32))
    return report


def case_row(name: str, expected: str, scored: Scored, threshold: float) -> dict[str, Any]:
    """One hard case: how often it was called alert (raw, and after the scene judges) and unknown, and whether it passed."""
    raw_alert = scored.alert >= threshold
    final_alert = raw_alert & ~scored.judged_unknown
    row = {"case": name, "expected": expected, "images": len(scored.alert),
           "alert_rate": float(np.mean(raw_alert)), "unknown_rate": float(np.mean(scored.judged_unknown)),
           "alert_after_scene_judge": float(np.mean(final_alert)),
           "unknown_rate_statistics_only": float(np.mean(scored.stats_unknown))}
    if expected == "alert":
        row["passed"] = bool(np.mean(final_alert) >= 0.9)
    elif expected == "acceptable":
        row["passed"] = bool(np.mean(final_alert) <= 0.05)
    elif expected == "unknown":
        row["passed"] = bool(np.mean(final_alert) == 0.0 and np.mean(scored.judged_unknown) >= 0.95)
    else:  # not_alert
        row["passed"] = bool(np.mean(final_alert) <= 0.05)
    return row


def hard_case_crops(per_case: int, seed: int) -> dict[str, tuple[str, list[Uint8Image]]]:
    """Every hard case of the second renderer, ``per_case`` frames each: name -> (expectation, crops)."""
    from converter.holdout import HARD_CASES, render_case

    out = {}
    for k, name in enumerate(HARD_CASES):
        cases = [render_case(name, np.random.default_rng((seed, 23, k, i))) for i in range(per_case)]
        out[name] = (cases[0].expected, crops_of([c.image for c in cases], [c.roi for c in cases]))
    return out


def hard_case_rows(classifier: Classifier, cases: dict[str, tuple[str, list[Uint8Image]]], threshold: float) -> list[dict[str, Any]]:
    """One row per hard case: alert and unknown rates, by the combined judges and by each judge alone."""
    rows = []
    head = classifier.card.scene.unknown_threshold
    for name, (expected, crops) in cases.items():
        scored = score(classifier, crops)
        row = case_row(name, expected, scored, threshold)
        if scored.unknown is not None and head is not None:
            row["unknown_rate_head_only"] = float(np.mean(scored.unknown >= head))
        rows.append(row)
    return rows


def mahalanobis_option(source: SourceModel, validation: Split, cases: dict[str, tuple[str, list[Uint8Image]]],
                       normal: list[Uint8Image], false_unknown: float = 0.01) -> dict[str, Any] | None:
    """The shortcut the issue measured, for comparison: a per-class Mahalanobis distance on the float model's
    Dense(128) features (shared covariance), limit at validation belt frames' (1 - false_unknown) quantile.
    Returns the share of each hard case and of the normal frames it flags, or None without a Keras model."""
    if source.keras_model is None or "dense" not in {layer.name for layer in source.keras_model.layers}:
        return None
    import keras

    features = keras.Model(source.keras_model.input, source.keras_model.get_layer("dense").output)

    def embed(images: Uint8Image | Sequence[Uint8Image]) -> npt.NDArray[np.float64]:
        batch = np.stack(list(images)).astype(np.float32) * np.float32(PIXEL_SCALE)
        return np.asarray(features.predict(batch, verbose=0), np.float64)

    belt = validation.belt
    x, y = embed(validation.images[belt]), validation.labels[belt]
    means = [x[y == c].mean(axis=0) for c in (0, 1)]
    centred = np.concatenate([x[y == c] - means[c] for c in (0, 1)])
    cov = np.cov(centred, rowvar=False) + np.eye(x.shape[1]) * 1e-3 * np.trace(np.cov(centred, rowvar=False)) / x.shape[1]
    inv = np.linalg.inv(cov)

    def distance(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.min(np.stack([np.einsum("ij,jk,ik->i", z - m, inv, z - m) for m in means]), axis=0)

    limit = float(np.quantile(distance(x), 1 - false_unknown))
    rows = {name: float(np.mean(distance(embed(crops)) > limit)) for name, (_, crops) in cases.items()}
    return {"rule": f"Mahalanobis distance on Dense(128) features > validation {1 - false_unknown:.0%} quantile",
            "normal_frames_second_renderer": float(np.mean(distance(embed(normal)) > limit)) if normal else None,
            "hard_cases_flagged": rows}


def write_report_png(report: dict[str, Any], split: Split, scored: Scored, threshold: float, path: Path) -> None:
    """Test-set confusion matrices, the hard-case rows, and a grid of the frames the int8 model got wrong."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    belt = np.flatnonzero(split.belt)
    wrong = [i for i in belt if (scored.alert[i] >= threshold) != bool(split.labels[i])]
    cols = 8
    rows = max(1, int(np.ceil(min(len(wrong), 24) / cols)))
    fig = plt.figure(figsize=(14, 5 + 1.6 * rows))
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[3.5] + [1] * rows)
    test = report["test"]
    for k, which in enumerate(("float", "int8")):
        if which not in test:
            continue
        ax = fig.add_subplot(grid[0, k * 2 : k * 2 + 2])
        cm = np.asarray(test[which]["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=12)
        ax.set_xticks([0, 1], ["pred ok", "pred alert"])
        ax.set_yticks([0, 1], ["true ok", "true alert"])
        ax.set_title(f"test {which}: recall {test[which]['recall']:.3f} precision {test[which]['precision']:.3f}", fontsize=9)
    ax = fig.add_subplot(grid[0, 4:])
    ax.axis("off")
    lines = [f"threshold {threshold:.3f}"]
    if "second_renderer" in report:
        sr = report["second_renderer"]
        lines.append(f"second renderer: recall {sr['recall']:.3f}, false alerts {sr['false_alert_rate']:.3f} ({sr['images']} frames)")
    for row in report.get("hard_cases", []):
        lines.append(f"{'ok ' if row['passed'] else 'BAD'} {row['case'][:38]:38s} alert {row['alert_after_scene_judge']:.2f} "
                     f"unknown {row['unknown_rate']:.2f}")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7)
    for j, index in enumerate(wrong[:24]):
        ax = fig.add_subplot(grid[1 + j // cols, j % cols])
        ax.imshow(split.images[index])
        ax.set_title(f"{'alert' if split.labels[index] else 'ok'} p={scored.alert[index]:.2f}", fontsize=7)
        ax.axis("off")
    if not wrong:
        ax = fig.add_subplot(grid[1, :])
        ax.text(0.5, 0.5, "no misclassified test frames", ha="center", va="center")
        ax.axis("off")
    fig.savefig(path, dpi=80)
    plt.close(fig)
