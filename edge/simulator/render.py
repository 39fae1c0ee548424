"""Pixels from a :class:`~edge.simulator.scene.Look` and a list of products.

The belt and its products are drawn on a belt-aligned canvas (products with anti-aliased signed
distances, chips, rims, gloss and shadows; the belt's texture in belt coordinates so it travels with
the belt), blurred along the flow for motion, warped into the camera's view with one perspective
transform, then lit, defocused, dirtied and made noisy in image space, as a camera would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from edge.simulator.scene import Light, Look, Optics, Product, ProductStyle
from edge.simulator.textures import belt_tile, noise_tile, smooth_field

FloatImage = npt.NDArray[np.float32]
Uint8Image = npt.NDArray[np.uint8]
# Called on the warped, defocused frame (float, image space) before light and noise: hands, tools.
Overlay = Callable[[FloatImage, np.random.Generator], None]
CANVAS_MARGIN = 8.0


def _belt_canvas(look: Look, u0: float, v0: float, cw: int, ch: int, travel: float) -> FloatImage:
    belt = look.belt
    u = np.arange(cw, dtype=np.float32) + np.float32(u0)
    v = np.arange(ch, dtype=np.float32) + np.float32(v0)
    tile = belt_tile(belt.texture, belt.texture_seed, belt.texture_period)
    iu = np.floor(u - travel).astype(np.intp) % tile.shape[1]
    iv = np.floor(v).astype(np.intp) % tile.shape[0]
    # Everything but the belt's texture depends only on the row (v): per-row colours, broadcast once.
    on_belt = np.clip(belt.half_width - np.abs(v) + 0.5, 0.0, 1.0)
    on_rail = np.clip(belt.half_width + belt.rail_width - np.abs(v) + 0.5, 0.0, 1.0) - on_belt
    # A rail has a bright lip along the belt edge and a darker outer side.
    lip = np.clip(1.0 - np.abs(np.abs(v) - belt.half_width - 1.5) / 1.5, 0.0, 1.0)
    rail_shade = 0.8 + 0.25 * lip + 0.1 * np.cos((np.abs(v) - belt.half_width) / max(belt.rail_width, 1.0) * np.pi)
    surround = 1.0 - on_belt - on_rail
    rows_belt = on_belt[:, None] * np.asarray(belt.rgb, np.float32)
    canvas = tile.take(iv, axis=0).take(iu, axis=1)[:, :, None] * rows_belt[:, None, :]
    # Rails and surroundings only touch the rows near and beyond the belt's edges.
    edge_rows = np.flatnonzero(on_belt < 1.0)
    if len(edge_rows):
        rows_rail = (rail_shade * on_rail)[:, None] * np.asarray(belt.rail_rgb, np.float32)
        rows_surround = surround[:, None] * np.asarray(belt.surround_rgb, np.float32)
        pattern = (0.9 + 0.1 * np.cos(u / 9.0))[None, :, None]
        for run in np.split(edge_rows, np.flatnonzero(np.diff(edge_rows) > 1) + 1):
            rows = slice(int(run[0]), int(run[-1]) + 1)
            canvas[rows] += rows_rail[rows, None, :] + rows_surround[rows, None, :] * pattern
    return np.asarray(canvas, dtype=np.float32)


def _sdf(style: ProductStyle, p: Product, lx: FloatImage, ly: FloatImage) -> FloatImage:
    if style.shape == "rough":
        # A lumpy outline: the radius wobbles by a few per cent with a few low harmonics of the angle (per product).
        rng = np.random.default_rng(p.seed)
        theta = np.arctan2(ly / p.ry, lx / p.rx)
        wobble = np.ones_like(theta)
        for harmonic, amp, phase in zip(range(2, 7), rng.uniform(0.0, 0.06, 5), rng.uniform(0, 2 * np.pi, 5), strict=True):
            wobble = wobble + np.float32(amp) * np.sin(np.float32(harmonic) * theta + np.float32(phase))
        reach = np.sqrt((lx / p.rx) ** 2 + (ly / p.ry) ** 2) / wobble
        return np.asarray((reach - 1.0) * min(p.rx, p.ry), dtype=np.float32)
    if style.shape in ("round", "oval"):
        k = np.sqrt((lx / p.rx) ** 2 + (ly / p.ry) ** 2)
        return np.asarray((k - 1.0) * min(p.rx, p.ry), dtype=np.float32)
    corner = 0.28 * min(p.rx, p.ry)
    qx, qy = np.abs(lx) - (p.rx - corner), np.abs(ly) - (p.ry - corner)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return np.asarray(outside + np.minimum(np.maximum(qx, qy), 0.0) - corner, dtype=np.float32)


def _clip01(x: FloatImage) -> FloatImage:
    return np.minimum(np.maximum(x, np.float32(0.0)), np.float32(1.0))


def _product_layers(look: Look, p: Product, u0: float, v0: float, shape: tuple[int, int]
                    ) -> tuple[tuple[int, int, int, int], FloatImage, FloatImage, FloatImage] | None:
    """Where a product falls on a canvas of ``shape`` (x0, y0, x1, y1), and its shadow, alpha and colour there."""
    style, light = look.style, look.light
    r = max(p.rx, p.ry)
    sdu, sdv, darkness = light.product_shadow
    su, sv = round(sdu * r), round(sdv * r)
    reach = r + 2.0
    # The patch covers the product and its shadow (the same shape shifted by whole pixels).
    px0, px1 = int(np.floor(p.u - u0 - reach)) + min(0, su), int(np.ceil(p.u - u0 + reach)) + max(0, su)
    py0, py1 = int(np.floor(p.v - v0 - reach)) + min(0, sv), int(np.ceil(p.v - v0 + reach)) + max(0, sv)
    x0, x1 = max(0, px0), min(shape[1], px1)
    y0, y1 = max(0, py0), min(shape[0], py1)
    if x0 >= x1 or y0 >= y1:
        return None
    du = (np.arange(min(x0, x0 - su), max(x1, x1 - su), dtype=np.float32) + u0 - p.u)[None, :]
    dv = (np.arange(min(y0, y0 - sv), max(y1, y1 - sv), dtype=np.float32) + v0 - p.v)[:, None]
    ox, oy = min(x0, x0 - su), min(y0, y0 - sv)
    c, s = np.float32(np.cos(p.angle)), np.float32(np.sin(p.angle))
    lx, ly = du * c + dv * s, -du * s + dv * c
    sd_all = _sdf(style, p, lx, ly)
    # Shadow: canvas pixel (x, y) is shaded if (x - su, y - sv) is inside the product.
    shadow_sd = sd_all[y0 - sv - oy : y1 - sv - oy, x0 - su - ox : x1 - su - ox]
    shade = _clip01(0.5 - shadow_sd / np.float32(0.12 * r + 1.0)) * np.float32(darkness)
    sd = sd_all[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    lx, ly = lx[y0 - oy : y1 - oy, x0 - ox : x1 - ox], ly[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    alpha = _clip01(0.5 - sd)
    depth = _clip01(-sd / np.float32(0.5 * min(p.rx, p.ry) + 1e-3))
    shading = (1.0 - np.float32(style.edge_dark) * (1.0 - depth) ** 2) * (1.0 + np.float32(0.06 / r) * (lx * sdu + ly * sdv))
    grain = noise_tile(0)
    gy = (p.seed >> 3) % max(1, grain.shape[0] - (y1 - y0))
    gx = (p.seed >> 12) % max(1, grain.shape[1] - (x1 - x0))
    shading = shading * (1.0 + 0.05 * grain[gy : gy + y1 - y0, gx : gx + x1 - x0]) * np.float32(p.tone)
    colour = np.asarray(shading[:, :, None] * np.asarray(style.rgb, np.float32), dtype=np.float32)
    if style.chips:
        _draw_chips(colour, style, p, lx, ly, (p.u - u0 - x0, p.v - v0 - y0))
    if style.gloss:
        sheen = np.exp(-((lx + 0.3 * p.rx) ** 2 + (ly + 0.3 * p.ry) ** 2) / (0.3 * r) ** 2) * np.float32(style.gloss * 255.0)
        colour += sheen[:, :, None]
    return (x0, y0, x1, y1), np.asarray(shade, dtype=np.float32), alpha, colour


def _draw_product(canvas: FloatImage, look: Look, p: Product, u0: float, v0: float) -> None:
    layers = _product_layers(look, p, u0, v0, (canvas.shape[0], canvas.shape[1]))
    if layers is None:
        return
    (x0, y0, x1, y1), shade, alpha, colour = layers
    patch = canvas[y0:y1, x0:x1]
    patch *= (1.0 - shade)[:, :, None]
    patch += (colour - patch) * alpha[:, :, None]


def _draw_chips(colour: FloatImage, style: ProductStyle, p: Product, lx: FloatImage, ly: FloatImage,
                centre: tuple[float, float]) -> None:
    """Dark (or white) inclusions, each drawn only in its own small window of the patch."""
    rng = np.random.default_rng(p.seed)
    n = int(rng.integers(max(1, style.chips - 2), style.chips + 3))
    ang, rad = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n)) * 0.72
    size = rng.uniform(0.08, 0.16, n) * min(p.rx, p.ry)
    chip_rgb = np.asarray(style.chip_rgb, np.float32) * np.float32(p.tone)
    h, w = colour.shape[:2]
    c, s = np.cos(p.angle), np.sin(p.angle)
    for a, q, z in zip(ang, rad, size, strict=True):
        lxc, lyc = q * p.rx * np.cos(a), q * p.ry * np.sin(a)
        # Product-local (lx, ly) back to patch pixels: the inverse of the rotation used for lx, ly.
        px, py = centre[0] + lxc * c - lyc * s, centre[1] + lxc * s + lyc * c
        xa, xb = max(0, int(px - z - 2)), min(w, int(px + z + 3))
        ya, yb = max(0, int(py - z - 2)), min(h, int(py + z + 3))
        if xa >= xb or ya >= yb:
            continue
        d = np.hypot(lx[ya:yb, xa:xb] - lxc, ly[ya:yb, xa:xb] - lyc)
        m = _clip01(np.float32(z + 0.5) - d)[:, :, None]
        colour[ya:yb, xa:xb] += (chip_rgb - colour[ya:yb, xa:xb]) * m


def _blur_along(canvas: FloatImage, length: float) -> FloatImage:
    """Box blur of ``length`` pixels along the flow (axis 1): what a moving belt does during exposure."""
    n = round(length)
    if n <= 1:
        return canvas
    padded = np.pad(canvas, ((0, 0), (n // 2, n - n // 2), (0, 0)), mode="edge")
    csum = np.cumsum(padded, axis=1, dtype=np.float32)
    out = (csum[:, n:] - csum[:, :-n]) / np.float32(n)
    return out[:, : canvas.shape[1]].astype(np.float32)


SPRITES = 6  # product variants drawn per frame; every product is one of them at its own place and brightness


def _sprites(look: Look, products: Sequence[Product]) -> list[tuple[FloatImage, FloatImage, float, float]]:
    """Drawn product variants as (multiplier, addend, centre x, centre y).

    Drawing a product is affine in the pixels under it (the shadow multiplies, the product blends over),
    so painting it on a canvas C gives C * M + A with M = (1 - shade)(1 - alpha) and A = colour * alpha.
    Each variant is painted once per frame and then stamped onto the canvas in two operations.
    """
    rx = float(np.median([p.rx for p in products]))
    ry = float(np.median([p.ry for p in products]))
    rx, ry = round(rx * 2) / 2, round(ry * 2) / 2  # stable across the frames of a stream
    spread = look.style.size_spread
    turn = 0.0 if look.style.shape == "round" else 0.08
    base_seed = look.belt.texture_seed * 7919 + int(sum(look.style.rgb))
    sprites = []
    for k, z in enumerate(np.linspace(-1.2, 1.2, SPRITES)):
        zz = ((k * 3) % SPRITES) / (SPRITES - 1) * 2 - 1
        proto = Product(0.0, 0.0, 0, 0.0, rx * (1 + spread * z), ry * (1 + spread * z), turn * zz, 1.0, base_seed + k)
        reach = int(np.ceil(max(proto.rx, proto.ry) * 1.3 + 4))
        size = 2 * reach + 1
        mult = np.ones((size, size, 3), np.float32)
        add = np.zeros((size, size, 3), np.float32)
        layers = _product_layers(look, proto, -reach, -reach, (size, size))
        if layers is not None:
            (x0, y0, x1, y1), shade, alpha, colour = layers
            mult[y0:y1, x0:x1] = ((1.0 - shade) * (1.0 - alpha))[:, :, None]
            add[y0:y1, x0:x1] = colour * alpha[:, :, None]
        sprites.append((mult, add, float(reach), float(reach)))
    return sprites


def _stamp(canvas: FloatImage, sprite: tuple[FloatImage, FloatImage, float, float], x: float, y: float, tone: float) -> None:
    mult, add, cx, cy = sprite
    h, w = mult.shape[:2]
    x0, y0 = round(x - cx), round(y - cy)
    a0, b0 = max(0, -x0), max(0, -y0)
    a1, b1 = min(w, canvas.shape[1] - x0), min(h, canvas.shape[0] - y0)
    if a0 >= a1 or b0 >= b1:
        return
    patch = canvas[y0 + b0 : y0 + b1, x0 + a0 : x0 + a1]
    patch *= mult[b0:b1, a0:a1]
    patch += add[b0:b1, a0:a1] * np.float32(tone)


def draw_canvas(look: Look, products: Sequence[Product], travel: float = 0.0) -> tuple[FloatImage, float, float]:
    """The belt-aligned picture covering the camera's view; returns it and belt (u, v) of its pixel (0, 0)."""
    u_min, u_max, v_min, v_max = look.camera.belt_bounds(CANVAS_MARGIN)
    u0, v0 = float(np.floor(u_min)), float(np.floor(v_min))
    cw, ch = int(np.ceil(u_max - u0)), int(np.ceil(v_max - v0))
    canvas = _belt_canvas(look, u0, v0, cw, ch, travel)
    if products:
        sprites = _sprites(look, products)
        for product in products:
            if u0 - 2 * product.rx < product.u < u0 + cw + 2 * product.rx and v0 - 2 * product.ry < product.v < v0 + ch + 2 * product.ry:
                _stamp(canvas, sprites[product.seed % SPRITES], product.u - u0, product.v - v0, product.tone)
    return _blur_along(canvas, look.optics.motion_blur), u0, v0


