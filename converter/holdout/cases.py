"""Evaluation sets from the second renderer: the main still set and the hard cases, each its own row.

A case renders a frame, optionally a region of interest (fractions of the frame, as in a config's
``rois``), and what the spec expects of it:

* ``alert`` / ``acceptable``: the spec's label (recall, or false alerts);
* ``unknown``: not a belt with product: must be judged unknown and must never be an alert;
* ``not_alert``: acceptable or unknown are both right; an alert is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from converter.holdout.draw import (
    MAX_ACCEPTABLE,
    MIN_GAP,
    Installation,
    belt_frame,
    flow_extent,
    lane_centres,
    lay_cookies,
    measure,
    render_frame,
    sample_installation,
    with_camera,
)

Uint8Image = npt.NDArray[np.uint8]
RoiBox = tuple[float, float, float, float]  # x, y, width, height as fractions of the frame


@dataclass(frozen=True)
class CaseFrame:
    image: Uint8Image
    expected: str  # alert, acceptable, unknown, not_alert
    roi: RoiBox | None = None


def _three_lanes(rng: np.random.Generator) -> Installation:
    inst = sample_installation(rng, rows=3, vertical=False)
    return with_camera(inst, angle_deg=float(rng.uniform(-3, 3)), offset=0.0)


def lane_rois(inst: Installation) -> list[RoiBox]:
    """One box per lane, a lane wide and the frame long (what an installer draws for lanes.yaml)."""
    boxes = []
    for y in lane_centres(inst):
        top = max(0.0, inst.height / 2 + y - inst.lane_spacing / 2)
        bottom = min(float(inst.height), inst.height / 2 + y + inst.lane_spacing / 2)
        boxes.append((0.0, top / inst.height, 1.0, (bottom - top) / inst.height))
    return boxes


def _hand(rng: np.random.Generator, w: int, h: int) -> npt.NDArray[np.float32]:
    """A hand and forearm silhouette (0-1 mask): polygon palm, rounded-rectangle fingers."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    size = min(w, h) * rng.uniform(0.5, 0.8)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    ang = rng.uniform(0, 2 * np.pi)
    ux, uy = np.cos(ang), np.sin(ang)  # from wrist towards the fingertips
    px, py = -uy, ux
    wrist = (cx - ux * size * 0.5, cy - uy * size * 0.5)
    elbow = (wrist[0] - ux * size * 3, wrist[1] - uy * size * 3)
    arm_w = size * 0.28
    d.polygon([(wrist[0] + px * arm_w, wrist[1] + py * arm_w), (elbow[0] + px * arm_w * 1.3, elbow[1] + py * arm_w * 1.3),
               (elbow[0] - px * arm_w * 1.3, elbow[1] - py * arm_w * 1.3), (wrist[0] - px * arm_w, wrist[1] - py * arm_w)], fill=255)
    palm = [(cx + px * size * 0.32 * s + ux * size * 0.3 * t, cy + py * size * 0.32 * s + uy * size * 0.3 * t)
            for s, t in ((1, -1), (1.1, 0.6), (-1.1, 0.6), (-1, -1))]
    d.polygon(palm, fill=255)
    for k in range(4):
        off = (k - 1.5) * size * 0.19
        base = (cx + px * off + ux * size * 0.25, cy + py * off + uy * size * 0.25)
        length = size * rng.uniform(0.45, 0.65)
        tip = (base[0] + ux * length, base[1] + uy * length)
        d.line([base, tip], fill=255, width=max(2, int(size * 0.15)))
        d.ellipse([tip[0] - size * 0.075, tip[1] - size * 0.075, tip[0] + size * 0.075, tip[1] + size * 0.075], fill=255)
    thumb = (cx + px * size * 0.45 + ux * size * 0.1, cy + py * size * 0.45 + uy * size * 0.1)
    d.line([(cx + px * size * 0.3, cy + py * size * 0.3), thumb], fill=255, width=max(2, int(size * 0.16)))
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(1.2)), np.float32) / 255.0


def _overlay(image: Uint8Image, mask: npt.NDArray[np.float32], rgb: npt.NDArray[np.float64], rng: np.random.Generator) -> Uint8Image:
    h, w = mask.shape
    shade = 0.75 + 0.35 * np.linspace(0, 1, w)[None, :] * rng.uniform(0.3, 1.0) + rng.normal(0, 0.03, (h, w))
    colour = shade[:, :, None] * rgb[None, None, :]
    shadow = np.roll(mask, (6, 6), axis=(0, 1)) * 0.4
    out = image.astype(np.float32) * (1 - shadow)[:, :, None]
    out = out * (1 - mask[:, :, None]) + colour * mask[:, :, None]
    return np.clip(out + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)


def _full_belt(rng: np.random.Generator, **kw: float) -> tuple[Installation, Uint8Image]:
    inst = sample_installation(rng)
    return inst, render_frame(inst, lay_cookies(inst, rng, strays=int(rng.integers(0, 3))), rng, **kw)


