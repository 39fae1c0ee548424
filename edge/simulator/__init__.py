"""Conveyor-belt frame simulator (numpy + Pillow): labelled stills for datasets, moving streams for the camera.

This is the *training* renderer. A second renderer, written separately and used only for
evaluation, lives in :mod:`converter.holdout`; nothing here may import it.
"""

from edge.simulator.camera import Camera
from edge.simulator.render import render
from edge.simulator.scene import Layout, Look, Product, sample_installation, sample_layout, sample_look
from edge.simulator.spec import ACCEPTABLE, ALERT, DEFAULT_SPEC, AlertSpec, gap_pitches, longest_empty_stretch
from edge.simulator.stills import UNKNOWN, Truth, measure_gap, render_still, still_frame
from edge.simulator.stream import ConveyorStream, Drop
from edge.simulator.unknown import UNKNOWN_KINDS, render_unknown

__all__ = [
    "ACCEPTABLE",
    "ALERT",
    "DEFAULT_SPEC",
    "UNKNOWN",
    "UNKNOWN_KINDS",
    "AlertSpec",
    "Camera",
    "ConveyorStream",
    "Drop",
    "Layout",
    "Look",
    "Product",
    "Truth",
    "gap_pitches",
    "longest_empty_stretch",
    "measure_gap",
    "render",
    "render_still",
    "render_unknown",
    "sample_installation",
    "sample_layout",
    "sample_look",
    "still_frame",
]
