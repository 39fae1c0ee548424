"""Frames that matter, kept on the device: evidence around every change, and captures for a dataset.

    store.py      Records: one folder per record under a disk budget, oldest first out; ids that are safe names
    images.py     JPEG encoding (Pillow) and ROI crops stored large enough to train on
    snapshots.py  EvidenceRecorder: the frames before and after each level or health change
    capture.py    Capture: capture mode (every N seconds, plus uncertain and unknown-scene frames)
    dataset.py    Dataset: the captured crops, the operator's labels, and the training_set/ test_set/ export
    keeper.py     EvidenceKeeper: both as one feature of the daemon (snapshot source, frame observer, close)

The frame loop only hands frames over (references, no copies: sources return a fresh array per
frame); encoding and every write happen on each feature's own thread. Nothing is written while
nothing happens: evidence only on a change (and at most ``evidence.max_per_hour``), captures only
in capture mode, labels only when the operator sets them.
"""

from edge.evidence.capture import Capture
from edge.evidence.dataset import LABELS, Dataset, DatasetExportError, DatasetItem, ExportSummary
from edge.evidence.keeper import EvidenceKeeper
from edge.evidence.snapshots import EvidenceRecorder
from edge.evidence.store import Records, new_record_id, parse_frame_name

__all__ = ["LABELS", "Capture", "Dataset", "DatasetExportError", "DatasetItem", "EvidenceKeeper", "EvidenceRecorder", "ExportSummary",
           "Records", "new_record_id", "parse_frame_name"]