def hand(rng: np.random.Generator) -> CaseFrame:
    inst, frame = _full_belt(rng)
    for _ in range(10):
        mask = _hand(rng, inst.width, inst.height)
        if mask.mean() >= 0.15:
            break
    skins = np.array([[236, 196, 170], [210, 165, 135], [170, 120, 90], [120, 80, 60], [70, 120, 210], [30, 30, 30]], float)
    return CaseFrame(_overlay(frame, mask, skins[int(rng.integers(len(skins)))] * rng.uniform(0.8, 1.1), rng), "unknown")


def covered_lens(rng: np.random.Generator, fraction: tuple[float, float] = (0.7, 1.0), expected: str = "unknown") -> CaseFrame:
    inst, frame = _full_belt(rng)
    w, h = inst.width, inst.height
    cover = rng.uniform(*fraction)
    mask = np.zeros((h, w), np.float32)
    side = int(rng.integers(4))
    edge = {0: np.arange(w)[None, :] / w, 1: 1 - np.arange(w)[None, :] / w, 2: np.arange(h)[:, None] / h, 3: 1 - np.arange(h)[:, None] / h}[side]
    mask = np.broadcast_to(np.clip((cover - edge) / 0.15 + 0.5, 0, 1), (h, w)).astype(np.float32)
    colour = np.array([rng.uniform(10, 60), rng.uniform(5, 40), rng.uniform(5, 35)]) if rng.random() < 0.7 else np.full(3, rng.uniform(150, 230))
    blurred = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(3)), np.float32)
    out = blurred * (1 - mask[:, :, None]) * 0.8 + colour[None, None, :] * mask[:, :, None]
    return CaseFrame(np.clip(out + rng.normal(0, 4, out.shape), 0, 255).astype(np.uint8), expected)


def grey_wall(rng: np.random.Generator) -> CaseFrame:
    inst = sample_installation(rng)
    w, h = inst.width, inst.height
    grey = rng.uniform(70, 210)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = 1 + rng.uniform(-0.3, 0.3) * (xs / w - 0.5) + rng.uniform(-0.3, 0.3) * (ys / h - 0.5)
    img = (grey * ramp)[:, :, None] * np.asarray(inst.cast, np.float32)[None, None, :] * np.array([1.0, 1.0, 1.0])
    if rng.random() < 0.5:  # concrete speckle
        img = img * (1 + rng.normal(0, 0.04, (h, w, 1)))
    img = img + rng.normal(0, rng.uniform(1, 10), img.shape)
    return CaseFrame(np.clip(img, 0, 255).astype(np.uint8), "unknown")


def noise(rng: np.random.Generator) -> CaseFrame:
    inst = sample_installation(rng)
    img = rng.integers(0, 256, (inst.height, inst.width, 3)).astype(np.float64) if rng.random() < 0.6 else \
        rng.normal(128, 60, (inst.height, inst.width, 3))
    return CaseFrame(np.clip(img, 0, 255).astype(np.uint8), "unknown")


def _glare_frame(rng: np.random.Generator, strength: tuple[float, float], radius: tuple[float, float], cookies_gap: float = 0.0) -> Uint8Image:
    inst = sample_installation(rng)
    cookies = lay_cookies(inst, rng, strays=int(rng.integers(0, 3)))
    base = render_frame(inst, cookies, rng).astype(np.float32)
    ys, xs = np.mgrid[0 : inst.height, 0 : inst.width].astype(np.float32)
    gx, gy = rng.uniform(0.2, 0.8) * inst.width, rng.uniform(0.2, 0.8) * inst.height
    r = rng.uniform(*radius) * max(inst.width, inst.height)
    blob = np.exp(-(((xs - gx) / r) ** 2 + ((ys - gy) / (r * rng.uniform(0.5, 1.0))) ** 2))
    return np.clip(base + rng.uniform(*strength) * blob[:, :, None], 0, 255).astype(np.uint8)


def glare(rng: np.random.Generator) -> CaseFrame:
    for _ in range(10):
        image = _glare_frame(rng, (300, 700), (0.4, 0.8))
        if np.mean(image.max(axis=2) >= 250) >= 0.35:
            break
    return CaseFrame(image, "unknown")


def glare_on_full_belt(rng: np.random.Generator) -> CaseFrame:
    for _ in range(10):
        image = _glare_frame(rng, (60, 160), (0.1, 0.3))
        if np.mean(image.max(axis=2) >= 250) < 0.15:
            break
    return CaseFrame(image, "not_alert")


def _gap_frame(rng: np.random.Generator, gap: tuple[float, float], expected: str, **kw: float) -> CaseFrame:
    for _ in range(40):
        inst = sample_installation(rng)
        lo, hi = flow_extent(inst)
        g = float(rng.uniform(*gap))
        room = (hi - lo) - (g + 1) * inst.pitch
        if room <= 0:
            continue
        cookies = lay_cookies(inst, rng, g, lo + rng.uniform(0, room))
        measured = measure(inst, cookies)
        if (expected == "alert") == (measured >= MIN_GAP) and (expected == "alert" or measured <= MAX_ACCEPTABLE):
            return CaseFrame(render_frame(inst, cookies, rng, **kw), expected)
    raise RuntimeError("could not draw a gap case")  # pragma: no cover


