"""Float vs int8 on the test set: accuracy, precision, recall, confusion matrices and agreement."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.dataset import Split
from converter.model import SourceModel
from edge.inference import Classifier
from edge.preprocess import PIXEL_SCALE, quantize_input


def metrics(labels: npt.NDArray[np.int32], predicted: npt.NDArray[np.int32]) -> dict[str, Any]:
    """Accuracy, and precision/recall of the positive (alert) class, with the confusion matrix."""
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    total = max(1, len(labels))
    return {
        "accuracy": (tp + tn) / total,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        # rows: true class (negative, positive); columns: predicted class
        "confusion": [[tn, fp], [fn, tp]],
    }


@dataclass(frozen=True)
class Evaluation:
    """Both models' probabilities on one split, and the report built from them."""

    float_probs: npt.NDArray[np.float32]
    int8_probs: npt.NDArray[np.float32]
    threshold: float
    report: dict[str, Any]


def int8_probabilities(classifier: Classifier, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Run each 64x64 image through the real TFLite interpreter, one invoke per image as on the device."""
    card = classifier.card
    out = np.empty(len(images), np.float32)
    for i, image in enumerate(images):
        tensor = quantize_input(image, card.input.scale, card.input.zero_point, card.input.dtype)
        out[i] = classifier.classify(tensor[None])[0]
    return out


def evaluate(source: SourceModel, classifier: Classifier, split: Split, threshold: float) -> Evaluation:
    """Compare the float model and the int8 model on ``split``."""
    float_probs = source.predict(split.images.astype(np.float32) * np.float32(PIXEL_SCALE))
    int8_probs = int8_probabilities(classifier, split.images)
    float_pred = (float_probs >= threshold).astype(np.int32)
    int8_pred = (int8_probs >= threshold).astype(np.int32)
    report = {
        "images": len(split.labels),
        "class_names": list(split.class_names),
        "threshold": threshold,
        "float": metrics(split.labels, float_pred),
        "int8": metrics(split.labels, int8_pred),
        "agreement": float(np.mean(float_pred == int8_pred)) if len(split.labels) else 1.0,
        "max_abs_probability_difference": float(np.max(np.abs(float_probs - int8_probs))) if len(split.labels) else 0.0,
        "misclassified_int8": [str(p) for p, y, q in zip(split.paths, split.labels, int8_pred, strict=True) if y != q],
        "runtime": f"{classifier.runtime.name} {classifier.runtime.version}",
    }
    return Evaluation(float_probs, int8_probs, threshold, report)


def gate_failures(report: dict[str, Any], accuracy_budget: float, agreement_floor: float) -> list[str]:
    """Why the int8 model must not ship, or an empty list."""
    problems = []
    drop = report["float"]["accuracy"] - report["int8"]["accuracy"]
    if drop > accuracy_budget:
        problems.append(
            f"int8 accuracy {report['int8']['accuracy']:.4f} is {drop * 100:.2f} points below float "
            f"{report['float']['accuracy']:.4f} (budget {accuracy_budget * 100:.2f})"
        )
    if report["agreement"] < agreement_floor:
        problems.append(f"float/int8 agreement {report['agreement']:.4f} is below the floor {agreement_floor:.4f}")
    return problems


def write_report_png(evaluation: Evaluation, split: Split, path: Path) -> None:
    """Confusion matrices (float, int8) and a grid of the frames the int8 model got wrong."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = evaluation.report
    wrong = [i for i, (y, p) in enumerate(zip(split.labels, evaluation.int8_probs >= evaluation.threshold, strict=True)) if y != int(p)]
    cols = 8
    rows = max(1, int(np.ceil(min(len(wrong), 24) / cols)))
    fig = plt.figure(figsize=(12, 4 + 1.6 * rows))
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[3] + [1] * rows)
    names = report["class_names"]
    for k, which in enumerate(("float", "int8")):
        ax = fig.add_subplot(grid[0, k * 4 : k * 4 + 3])
        cm = np.asarray(report[which]["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=14)
        ax.set_xticks([0, 1], [f"pred {n}" for n in names])
        ax.set_yticks([0, 1], [f"true {n}" for n in names])
        ax.set_title(f"{which}: accuracy {report[which]['accuracy']:.3f}")
    for j, index in enumerate(wrong[:24]):
        ax = fig.add_subplot(grid[1 + j // cols, j % cols])
        ax.imshow(split.images[index])
        ax.set_title(f"{names[split.labels[index]]} p={evaluation.int8_probs[index]:.2f}", fontsize=7)
        ax.axis("off")
    if not wrong:
        ax = fig.add_subplot(grid[1, :])
        ax.text(0.5, 0.5, "no misclassified frames", ha="center", va="center")
        ax.axis("off")
    fig.suptitle(f"float/int8 agreement {report['agreement']:.4f} on {report['images']} test images")
    fig.savefig(path, dpi=80)
    plt.close(fig)
