"""Still frames for datasets, labelled by the alert spec from the products actually drawn.

Each still asks for a class and a situation (a full belt, stray holes, one missing row, starved
lanes, a gap of so many pitches, an empty view, a region of interest over one lane, or an unknown
scene), draws it, measures the longest gap in the drawn products, and keeps it only if the spec
gives the asked-for label; near-boundary cases (one missing row, gaps just over two pitches) are
frequent on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from edge.simulator.camera import Camera
from edge.simulator.render import render
from edge.simulator.scene import Layout, Look, Product, make_product, sample_installation
from edge.simulator.spec import ACCEPTABLE, ALERT, DEFAULT_SPEC, AlertSpec, gap_pitches, longest_empty_stretch
from edge.simulator.unknown import UNKNOWN_KINDS, render_unknown

Uint8Image = npt.NDArray[np.uint8]
UNKNOWN = "unknown"
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels

ACCEPTABLE_KINDS = {"full": 0.31, "strays": 0.2, "one_row": 0.2, "lanes_starved": 0.15, "holes": 0.14}
# Empty views are frequent too: the scene head must learn that a bare belt is a belt (and an alert), not a wall.
ALERT_KINDS = {"gap": 0.52, "long_gap": 0.16, "empty_view": 0.15, "edge_gap": 0.05, "gap_with_starved_lanes": 0.12}
# A lane's region of interest: a starved lane (empty from end to end) is the commonest lane alert.
LANE_ALERT_KINDS = {"gap": 0.45, "long_gap": 0.2, "empty_view": 0.25, "gap_with_starved_lanes": 0.1}
LANE_CROP_SHARE = 0.2
LANE_FRAME_SIZES = ((240, 180), (256, 192), (288, 216), (320, 240), (256, 144), (320, 180))


@dataclass(frozen=True)
class Truth:
    """What a still shows, as the spec judges it."""

    label: str  # acceptable, alert or unknown
    kind: str  # the situation drawn (see ACCEPTABLE_KINDS, ALERT_KINDS, UNKNOWN_KINDS)
    gap_pitches: float
    roi: str  # "frame" or "lane"
    lanes: int
    size: tuple[int, int]
    conditions: dict[str, float] = field(default_factory=dict)


def measure_gap(camera: Camera, layout: Layout, products: list[Product], box: Box) -> float:
    """The longest gap (in pitches) across the flow seen in ``box``: products centred inside it count."""
    x0, y0, x1, y1 = box
    occupied = []
    if products:
        us = np.array([p.u for p in products])
        vs = np.array([p.v for p in products])
        xs, ys = camera.to_image(us, vs)
        inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        occupied = [(p.u - p.half_u, p.u + p.half_u) for p, keep in zip(products, inside, strict=True) if keep]
    lo, hi = camera.flow_range(box)
    return gap_pitches(longest_empty_stretch(occupied, lo, hi), layout.length, layout.pitch)


def _rows(layout: Layout, lo: float, hi: float, phase: float) -> list[float]:
    first = int(np.floor((lo - phase) / layout.pitch)) - 1
    last = int(np.ceil((hi - phase) / layout.pitch)) + 1
    return [phase + k * layout.pitch for k in range(first, last + 1)]


def _lanes_of_row(layout: Layout, row: int) -> list[tuple[int, float]]:
    if layout.stagger and row % 2:
        half = (layout.lane_v[1] - layout.lane_v[0]) / 2 if layout.lanes > 1 else 0.0
        return [(i, v + half) for i, v in enumerate(layout.lane_v[:-1])]
    return list(enumerate(layout.lane_v))


def lay_products(look: Look, layout: Layout, rng: np.random.Generator, kind: str, target: float,
                 lane: int | None) -> list[Product]:
    """Products for situation ``kind`` with a gap of about ``target`` pitches (in ``lane`` only, if given)."""
    cam = look.camera
    u_min, u_max, _, _ = cam.belt_bounds(layout.pitch * 2)
    lo, hi = cam.flow_range((0.0, 0.0, float(cam.width), float(cam.height)))
    pitch = layout.pitch
    missing = int(np.floor(target)) if target > 0 else 0
    shift = (target - missing) * pitch if target > 0 else 0.0
    # Where the gap starts: inside the view, at its edge, or anywhere.
    span = hi - lo
    if kind == "edge_gap":
        start = lo - rng.uniform(0.0, 0.8) * (missing + 1) * pitch if rng.random() < 0.5 else hi - rng.uniform(0.3, 1.0) * (missing + 1) * pitch
    elif kind == "empty_view":
        start, missing, shift = u_min - pitch, int((u_max - u_min) / pitch) + 4, 0.0
    else:
        room = max(0.0, span - (target + 1) * pitch)
        start = lo + rng.uniform(0.0, room) if room > 0 else lo + rng.uniform(-0.3, 0.1) * span
    rows = _rows(layout, u_min, u_max + shift, float(rng.uniform(0, pitch)))
    starved: set[int] = set()
    starve_from, starve_to = np.inf, -np.inf
    if kind in ("lanes_starved", "gap_with_starved_lanes") and layout.lanes > 1:
        # Any number of lanes but one may starve (a whole-belt ROI is then still acceptable: product crosses the
        # stretch in the lanes left); one starved lane is the commonest, all-but-one the hardest to tell from a gap.
        count = int(rng.integers(1, layout.lanes)) if rng.random() < 0.6 else max(1, layout.lanes - 1)
        starved = {int(i) for i in rng.choice(layout.lanes, size=count, replace=False)}
        length = rng.uniform(3, 12) * pitch
        starve_from = rng.uniform(lo - length, hi)
        starve_to = starve_from + length
    products: list[Product] = []
    for k, u in enumerate(rows):
        in_gap = missing > 0 and start <= u < start + missing * pitch - 1e-6
        u_shifted = u + shift if missing > 0 and u >= start + missing * pitch - 1e-6 else u
        for i, v in _lanes_of_row(layout, k):
            if in_gap and (lane is None or i == lane):
                continue
            if i in starved and starve_from <= u_shifted < starve_to:
                continue
            products.append(make_product(layout, look.style, u_shifted, v, i, rng))
    if kind in ("strays", "gap", "long_gap", "gap_with_starved_lanes", "edge_gap") and products:
        for _ in range(int(rng.integers(0, 4)) if kind != "strays" else int(rng.integers(1, 5))):
            products.pop(int(rng.integers(len(products))))
    if kind == "holes" and products:
        keep = rng.random(len(products)) >= rng.uniform(0.05, 0.18)
        products = [p for p, k in zip(products, keep, strict=True) if k]
    return products


def _target(kind: str, spec: AlertSpec, rng: np.random.Generator) -> float:
    lo = spec.min_gap_pitches
    return {
        "full": 0.0, "strays": 0.0, "lanes_starved": 0.0, "holes": 0.0,
        "one_row": float(rng.uniform(max(0.8, spec.max_acceptable_pitches - 0.45), spec.max_acceptable_pitches)),
        "gap": float(rng.uniform(lo, lo + 0.4) if rng.random() < 0.3 else rng.uniform(lo, lo + 2.5)),
        "gap_with_starved_lanes": float(rng.uniform(lo, lo + 2.5)),
        "edge_gap": float(rng.uniform(lo + 0.5, lo + 4.0)),
        "long_gap": float(rng.uniform(lo + 2.5, lo + 10.0)),
        "empty_view": 0.0,
    }[kind]


def _lane_box(look: Look, layout: Layout, lane: int, rng: np.random.Generator) -> Box:
    """A region of interest over one lane, as an installer would draw it (not always centred)."""
    cam = look.camera
    spacing = (layout.lane_v[1] - layout.lane_v[0]) if layout.lanes > 1 else layout.width * 1.3
    v = layout.lane_v[lane] + rng.normal(0.0, 0.1) * spacing
    x, y = cam.to_image(np.array([cam.centre_u]), np.array([v]))
    half = spacing * cam.zoom * rng.uniform(0.42, 0.68)
    along_lo, along_hi = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
    if cam.vertical:
        return (max(0.0, float(x[0]) - half), along_lo * cam.height, min(float(cam.width), float(x[0]) + half), along_hi * cam.height)
    return (along_lo * cam.width, max(0.0, float(y[0]) - half), along_hi * cam.width, min(float(cam.height), float(y[0]) + half))


def _conditions(look: Look) -> dict[str, float]:
    return {"gain": look.light.gain, "noise": look.optics.noise, "defocus": look.optics.defocus,
            "motion_blur": look.optics.motion_blur, "tilt_deg": look.camera.tilt_deg, "vertical": float(look.camera.vertical),
            "glare": 0.0 if look.light.glare is None else look.light.glare[3], "jpeg_quality": float(look.optics.jpeg_quality)}


def _pick(options: dict[str, float], rng: np.random.Generator) -> str:
    names = list(options)
    weights = np.asarray([options[n] for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def render_still(rng: np.random.Generator, label: str, spec: AlertSpec = DEFAULT_SPEC, size: tuple[int, int] | None = None,
                 kind: str | None = None, lane_crop: bool | None = None) -> tuple[Uint8Image, Truth]:
    """One still of class ``label`` (acceptable, alert or unknown) and what it shows.

    Deterministic for the generator's state. ``kind`` forces a situation; ``lane_crop`` forces (or
    forbids) a region of interest over a single lane.
    """
    if label == UNKNOWN:
        kind = kind or UNKNOWN_KINDS[int(rng.integers(len(UNKNOWN_KINDS)))]
        look, layout = sample_installation(rng, size)
        products = lay_products(look, layout, rng, "full", 0.0, None)
        image = render_unknown(kind, look, products, rng)
        return image, Truth(UNKNOWN, kind, 0.0, "frame", layout.lanes, (look.camera.width, look.camera.height), _conditions(look))
    if label not in (ACCEPTABLE, ALERT):
        raise ValueError(f"label must be acceptable, alert or unknown, got {label!r}")
    crop = lane_crop if lane_crop is not None else bool(rng.random() < LANE_CROP_SHARE)
    for _ in range(40):
        # A lane's box must be tens of pixels thick, as on a real camera: lane crops come from larger frames.
        frame_size = size if size is not None or not crop else LANE_FRAME_SIZES[int(rng.integers(len(LANE_FRAME_SIZES)))]
        look, layout = sample_installation(rng, frame_size, lanes=(2, 4) if crop else (1, 8))
        situation = kind or _pick((LANE_ALERT_KINDS if crop else ALERT_KINDS) if label == ALERT else ACCEPTABLE_KINDS, rng)
        if situation in ("lanes_starved", "gap_with_starved_lanes") and layout.lanes < 2:
            continue
        lane = int(rng.integers(layout.lanes)) if crop else None
        target = _target(situation, spec, rng)
        products = lay_products(look, layout, rng, situation, target, lane)
        cam = look.camera
        box: Box = _lane_box(look, layout, lane, rng) if lane is not None else (0.0, 0.0, float(cam.width), float(cam.height))
        thin, long = sorted((box[2] - box[0], box[3] - box[1]))
        if thin < 16 or long > 8 * thin:  # installers draw lane boxes a lane wide, not a sliver
            continue
        measured = measure_gap(cam, layout, products, box)
        if spec.label(measured) != label:
            continue
        image = render(look, products, rng)
        if lane is not None:
            x0, y0, x1, y1 = (round(c) for c in box)
            image = np.ascontiguousarray(image[y0:y1, x0:x1])
        truth = Truth(label, situation, measured, "lane" if crop else "frame", layout.lanes,
                      (image.shape[1], image.shape[0]), _conditions(look))
        return image, truth
    raise RuntimeError(f"could not draw a {label} still in 40 attempts")  # pragma: no cover - the kinds make this rare


def still_frame(rng: np.random.Generator, alert: bool, size: tuple[int, int] | None = None) -> Uint8Image:
    """A whole-frame still of a full-ish belt (``alert=False``) or one with a gap of at least two pitches."""
    image, _ = render_still(rng, ALERT if alert else ACCEPTABLE, size=size, lane_crop=False)
    return image


def with_size(look: Look, size: tuple[int, int]) -> Look:
    """The same installation seen by a camera with another frame size (same field of view)."""
    cam = look.camera
    scale = size[0] / cam.width
    return replace(look, camera=replace(cam, width=size[0], height=size[1], zoom=cam.zoom * scale))
