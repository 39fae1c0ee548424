"""Draw the pictures of docs/alert-spec.md: both sides of the gap boundary, lanes, and unknown scenes.

    .venv/bin/python docs/alert_spec_pictures.py        # writes docs/alert-spec/*.png

Every picture is rendered by the training simulator (edge.simulator) from a fixed seed, with its gap
measured by the same code that labels the datasets, so the pictures show exactly what the spec means.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.simulator import DEFAULT_SPEC, measure_gap, render, render_unknown, sample_installation
from edge.simulator.scene import Light, Look, Optics
from edge.simulator.stills import lay_products

OUT = Path(__file__).resolve().parent / "alert-spec"
SIZE = (320, 240)


def installation(seed: int) -> tuple[Look, object]:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        look, layout = sample_installation(rng, SIZE, lanes=(3, 3), rows_in_view=(7.0, 8.0))
        if look.style.shape == "round" and look.style.chips and not look.camera.vertical:
            cam = replace(look.camera, tilt_deg=2.0, keystone=(0.0, 0.0), centre_v=0.0)
            light = Light(1.0, (0.1, -0.1), 0.1, (1.0, 1.0, 1.0), None, 0, None, (0.15, 0.15, 0.3))
            optics = Optics(0.0, 0.0, 0, 0, 2.0, 0.0, 0)
            return Look(cam, look.belt, look.style, light, optics), layout
    raise RuntimeError("no round-cookie installation found")


def caption(image: np.ndarray, text: str, box: tuple[float, float, float, float] | None = None) -> Image.Image:
    pil = Image.fromarray(image)
    canvas = Image.new("RGB", (pil.width, pil.height + 22), (255, 255, 255))
    canvas.paste(pil, (0, 0))
    draw = ImageDraw.Draw(canvas)
    if box is not None:
        draw.rectangle(box, outline=(255, 40, 40), width=2)
    draw.text((4, pil.height + 5), text, fill=(0, 0, 0))
    return canvas


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    look, layout = installation(4)
    frame_box = (0.0, 0.0, float(SIZE[0]), float(SIZE[1]))
    cases = [
        ("01-full", "full", 0.0, None), ("02-stray", "strays", 0.0, None), ("03-one-row", "one_row", 1.0, None),
        ("04-dont-care", "gap", 1.6, None), ("05-two-pitches", "gap", 2.15, None), ("06-three-pitches", "gap", 3.2, None),
        ("07-lane-starved", "gap", 4.0, 1),
    ]
    for name, kind, target, lane in cases:
        rng = np.random.default_rng(len(name) * 31 + int(target * 10))
        products = lay_products(look, layout, rng, kind, target, lane)
        if kind == "strays":  # the single product nearest the middle of the view is missing
            xs, ys = look.camera.to_image(np.array([p.u for p in products]), np.array([p.v for p in products]))
            middle = int(np.argmin((xs - SIZE[0] / 2) ** 2 + (ys - SIZE[1] / 2) ** 2))
            products = products[:middle] + products[middle + 1 :]
        pitches = measure_gap(look.camera, layout, products, frame_box)
        label = DEFAULT_SPEC.label(pitches) or "no label (not used for training)"
        image = render(look, products, np.random.default_rng(1))
        text = f"whole belt: gap {pitches:.1f} pitches -> {label}"
        box = None
        if lane is not None:
            v = layout.lane_v[lane]
            _, y = look.camera.to_image(np.array([0.0]), np.array([v]))
            half = (layout.lane_v[1] - layout.lane_v[0]) * look.camera.zoom / 2
            box = (1.0, float(y[0]) - half, SIZE[0] - 2.0, float(y[0]) + half)
            lane_products = [p for p in products if p.lane == lane]
            lane_pitches = measure_gap(look.camera, layout, lane_products, (0.0, box[1], float(SIZE[0]), box[3]))
            text += f"; lane ROI: {lane_pitches:.1f} -> {DEFAULT_SPEC.label(lane_pitches)}"
        caption(image, text, box).save(OUT / f"{name}.png", optimize=True)
    for k, kind in enumerate(("hand", "covered_lens", "grey_wall", "glare", "noise")):
        rng = np.random.default_rng(100 + k)
        products = lay_products(look, layout, rng, "full", 0.0, None)
        image = render_unknown(kind, look, products, rng)
        caption(image, f"{kind.replace('_', ' ')} -> unknown").save(OUT / f"unknown-{kind.replace('_', '-')}.png", optimize=True)
    print(f"wrote {len(list(OUT.glob('*.png')))} pictures to {OUT}")


if __name__ == "__main__":
    main()
