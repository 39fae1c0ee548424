"""Random but plausible camera looks and cookie layouts; still frames for datasets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.simulator.render import CameraLook, Cookie, render_frame

FRAME_SIZES = ((160, 120), (200, 150), (240, 180), (320, 240), (320, 180), (400, 300), (480, 270), (480, 360))
BELT_COLOURS = ((205, 205, 198), (172, 175, 172), (95, 132, 170), (104, 150, 122), (196, 186, 160))
# Fraction of the visible belt length that must be empty for a frame to be an 'alert' frame.
ALERT_GAP_MIN, ALERT_GAP_MAX = 0.42, 0.95


@dataclass(frozen=True)
class BeltScene:
    """How product is laid on the belt: rows across the belt, ``lanes`` cookies per row."""

    lanes: int
    lane_gap: float
    radius: float
    pitch: float  # distance between rows along the flow
    stagger: bool
    jitter: float

    def lane_positions(self, look: CameraLook, row: int) -> list[float]:
        margin = look.belt_half_width - self.lane_gap * self.lanes / 2.0
        shift = self.lane_gap / 2.0 if self.stagger and row % 2 else 0.0
        first = -look.belt_half_width + margin + self.lane_gap / 2.0
        positions = [first + lane * self.lane_gap + shift for lane in range(self.lanes)]
        limit = look.belt_half_width - self.radius - 1.0
        return [v for v in positions if abs(v) <= limit]

    def visible_half_length(self, look: CameraLook) -> float:
        return float(np.hypot(look.width, look.height)) / 2.0 + self.radius


def sample_look(rng: np.random.Generator, size: tuple[int, int] | None = None) -> CameraLook:
    """A random camera set-up: frame size, belt placement, colours, light, noise, blur."""
    width, height = size if size is not None else FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
    belt = np.asarray(BELT_COLOURS[int(rng.integers(len(BELT_COLOURS)))], dtype=float) * rng.uniform(0.9, 1.1, 3)
    rail = float(rng.uniform(55, 115))
    cookie = np.asarray((98, 62, 36), dtype=float) * rng.uniform(0.8, 1.45) * rng.uniform(0.92, 1.08, 3)
    return CameraLook(
        width=width,
        height=height,
        tilt_deg=float(rng.uniform(-8, 8)),
        belt_offset=float(rng.uniform(-0.07, 0.07) * height),
        belt_half_width=float(rng.uniform(0.32, 0.46) * height),
        belt_rgb=(float(belt[0]), float(belt[1]), float(belt[2])),
        rail_rgb=(rail, rail * 1.02, rail * 1.05),
        cookie_rgb=(float(cookie[0]), float(cookie[1]), float(cookie[2])),
        gain=float(rng.uniform(0.6, 1.3)),
        gradient=(float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.35, 0.35))),
        cast=(float(rng.uniform(0.87, 1.13)), float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.87, 1.13))),
        noise_sigma=float(rng.choice([0.0, 2.0, 4.0, 7.0, 10.0])),
        blur=int(rng.choice([1, 1, 1, 2, 3])),
        texture_seed=int(rng.integers(1 << 30)),
    )


def sample_scene(rng: np.random.Generator, look: CameraLook) -> BeltScene:
    """A random product layout that fits the belt in ``look``."""
    lanes = int(rng.integers(3, 7))
    lane_gap = 2.0 * look.belt_half_width * rng.uniform(0.9, 0.97) / lanes
    radius = lane_gap / 2.0 * rng.uniform(0.7, 0.9)
    return BeltScene(
        lanes=lanes,
        lane_gap=lane_gap,
        radius=radius,
        pitch=2.0 * radius * rng.uniform(1.08, 1.45),
        stagger=bool(rng.random() < 0.4),
        jitter=float(rng.uniform(0.0, 0.08)),
    )


def cookie_at(scene: BeltScene, look: CameraLook, u: float, v: float, rng: np.random.Generator) -> Cookie:
    """One cookie with its own size, bake and placement jitter."""
    j = scene.jitter * scene.radius
    return Cookie(
        u=u + float(rng.normal(0, j)),
        v=v + float(rng.normal(0, j)),
        radius=scene.radius * float(rng.uniform(0.93, 1.07)),
        tone=float(rng.uniform(0.9, 1.1)),
        chips=int(rng.integers(1 << 30)),
    )


def still_frame(rng: np.random.Generator, alert: bool, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """One random frame: well filled (``alert=False``) or with a stretch of empty belt (``alert=True``).

    Acceptable frames still lose a few stray cookies, as real lines do; alert frames
    have a gap covering 42-95% of the visible belt length.
    """
    look = sample_look(rng, size)
    scene = sample_scene(rng, look)
    half = scene.visible_half_length(look)
    visible = look.width / max(np.cos(np.deg2rad(look.tilt_deg)), 0.5)
    gap: tuple[float, float] | None = None
    if alert:
        length = rng.uniform(ALERT_GAP_MIN, ALERT_GAP_MAX) * visible
        start = rng.uniform(-visible / 2.0, visible / 2.0 - length)
        gap = (start, start + length)
    phase = rng.uniform(0, scene.pitch)
    cookies: list[Cookie] = []
    first_row = int(np.floor((-half - phase) / scene.pitch))
    for row in range(first_row, int(np.ceil((half - phase) / scene.pitch)) + 1):
        u = phase + row * scene.pitch
        if gap is not None and gap[0] - scene.radius * 0.3 <= u <= gap[1] + scene.radius * 0.3:
            continue
        for v in scene.lane_positions(look, row):
            cookies.append(cookie_at(scene, look, u, v, rng))
    strays = int(rng.integers(0, 4))
    for _ in range(min(strays, max(0, len(cookies) - 1))):
        cookies.pop(int(rng.integers(len(cookies))))
    return render_frame(look, cookies, rng)
