"""Scenes that are not a belt with product: what a camera over a line shows when something is wrong.

A hand or a tool over the belt, a finger or a cap over the lens, a camera knocked towards a wall,
glare that blows the picture out, a broken sensor's noise. The model learns to tell these apart
from the belt (outlier exposure); the hard-case rows of every evaluation are made of them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from edge.simulator.render import FloatImage, blank_scene, render, sensor
from edge.simulator.scene import Light, Look, Optics, Product, sample_light, sample_optics

Uint8Image = npt.NDArray[np.uint8]
UNKNOWN_KINDS = ("hand", "tool", "covered_lens", "grey_wall", "glare", "noise")
SKIN = ((228, 190, 165), (205, 160, 130), (175, 125, 95), (135, 95, 70), (95, 65, 50))
GLOVES = ((60, 110, 205), (35, 35, 40), (225, 225, 230), (70, 150, 90), (230, 120, 50))


def _hand_mask(rng: np.random.Generator, width: int, height: int, scale: float) -> Image.Image:
    """An arm reaching in from one edge, a palm and fingers, as a soft 0-255 mask."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    side = int(rng.integers(4))
    t = rng.uniform(0.2, 0.8)
    start = [(t * width, -10), (width + 10, t * height), (t * width, height + 10), (-10, t * height)][side]
    reach = rng.uniform(0.35, 0.75)
    palm = (start[0] + (width / 2 - start[0]) * reach * 2 * rng.uniform(0.6, 1.0) + rng.normal(0, 0.1 * width),
            start[1] + (height / 2 - start[1]) * reach * 2 * rng.uniform(0.6, 1.0) + rng.normal(0, 0.1 * height))
    size = scale * min(width, height)
    draw.line([start, palm], fill=255, width=max(2, int(size * 0.55)))
    draw.ellipse([palm[0] - size * 0.42, palm[1] - size * 0.38, palm[0] + size * 0.42, palm[1] + size * 0.38], fill=255)
    direction = np.arctan2(palm[1] - start[1], palm[0] - start[0])
    for k in range(5):
        ang = direction + (k - 2) * rng.uniform(0.25, 0.42) + (0.5 if k == 0 else 0.0)
        length = size * (rng.uniform(0.55, 0.85) if k else rng.uniform(0.4, 0.6))
        base = (palm[0] + np.cos(ang) * size * 0.3, palm[1] + np.sin(ang) * size * 0.3)
        tip = (base[0] + np.cos(ang) * length, base[1] + np.sin(ang) * length)
        draw.line([base, tip], fill=255, width=max(1, int(size * rng.uniform(0.13, 0.19))))
        draw.ellipse([tip[0] - size * 0.08, tip[1] - size * 0.08, tip[0] + size * 0.08, tip[1] + size * 0.08], fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(0.6, size * 0.02)))