def night_gap_60pct(rng: np.random.Generator) -> CaseFrame:
    for _ in range(40):
        inst = with_camera(sample_installation(rng), noise=float(rng.uniform(6, 16)))
        lo, hi = flow_extent(inst)
        g = 0.6 * (hi - lo) / inst.pitch
        if g < MIN_GAP + 0.3:
            continue
        cookies = lay_cookies(inst, rng, g, lo + 0.2 * (hi - lo))
        if measure(inst, cookies) >= MIN_GAP:
            return CaseFrame(render_frame(inst, cookies, rng, brightness=float(rng.uniform(0.18, 0.32))), "alert")
    raise RuntimeError("could not draw a night case")  # pragma: no cover


def night_full(rng: np.random.Generator) -> CaseFrame:
    inst = with_camera(sample_installation(rng), noise=float(rng.uniform(6, 16)))
    return CaseFrame(render_frame(inst, lay_cookies(inst, rng, strays=1), rng, brightness=float(rng.uniform(0.18, 0.32))), "acceptable")


def _lanes_empty(rng: np.random.Generator, empty: int, which: str) -> CaseFrame:
    inst = _three_lanes(rng)
    lanes = tuple(int(v) for v in rng.choice(3, size=empty, replace=False))
    cookies = lay_cookies(inst, rng, empty_lanes=lanes)
    image = render_frame(inst, cookies, rng)
    if which == "frame":
        return CaseFrame(image, "acceptable")
    rois = lane_rois(inst)
    if which == "empty_lane":
        return CaseFrame(image, "alert", rois[lanes[0]])
    full = [k for k in range(3) if k not in lanes]
    return CaseFrame(image, "acceptable", rois[full[int(rng.integers(len(full)))]])


def lane_gap(rng: np.random.Generator) -> CaseFrame:
    """One lane of three has a gap of 2-4 pitches: that lane's region of interest must alert."""
    for _ in range(40):
        inst = _three_lanes(rng)
        lo, hi = flow_extent(inst)
        lane = int(rng.integers(3))
        g = float(rng.uniform(MIN_GAP, 4.0))
        room = (hi - lo) - (g + 1) * inst.pitch
        if room <= 0:
            continue
        cookies = lay_cookies(inst, rng, g, lo + rng.uniform(0, room), lanes=(lane,))
        roi = lane_rois(inst)[lane]
        box = (0.0, roi[1] * inst.height, float(inst.width), (roi[1] + roi[3]) * inst.height)
        if measure(inst, [c for c in cookies if c.lane == lane], box) >= MIN_GAP:
            return CaseFrame(render_frame(inst, cookies, rng), "alert", roi)
    raise RuntimeError("could not draw a lane gap")  # pragma: no cover


HARD_CASES: dict[str, Callable[[np.random.Generator], CaseFrame]] = {
    "hand over the belt": hand,
    "lens covered": covered_lens,
    "half the lens covered": lambda rng: covered_lens(rng, (0.45, 0.6), "not_alert"),
    "camera knocked towards a grey wall": grey_wall,
    "sensor noise": noise,
    "blown-out glare": glare,
    "glare on a full belt": glare_on_full_belt,
    "night lighting, 60% gap": night_gap_60pct,
    "night lighting, full belt": night_full,
    "defocus, full belt": lambda rng: CaseFrame(_full_belt(rng, extra_blur=float(rng.uniform(3, 5)))[1], "acceptable"),
    "defocus, gap 2-4 pitches": lambda rng: _gap_frame(rng, (MIN_GAP, 4.0), "alert", extra_blur=float(rng.uniform(3, 5))),
    "gap just over 2 pitches": lambda rng: _gap_frame(rng, (MIN_GAP, 2.4), "alert"),
    "one missing row (1 pitch)": lambda rng: _gap_frame(rng, (1.0, MAX_ACCEPTABLE), "acceptable"),
    "one lane of three empty, whole-belt ROI": lambda rng: _lanes_empty(rng, 1, "frame"),
    "one lane of three empty, that lane's ROI": lambda rng: _lanes_empty(rng, 1, "empty_lane"),
    "one lane of three empty, a full lane's ROI": lambda rng: _lanes_empty(rng, 1, "full_lane"),
    "two lanes of three empty, whole-belt ROI": lambda rng: _lanes_empty(rng, 2, "frame"),
    "two lanes of three empty, an empty lane's ROI": lambda rng: _lanes_empty(rng, 2, "empty_lane"),
    "gap in one lane of three, that lane's ROI": lane_gap,
}


def render_case(name: str, rng: np.random.Generator) -> CaseFrame:
    return HARD_CASES[name](rng)


def holdout_set(count: int, seed: int) -> tuple[list[Uint8Image], npt.NDArray[np.int32]]:
    """``count`` whole-frame stills, alternating acceptable and alert, and their 0/1 labels."""
    images, labels = [], []
    for i in range(count):
        rng = np.random.default_rng((seed, 11, i))
        frame = belt_frame(rng, alert=i % 2 == 1)
        images.append(frame.image)
        labels.append(i % 2)
    return images, np.asarray(labels, np.int32)