def warp(canvas: FloatImage, look: Look, u0: float, v0: float) -> Image.Image:
    """Project the canvas into the camera image (bilinear), defocused by the lens."""
    cam = look.camera
    pil = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    image = pil.transform((cam.width, cam.height), Image.Transform.PERSPECTIVE, cam.pil_perspective(u0, v0),
                          resample=Image.Resampling.BILINEAR)
    if look.optics.defocus > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(look.optics.defocus))
    return image


def lighting_field(light: Light, width: int, height: int, rng: np.random.Generator) -> FloatImage:
    """The multiplicative light over the image (gain, gradient, vignette, shadow band), HxW."""
    y = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None]
    x = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :]
    gain = light.gain * (1.0 + rng.normal(0.0, light.flicker)) if light.flicker else light.gain
    field = gain * (1.0 + light.gradient[0] * x + light.gradient[1] * y)
    if light.vignette:
        field = field * (1.0 - light.vignette * (x * x + y * y) * 2.0)
    if light.shadow is not None:
        angle, offset, width_frac, depth = light.shadow
        d = x * np.cos(angle) + y * np.sin(angle) - offset
        band = np.clip(0.5 - (np.abs(d) - width_frac / 2) / 0.06, 0.0, 1.0)
        field = field * (1.0 - depth * band)
    return np.broadcast_to(field, (height, width)).astype(np.float32)