def _tool_mask(rng: np.random.Generator, width: int, height: int, scale: float) -> Image.Image:
    """A scraper, board or bar held across the view."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    ang = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    length = max(width, height) * rng.uniform(0.8, 1.6)
    thick = scale * min(width, height)
    dx, dy = np.cos(ang) * length / 2, np.sin(ang) * length / 2
    draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=max(2, int(thick)))
    if rng.random() < 0.5:  # a blade or head at one end
        hx, hy = cx + dx * rng.uniform(0.3, 0.9), cy + dy * rng.uniform(0.3, 0.9)
        draw.ellipse([hx - thick, hy - thick, hx + thick, hy + thick], fill=255)
    return mask.filter(ImageFilter.GaussianBlur(0.8))


def _coloured(mask: npt.NDArray[np.float32], rgb: tuple[float, float, float], rng: np.random.Generator,
              texture: float) -> FloatImage:
    h, w = mask.shape
    shade = blank_scene(w, h, rgb, rng, texture=texture, cell=max(4.0, min(w, h) / 8))
    y = (np.arange(h, dtype=np.float32) / h - 0.5)[:, None]
    x = (np.arange(w, dtype=np.float32) / w - 0.5)[None, :]
    return np.asarray(shade * (1.0 + rng.uniform(-0.5, 0.5) * x + rng.uniform(-0.5, 0.5) * y)[:, :, None], dtype=np.float32)


def _occluder(kind: str, coverage: tuple[float, float]) -> object:
    """An overlay for :func:`render` drawing a hand or tool covering a fraction of the view in ``coverage``."""

    def overlay(img: FloatImage, rng: np.random.Generator) -> None:
        h, w = img.shape[:2]
        for _ in range(12):
            scale = rng.uniform(0.25, 0.7) if kind == "hand" else rng.uniform(0.12, 0.35)
            pil = _hand_mask(rng, w, h, scale) if kind == "hand" else _tool_mask(rng, w, h, scale)
            mask = np.asarray(pil, np.float32) / 255.0
            if coverage[0] <= float(mask.mean()) <= coverage[1]:
                break
        if kind == "hand":
            pick = rng.random()
            if pick < 0.5:
                rgb = tuple(float(c) * rng.uniform(0.85, 1.15) for c in SKIN[int(rng.integers(len(SKIN)))])
            elif pick < 0.8:
                rgb = tuple(float(c) for c in GLOVES[int(rng.integers(len(GLOVES)))])
            else:  # gloves, sleeves and cloths come in any colour
                rgb = tuple(float(c) for c in rng.uniform(20, 240, 3))
        else:
            grey = rng.uniform(60, 220)
            rgb = tuple(float(c) for c in (grey * rng.uniform(0.85, 1.15, 3) if rng.random() < 0.6 else rng.uniform(30, 230, 3)))
        colour = _coloured(mask, rgb, rng, texture=0.12 if kind == "hand" else 0.05)  # type: ignore[arg-type]
        shift = (int(rng.integers(-8, 9)), int(rng.integers(-8, 9)))
        shadow = np.roll(mask, shift, axis=(0, 1)) * rng.uniform(0.25, 0.6)
        img *= (1.0 - shadow)[:, :, None]
        m3 = mask[:, :, None]
        img[...] = img * (1.0 - m3) + colour * m3

    return overlay


def _covered_lens(rng: np.random.Generator, belt_frame: FloatImage) -> FloatImage:
    h, w = belt_frame.shape[:2]
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    cover = rng.uniform(0.5, 1.0)
    cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
    r = np.sqrt(cover) * max(w, h) * rng.uniform(0.9, 1.5)
    draw.ellipse([cx - r, cy - r * rng.uniform(0.6, 1.2), cx + r, cy + r * rng.uniform(0.6, 1.2)], fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(max(w, h) * rng.uniform(0.04, 0.15))), np.float32) / 255.0
    if rng.random() < 0.3:  # the whole lens: nothing of the belt left, only a blurred glow or darkness
        soft = np.clip(soft + 1.0, 0.0, 1.0)
    choice = rng.random()
    if choice < 0.45:  # a finger: dark, reddish, light leaking through
        rgb = np.asarray(SKIN[int(rng.integers(len(SKIN)))], np.float32) * rng.uniform(0.15, 0.7)
    elif choice < 0.75:  # a cap or tape
        rgb = np.full(3, rng.uniform(5, 45), np.float32)
    else:  # paper, cloth, a bag
        rgb = np.full(3, rng.uniform(120, 240), np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    cover_img = _coloured(soft, (float(rgb[0]), float(rgb[1]), float(rgb[2])), rng, texture=0.05)
    # Whatever is still visible is out of focus and dimmer: the object shades the lens.
    behind = np.asarray(Image.fromarray(np.clip(belt_frame, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0, 3))), np.float32) * rng.uniform(0.4, 1.0)
    s3 = soft[:, :, None]
    return (behind * (1.0 - s3) + cover_img * s3).astype(np.float32)


def _wall(rng: np.random.Generator, width: int, height: int) -> FloatImage:
    """A wall, floor, ceiling or machine panel: grey-ish, low-contrast, no belt, no product."""
    tone = rng.uniform(60, 230)
    rgb = np.full(3, tone) * rng.uniform(0.9, 1.1, 3) if rng.random() < 0.7 else rng.uniform(60, 220, 3)
    img = blank_scene(width, height, (float(rgb[0]), float(rgb[1]), float(rgb[2])), rng,
                      texture=rng.uniform(0.01, 0.12), cell=rng.uniform(6, 60))
    fine = rng.uniform(0.0, 0.04)
    if fine:
        img *= (1.0 + fine * rng.standard_normal((height, width), dtype=np.float32))[:, :, None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.choice([0, 0, 1, 2, 3]))):  # joints, pipes, panel edges
        shade = tuple(int(c) for c in np.clip(rgb * rng.uniform(0.5, 1.3), 0, 255))
        if rng.random() < 0.5:
            x = rng.uniform(0, width)
            draw.line([(x, 0), (x + rng.normal(0, 0.1 * width), height)], fill=shade, width=int(rng.integers(1, 6)))
        else:
            y = rng.uniform(0, height)
            draw.line([(0, y), (width, y + rng.normal(0, 0.1 * height))], fill=shade, width=int(rng.integers(1, 6)))
    return np.asarray(pil, np.float32).copy()


def _noise(rng: np.random.Generator, width: int, height: int) -> npt.NDArray[np.uint8]:
    mode = rng.random()
    if mode < 0.35:
        img = rng.uniform(0, 256, (height, width, 3))
    elif mode < 0.55:
        img = np.repeat(rng.uniform(0, 256, (height, width, 1)), 3, axis=2)
    elif mode < 0.8:
        img = rng.normal(rng.uniform(60, 190), rng.uniform(35, 90), (height, width, 3))
    else:  # coarse noise blocks or readout stripes
        block = int(rng.integers(2, 5))
        coarse = rng.uniform(0, 256, (height // block + 1, width // block + 1, 3))
        img = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:height, :width]
        if rng.random() < 0.5:
            img = img * 0.5 + rng.uniform(0, 256, (height, 1, 1)) * 0.5
    return np.clip(img, 0, 255).astype(np.uint8)


def render_unknown(kind: str, look: Look, products: list[Product], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """One frame of an unknown-scene ``kind`` (see UNKNOWN_KINDS) for the installation ``look``."""
    cam = look.camera
    w, h = cam.width, cam.height
    if kind in ("hand", "tool"):
        return render(look, products, rng, overlay=_occluder(kind, (0.15, 0.75)))  # type: ignore[arg-type]
    if kind == "covered_lens":
        plain = Optics(0.0, 0.0, 0, 0, 0.0, 0.0, 0)
        belt = render(Look(cam, look.belt, look.style, look.light, plain), products, rng).astype(np.float32)
        return sensor(_covered_lens(rng, belt), Light(1.0, (0.0, 0.0), 0.0, (1.0, 1.0, 1.0), None, 0, None, (0.0, 0.0, 0.0)),
                      look.optics, rng)
    if kind == "grey_wall":
        light = sample_light(rng)
        light = Light(light.gain, light.gradient, light.vignette, light.cast, light.shadow, 0, None, light.product_shadow)
        return sensor(_wall(rng, w, h), light, sample_optics(rng), rng)
    if kind == "glare":
        for _ in range(8):
            glare = (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.35, 0.9)), float(rng.uniform(280, 700)))
            light = Light(max(look.light.gain, 0.7) * rng.uniform(1.0, 2.5), look.light.gradient, 0.0, look.light.cast, None, 0,
                          glare, look.light.product_shadow)
            frame = render(Look(cam, look.belt, look.style, light, look.optics), products, rng)
            if saturated_fraction(frame) >= 0.35:
                return frame
        return frame
    if kind == "noise":
        return _noise(rng, w, h)
    raise ValueError(f"unknown scene kind {kind!r}; expected one of {UNKNOWN_KINDS}")


def saturated_fraction(image: npt.NDArray[np.uint8], level: int = 250) -> float:
    """Share of pixels with any channel at or above ``level``."""
    return float(np.mean(image.max(axis=2) >= level))
