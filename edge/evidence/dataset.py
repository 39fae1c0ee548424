"""The dataset made from captures: each ROI crop with the model's label, the operator's label, and the
export that ``conveyor-convert train`` reads unchanged.

An item is one ROI's crop of one capture record. Its label is the operator's (``acceptable``,
``alert``, or ``unknown`` for a scene that is not a belt with product) or, until set, none: the
model's pseudo-label is shown beside it and used in an export only when asked for.

The export is a ``.tar.gz`` laid out as the converter expects::

    training_set/acceptable/*.jpg   training_set/alert/*.jpg
    test_set/acceptable/*.jpg       test_set/alert/*.jpg
    training_set/unknown/*.jpg, test_set/unknown/*.jpg   (labelled unknown: the converter's scene head learns them)
    manifest.json                   every exported item: split, label, whether confirmed, the model's probability

The split is stratified and deterministic: within each class the items are ordered by a hash of
their id and the first ``test_fraction`` of them (at least one) go to the test set, so the same
items always give the same split, whatever order they were labelled in.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edge.errors import EdgeError
from edge.evidence.capture import ACCEPTABLE, ALERT, UNKNOWN, crop_file
from edge.evidence.store import Records

LABELS = (ACCEPTABLE, ALERT, UNKNOWN)
CLASSES = (ACCEPTABLE, ALERT)


class DatasetExportError(EdgeError):
    """The dataset cannot be exported as asked (too few labelled items of a class)."""


@dataclass(frozen=True)
class DatasetItem:
    capture: str
    roi: str
    time: str
    reason: str
    probability: float
    model_label: str
    label: str | None

    @property
    def id(self) -> str:
        return f"{self.capture}/{self.roi}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "capture": self.capture, "roi": self.roi, "time": self.time, "reason": self.reason,
                "probability": self.probability, "model_label": self.model_label, "label": self.label,
                "image": f"/api/captures/{self.capture}/{self.roi}.jpg"}


@dataclass(frozen=True)
class ExportSummary:
    counts: dict[str, dict[str, int]]  # split -> class -> items
    unknown: int
    confirmed: int
    pseudo: int


def _split_key(item_id: str) -> str:
    return hashlib.sha256(item_id.encode()).hexdigest()


class Dataset:
    """The captured crops and their labels; thread-safe (the console calls it from its executor)."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self._lock = threading.Lock()
        self._index: dict[str, list[DatasetItem]] = {}  # capture record -> its items

    def _refresh(self) -> None:
        present = self.records.ids(newest_first=False)
        known = set(present)
        for gone in [r for r in self._index if r not in known]:
            del self._index[gone]
        for record in present:
            if record not in self._index:
                meta = self.records.meta(record)
                if meta is not None:
                    self._index[record] = self._items(record, meta)

    @staticmethod
    def _items(record: str, meta: dict[str, Any]) -> list[DatasetItem]:
        return [DatasetItem(record, str(r["name"]), str(meta.get("time", "")), str(meta.get("reason", "")),
                            float(r.get("probability", 0.0)), str(r.get("model_label", "")),
                            r.get("label") if r.get("label") in LABELS else None)
                for r in meta.get("rois", []) if isinstance(r, dict) and "name" in r]

    def items(self, only_unlabelled: bool = False) -> list[DatasetItem]:
        """Every item, newest capture first."""
        with self._lock:
            self._refresh()
            out = [item for record in reversed(list(self._index)) for item in self._index[record]]
        return [i for i in out if i.label is None] if only_unlabelled else out

    def counts(self) -> dict[str, int]:
        items = self.items()
        counts = {label: sum(1 for i in items if i.label == label) for label in LABELS}
        counts["unlabelled"] = sum(1 for i in items if i.label is None)
        counts["total"] = len(items)
        return counts

    def set_labels(self, labels: dict[tuple[str, str], str | None]) -> int:
        """Set (or clear, with None) the operator's label of items given as (capture, roi); returns how many changed.

        Raises KeyError naming the first item that does not exist, ValueError for a label that is not one of LABELS.
        """
        for label in labels.values():
            if label is not None and label not in LABELS:
                raise ValueError(f"label {label!r}: expected one of {', '.join(LABELS)} or null")
        changed = 0
        with self._lock:
            self._refresh()
            by_record: dict[str, dict[str, str | None]] = {}
            for (record, roi), label in labels.items():
                if record not in self._index or roi not in {i.roi for i in self._index[record]}:
                    raise KeyError(f"{record}/{roi}")
                by_record.setdefault(record, {})[roi] = label
            for record, updates in by_record.items():
                meta = self.records.meta(record)
                if meta is None:
                    raise KeyError(record)
                for roi_meta in meta["rois"]:
                    if roi_meta["name"] in updates and roi_meta.get("label") != updates[roi_meta["name"]]:
                        roi_meta["label"] = updates[roi_meta["name"]]
                        roi_meta["labelled_at"] = time.time()
                        changed += 1
                self.records.update_meta(record, meta)
                self._index[record] = self._items(record, meta)
        return changed

    def export(self, out: BinaryIO, test_fraction: float = 0.2, include_unconfirmed: bool = False) -> ExportSummary:
        """Write the ``training_set/``/``test_set/`` archive (tar.gz) to ``out``.

        Raises :class:`DatasetExportError` when a class has fewer than two items (each split needs one).
        """
        if not 0.0 < test_fraction < 1.0:
            raise DatasetExportError(f"test_fraction {test_fraction}: expected a number between 0 and 1")
        chosen: dict[str, list[tuple[DatasetItem, bool]]] = {c: [] for c in (*CLASSES, UNKNOWN)}
        for item in self.items():
            if item.label is not None:
                chosen[item.label].append((item, True))
            elif include_unconfirmed and item.model_label in CLASSES:
                chosen[item.model_label].append((item, False))
        short = [f"{c}: {len(chosen[c])}" for c in CLASSES if len(chosen[c]) < 2]
        if short:
            which = "labelled" if not include_unconfirmed else "labelled or pseudo-labelled"
            raise DatasetExportError(f"each class needs at least 2 {which} crops (one for each split); have {', '.join(short)}")
        counts: dict[str, dict[str, int]] = {"training_set": {}, "test_set": {}}
        manifest = []
        with tarfile.open(fileobj=out, mode="w:gz") as tar:

            def write(label: str, n_test: int, ordered: list[tuple[DatasetItem, bool]]) -> None:
                """The first ``n_test`` items (in id-hash order) go to test_set/, the rest to training_set/."""
                for position, (item, confirmed) in enumerate(ordered):
                    split = "test_set" if position < n_test else "training_set"
                    name = f"{split}/{label}/{item.capture}_{item.roi}.jpg"
                    self._add(tar, item, name)
                    counts[split][label] = counts[split].get(label, 0) + 1
                    manifest.append({"file": name, "split": split, "label": label, "confirmed": confirmed,
                                     "probability": item.probability, "model_label": item.model_label, "time": item.time})

            for cls in CLASSES:
                ordered = sorted(chosen[cls], key=lambda pair: _split_key(pair[0].id))
                write(cls, min(len(ordered) - 1, max(1, round(len(ordered) * test_fraction))), ordered)
            # Unknown scenes go into each split's unknown/ folder: the converter trains and judges its scene head on
            # them. Every one was put there by hand; a single one goes to training.
            ordered = [(item, True) for item, _ in sorted(chosen[UNKNOWN], key=lambda pair: _split_key(pair[0].id))]
            write(UNKNOWN, min(len(ordered) - 1, round(len(ordered) * test_fraction)) if len(ordered) > 1 else 0, ordered)
            data = json.dumps({"items": manifest, "counts": counts}, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
        pairs = [p for c in CLASSES for p in chosen[c]]
        return ExportSummary(counts, len(chosen[UNKNOWN]), sum(1 for _, c in pairs if c), sum(1 for _, c in pairs if not c))

    def _add(self, tar: tarfile.TarFile, item: DatasetItem, name: str) -> None:
        path = self.records.file(item.capture, crop_file(item.roi))
        if path is None:
            raise DatasetExportError(f"{item.id}: its crop is gone (evicted under the capture budget?)")
        tar.add(str(path), arcname=name)

    def export_file(self, path: Path, test_fraction: float = 0.2, include_unconfirmed: bool = False) -> ExportSummary:
        """:meth:`export` to a file (written aside and renamed: a failed export leaves nothing behind)."""
        tmp = path.with_name(path.name + ".partial")
        try:
            with tmp.open("wb") as out:
                summary = self.export(out, test_fraction, include_unconfirmed)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return summary
