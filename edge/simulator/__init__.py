"""Conveyor-belt frame simulator (numpy only): stills for datasets, streams for the synthetic camera."""

from edge.simulator.render import CameraLook, Cookie, render_frame
from edge.simulator.scene import BeltScene, sample_look, sample_scene, still_frame
from edge.simulator.stream import ConveyorStream, Drop

__all__ = [
    "BeltScene",
    "CameraLook",
    "ConveyorStream",
    "Cookie",
    "Drop",
    "render_frame",
    "sample_look",
    "sample_scene",
    "still_frame",
]