def add_glare(img: FloatImage, glare: tuple[float, float, float, float]) -> None:
    """A bright reflection: radial bloom of ``strength`` levels at its centre."""
    h, w = img.shape[:2]
    gx, gy, radius, strength = glare
    y = (np.arange(h, dtype=np.float32) / h - gy)[:, None]
    x = (np.arange(w, dtype=np.float32) / w - gx)[None, :] * (w / h)
    img += (strength * np.exp(-(x * x + y * y) / (radius * radius)))[:, :, None]


def _highlights(img: FloatImage, count: int, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(count):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.5, 2.5) * max(h, w) / 160
        y0, y1, x0, x1 = int(max(0, cy - 3 * r)), int(min(h, cy + 3 * r + 1)), int(max(0, cx - 3 * r)), int(min(w, cx + 3 * r + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        yy = (np.arange(y0, y1) - cy)[:, None]
        xx = (np.arange(x0, x1) - cx)[None, :]
        img[y0:y1, x0:x1] += (rng.uniform(60, 200) * np.exp(-(yy * yy + xx * xx) / (r * r)))[:, :, None]


def _dirt(img: FloatImage, optics: Optics) -> None:
    rng = np.random.default_rng(optics.dirt_seed)
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    for _ in range(optics.dirt):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.03, 0.15) * max(h, w)
        mask += rng.uniform(0.15, 0.5) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (r * r))
    mask = np.clip(mask, 0.0, 0.7)
    haze = float(rng.uniform(0, 1))
    # Dust darkens; a smear scatters light (brighter, less contrast).
    img *= (1.0 - mask * (1.0 - haze * 0.6))[:, :, None]
    img += (mask * haze * 90.0)[:, :, None]


@lru_cache(maxsize=1)
def _noise_bank() -> FloatImage:
    return np.random.default_rng(12345).standard_normal((1024, 1024, 3), dtype=np.float32)


def _noise_sample(rng: np.random.Generator, h: int, w: int) -> FloatImage:
    """Standard normal noise for an h x w x 3 frame: a random window of a fixed bank (drawing fresh noise for
    every pixel costs more than rendering the frame), flipped at random; fresh draws for frames too large."""
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w, 3), dtype=np.float32)
    y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    window = bank[y : y + h, x : x + w]
    return window[::-1] if rng.random() < 0.5 else window


def sensor(img: FloatImage, light: Light, optics: Optics, rng: np.random.Generator) -> Uint8Image:
    """Light, lens dirt and sensor noise on a float image-space frame; returns uint8 RGB."""
    h, w = img.shape[:2]
    img *= lighting_field(light, w, h, rng)[:, :, None]
    img *= np.asarray(light.cast, np.float32)
    if light.highlights:
        _highlights(img, light.highlights, rng)
    if light.glare is not None:
        add_glare(img, light.glare)
    if optics.dirt:
        _dirt(img, optics)
    if optics.noise > 0 or optics.shot > 0:
        # Shot noise grows with the signal; its level at the frame's mean brightness stands for all of it.
        sigma = optics.noise + optics.shot * float(np.sqrt(max(float(img[::4, ::4].mean()), 0.0) / 16.0))
        img += _noise_sample(rng, h, w) * np.float32(sigma)
    return np.asarray(np.clip(img + 0.5, 0, 255), dtype=np.uint8)


def render(look: Look, products: Sequence[Product], rng: np.random.Generator, travel: float = 0.0,
           overlay: Overlay | None = None) -> Uint8Image:
    """One HxWx3 uint8 RGB frame of the belt carrying ``products`` as ``look``'s camera sees it."""
    canvas, u0, v0 = draw_canvas(look, products, travel)
    img = np.asarray(warp(canvas, look, u0, v0), dtype=np.float32).copy()
    if overlay is not None:
        overlay(img, rng)
    return sensor(img, look.light, look.optics, rng)


def blank_scene(width: int, height: int, rgb: tuple[float, float, float], rng: np.random.Generator, texture: float = 0.05,
                cell: float = 30.0) -> FloatImage:
    """A smooth textured surface in image space (walls, floors, covers)."""
    field = 1.0 + texture * smooth_field(rng, height, width, cell)
    return (field[:, :, None] * np.asarray(rgb, np.float32)).astype(np.float32)
