"""What lies on the belt and what the line looks like: belt, product, layout, light, optics.

Everything here is a plain frozen value drawn from a generator; :mod:`edge.simulator.render` turns
the values into pixels. Ranges are deliberately wide (night shift to glare, 1 to 7 lanes, round,
oval, square and bar products, pale to dark bakes) because the model must work on lines nobody on
the team has seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edge.simulator.camera import Camera
from edge.simulator.textures import BELT_TEXTURES

RGB = tuple[float, float, float]
# "rough": a round bake with a lumpy, uneven outline (hand-formed dough, spread in the oven, broken edges).
SHAPES = ("round", "round", "rough", "rough", "oval", "square", "bar")
# Frame sizes for stills; lane crops and the device's own ROIs come from these by cropping.
STILL_SIZES = ((128, 96), (144, 108), (160, 120), (176, 132), (192, 144), (208, 156), (224, 168), (240, 180),
               (192, 108), (224, 126), (256, 144), (180, 120), (240, 160), (144, 144), (176, 176))
# Now and then a frame as large as a camera's, so fine detail aliases as the device's resize makes it.
LARGE_SIZES = ((320, 240), (400, 300), (480, 270), (512, 384))


@dataclass(frozen=True)
class BeltLook:
    """The belt surface and its surroundings."""

    rgb: RGB
    texture: str
    texture_period: float
    texture_seed: int
    half_width: float  # belt pixels from the centre line to an edge
    rail_width: float
    rail_rgb: RGB
    surround_rgb: RGB


@dataclass(frozen=True)
class ProductStyle:
    """How one product type looks."""

    shape: str
    rgb: RGB
    chips: int  # dark inclusions per product (chocolate chips, raisins); 0 for plain bakes
    chip_rgb: RGB
    edge_dark: float  # darker rim of the bake
    gloss: float  # specular sheen of glazed products
    size_spread: float  # relative std of product size
    tone_spread: float  # relative std of product brightness


@dataclass(frozen=True)
class Layout:
    """Rows of product across the belt: ``lanes`` per row, rows ``pitch`` apart along the flow."""

    lanes: int
    lane_v: tuple[float, ...]  # lane centre lines (belt v)
    length: float  # product size along the flow (belt pixels)
    width: float  # product size across the flow
    pitch: float
    stagger: bool
    jitter: float  # placement noise, fraction of the product size


@dataclass(frozen=True)
class Product:
    """One product in belt coordinates."""

    u: float
    v: float
    lane: int
    half_u: float  # half extent along the flow (after rotation)
    rx: float
    ry: float
    angle: float
    tone: float
    seed: int


@dataclass(frozen=True)
class Light:
    """Lighting and optics in image space; everything is multiplicative or additive on linear-ish pixels."""

    gain: float
    gradient: tuple[float, float]
    vignette: float
    cast: RGB
    shadow: tuple[float, float, float, float] | None  # band: angle, offset (fraction), width (fraction), depth
    highlights: int  # small specular spots on the belt
    glare: tuple[float, float, float, float] | None  # x, y (fraction), radius (fraction), strength (pixel levels)
    product_shadow: tuple[float, float, float]  # offset (product radii) along u and v, darkness
    flicker: float = 0.0  # relative per-frame gain jitter (streams)


@dataclass(frozen=True)
class Optics:
    """What the lens and sensor add."""

    motion_blur: float  # belt pixels of blur along the flow
    defocus: float  # Gaussian radius, image pixels
    dirt: int  # lens-dirt blobs
    dirt_seed: int
    noise: float  # read noise, pixel levels
    shot: float  # signal-dependent noise factor
    jpeg_quality: int  # 0 = stored losslessly


@dataclass(frozen=True)
class Look:
    """A whole installation at one moment: camera, belt, product, light and optics."""

    camera: Camera
    belt: BeltLook
    style: ProductStyle
    light: Light
    optics: Optics
    extras: dict[str, float] = field(default_factory=dict)


def _rgb(values: np.ndarray) -> RGB:
    return float(values[0]), float(values[1]), float(values[2])


def sample_belt(rng: np.random.Generator, half_width: float) -> BeltLook:
    kind = int(rng.integers(6))
    if kind == 0:  # white/light grey food belt
        base = np.full(3, rng.uniform(170, 235))
    elif kind == 1:  # mid grey
        base = np.full(3, rng.uniform(95, 170))
    elif kind == 2:  # blue
        base = np.array([rng.uniform(40, 110), rng.uniform(90, 150), rng.uniform(150, 215)])
    elif kind == 3:  # green
        base = np.array([rng.uniform(50, 110), rng.uniform(110, 170), rng.uniform(80, 140)])
    elif kind == 4:  # tan / beige / cloth
        base = np.array([rng.uniform(170, 225), rng.uniform(150, 205), rng.uniform(110, 170)])
    else:  # dark grey or black
        base = np.full(3, rng.uniform(35, 95))
    base = base * rng.uniform(0.93, 1.07, 3)
    rail = np.full(3, rng.uniform(70, 200)) * rng.uniform(0.95, 1.05, 3)
    surround = np.full(3, rng.uniform(20, 120)) * rng.uniform(0.85, 1.15, 3)
    return BeltLook(
        rgb=_rgb(base),
        texture=BELT_TEXTURES[int(rng.integers(len(BELT_TEXTURES)))],
        texture_period=float(rng.integers(3, 15)),
        texture_seed=int(rng.integers(4)),  # a few surfaces per kind: their tiles stay cached
        half_width=half_width,
        rail_width=float(half_width * rng.uniform(0.04, 0.16)),
        rail_rgb=_rgb(rail),
        surround_rgb=_rgb(surround),
    )


def sample_style(rng: np.random.Generator) -> ProductStyle:
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    bake = rng.uniform(0, 1)
    # From pale shortbread through golden biscuits to dark chocolate.
    pale, golden, dark = np.array([225, 190, 135]), np.array([190, 125, 60]), np.array([75, 45, 30])
    base = pale + (golden - pale) * bake * 2 if bake < 0.5 else golden + (dark - golden) * (bake - 0.5) * 2
    if rng.random() < 0.12:  # iced, coated or coloured products: pink, white, green, yellow, red
        base = np.asarray([(235, 170, 185), (238, 232, 220), (150, 190, 120), (235, 205, 90), (190, 60, 55)][int(rng.integers(5))], float)
    base = np.clip(base * rng.uniform(0.88, 1.12, 3), 20, 245)
    chips = int(rng.choice([0, 0, 3, 5, 7, 9, 12])) if shape in ("round", "rough", "oval") else int(rng.choice([0, 0, 0, 4]))
    chip = base * rng.uniform(0.25, 0.5) if bake < 0.7 else np.array([rng.uniform(200, 240)] * 3)  # white chips on dark bakes
    return ProductStyle(
        shape=shape,
        rgb=_rgb(base),
        chips=chips,
        chip_rgb=_rgb(chip),
        edge_dark=float(rng.uniform(0.0, 0.35)),
        gloss=float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.1, 0.4)])),
        size_spread=float(rng.uniform(0.0, 0.07)),
        tone_spread=float(rng.uniform(0.02, 0.1)),
    )


def _layout(rng: np.random.Generator, shape: str, lanes: int, pitch: float) -> Layout:
    """Rows ``pitch`` apart with ``lanes`` products each, sized to the pitch."""
    # Products fill 55-94% of the pitch: tight rows and well-spaced ones (the gap between rows is not a gap).
    length = pitch / rng.uniform(1.06, 1.8)
    aspect = {"round": 1.0, "rough": float(rng.uniform(0.88, 1.0)), "square": float(rng.uniform(0.9, 1.1)),
              "oval": rng.uniform(0.65, 0.85), "bar": rng.uniform(0.3, 0.55)}[shape]
    # Oval and bar products lie either way: long side along the flow or across it.
    width = length / aspect if rng.random() < 0.5 else length * aspect if shape in ("oval", "bar") else length
    spacing = width / rng.uniform(0.62, 0.9)
    first = -(lanes - 1) * spacing / 2
    return Layout(
        lanes=lanes,
        lane_v=tuple(first + i * spacing for i in range(lanes)),
        length=float(length),
        width=float(width),
        pitch=float(pitch),
        stagger=bool(lanes > 1 and rng.random() < 0.25),
        jitter=float(rng.uniform(0.0, 0.1) if rng.random() < 0.75 else rng.uniform(0.1, 0.18)),
    )


def sample_layout(rng: np.random.Generator, belt: BeltLook, shape: str, lanes: int | None = None) -> Layout:
    """A layout filling ``belt`` with ``lanes`` lanes (random if None)."""
    lanes = lanes if lanes is not None else int(rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7]))
    spacing = 2 * belt.half_width * rng.uniform(0.78, 0.95) / lanes
    width = spacing * rng.uniform(0.62, 0.9)
    layout = _layout(rng, "round" if shape == "round" else shape, lanes, width * rng.uniform(1.06, 1.6))
    scale = spacing / max(layout.lane_v[1] - layout.lane_v[0], 1e-6) if lanes > 1 else width / layout.width
    return replace(layout, lane_v=tuple(v * scale for v in layout.lane_v), width=layout.width * min(scale, 1.2))


def make_product(layout: Layout, style: ProductStyle, u: float, v: float, lane: int, rng: np.random.Generator) -> Product:
    """One product with its own size, bake and placement noise."""
    j = layout.jitter * layout.length
    scale = 1.0 + rng.normal(0.0, style.size_spread)
    rx, ry = layout.length / 2 * scale, layout.width / 2 * scale
    angle = float(rng.normal(0.0, 0.08 if style.shape in ("bar", "square", "oval") else 0.0))
    half_u = float(np.sqrt((rx * np.cos(angle)) ** 2 + (ry * np.sin(angle)) ** 2))
    return Product(
        u=u + float(rng.normal(0.0, j)),
        v=v + float(rng.normal(0.0, j)),
        lane=lane,
        half_u=half_u,
        rx=float(rx),
        ry=float(ry),
        angle=angle,
        tone=float(1.0 + rng.normal(0.0, style.tone_spread)),
        seed=int(rng.integers(1 << 30)),
    )


def sample_camera(rng: np.random.Generator, size: tuple[int, int], belt_half_width: float | None = None) -> tuple[Camera, float]:
    """A camera over a belt; returns it and the belt half-width (belt pixels) it implies."""
    width, height = size
    # Cameras are mounted with the flow across the picture; now and then one is turned (flow down the picture).
    vertical = bool(rng.random() < 0.08)
    across_px = width if vertical else height
    zoom = float(rng.uniform(0.8, 1.25))
    # How much of the image the belt spans across the flow: > 1 means its edges are out of view.
    span = float(rng.choice([rng.uniform(0.55, 0.95), rng.uniform(0.95, 1.35)], p=[0.65, 0.35]))
    half_width = belt_half_width if belt_half_width is not None else span * across_px / zoom / 2.0
    camera = Camera(
        width=width,
        height=height,
        tilt_deg=float(rng.uniform(-9, 9)),
        vertical=vertical,
        zoom=zoom,
        centre_u=0.0,
        centre_v=float(rng.uniform(-0.14, 0.14) * across_px / zoom),
        keystone=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
    )
    return camera, half_width


def sample_light(rng: np.random.Generator) -> Light:
    regime = rng.random()
    if regime < 0.15:
        gain = rng.uniform(0.22, 0.5)  # night shift, lights dimmed
    elif regime < 0.85:
        gain = rng.uniform(0.5, 1.2)
    else:
        gain = rng.uniform(1.2, 1.6)  # over-exposed
    shadow = None
    if rng.random() < 0.25:
        shadow = (float(rng.uniform(0, np.pi)), float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0.1, 0.5)), float(rng.uniform(0.15, 0.55)))
    glare = None
    if rng.random() < 0.2:  # a reflection that does not blow the picture out
        glare = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0.05, 0.2)), float(rng.uniform(25, 90)))
    cast_strength = rng.choice([0.05, 0.12, 0.22], p=[0.5, 0.35, 0.15])
    return Light(
        gain=float(gain),
        gradient=(float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.5, 0.5))),
        vignette=float(rng.uniform(0.05, 0.45)) if rng.random() < 0.5 else 0.0,
        cast=_rgb(np.exp(rng.uniform(-cast_strength, cast_strength, 3))),
        shadow=shadow,
        highlights=int(rng.integers(1, 12)) if rng.random() < 0.25 else 0,
        glare=glare,
        product_shadow=(float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0.1, 0.5))),
    )


def sample_optics(rng: np.random.Generator, night: bool = False) -> Optics:
    noise = float(np.asarray([0.0, rng.uniform(1, 5), rng.uniform(5, 10), rng.uniform(10, 16)])[rng.choice(4, p=[0.15, 0.4, 0.3, 0.15])])
    if night:
        noise = max(noise, float(rng.uniform(4, 10)))
    return Optics(
        motion_blur=float(np.asarray([0.0, 0.0, rng.uniform(1, 5), rng.uniform(5, 14)])[rng.integers(4)]),
        defocus=float(np.asarray([0.0, 0.0, rng.uniform(0.4, 1.2), rng.uniform(1.2, 2.5)])[rng.choice(4, p=[0.35, 0.25, 0.25, 0.15])]),
        dirt=int(rng.choice([0, 0, 0, 0, 1, 2, 4])),
        dirt_seed=int(rng.integers(1 << 30)),
        noise=noise,
        shot=float(rng.uniform(0.0, 2.0)),
        jpeg_quality=int(rng.integers(40, 96)) if rng.random() < 0.85 else 0,
    )


def sample_installation(rng: np.random.Generator, size: tuple[int, int] | None = None, lanes: tuple[int, int] = (1, 8),
                        rows_in_view: tuple[float, float] = (3.5, 13.0)) -> tuple[Look, Layout]:
    """A random installation: frame size, camera, belt, product, layout, light and optics.

    The view always spans ``rows_in_view`` product pitches along the flow (a camera set up to watch the
    flow sees several rows, so a two-pitch gap fits in it); the number of lanes (within ``lanes``) and the
    belt's width follow from the product size, so the belt fills 30-135% of the view across the flow.
    """
    if size is None:
        sizes = LARGE_SIZES if rng.random() < 0.08 else STILL_SIZES
        size = sizes[int(rng.integers(len(sizes)))]
    for _ in range(50):
        camera, _ = sample_camera(rng, size)
        lo, hi = camera.flow_range((0.0, 0.0, float(camera.width), float(camera.height)))
        style = sample_style(rng)
        layout = _layout(rng, style.shape, 1, (hi - lo) / rng.uniform(*rows_in_view))
        spacing = layout.width / 0.76  # typical; _layout's own spacing is recomputed below
        across = (camera.width if camera.vertical else camera.height) / camera.zoom
        fill = rng.uniform(0.78, 0.95)
        low = max(lanes[0], int(np.ceil(0.3 * across * fill / spacing)))
        high = min(lanes[1], int(np.floor(1.35 * across * fill / spacing)))
        if low > high:
            continue
        count = int(rng.integers(low, high + 1))
        layout = _layout(rng, style.shape, count, layout.pitch)
        usable = (layout.lane_v[-1] - layout.lane_v[0]) + (layout.lane_v[1] - layout.lane_v[0] if count > 1 else layout.width / 0.76)
        half_width = usable / fill / 2
        belt = sample_belt(rng, half_width)
        if not visible(belt, style):
            continue
        break
    else:  # pragma: no cover - the ranges make this practically impossible
        raise RuntimeError("could not fit a layout into the view")
    light = sample_light(rng)
    look = _exposed(Look(camera, belt, style, light, sample_optics(rng, light.gain < 0.5)))
    return look, layout


def _luma(rgb: RGB) -> float:
    return 0.3 * rgb[0] + 0.59 * rgb[1] + 0.11 * rgb[2]


def visible(belt: BeltLook, style: ProductStyle) -> bool:
    """Product a camera can tell from the belt: a difference in brightness or in colour."""
    colour = max(abs(a - b) for a, b in zip(belt.rgb, style.rgb, strict=True))
    return abs(_luma(belt.rgb) - _luma(style.rgb)) >= 30 or colour >= 55


def sample_look(rng: np.random.Generator, size: tuple[int, int] | None = None) -> Look:
    """A random installation's look (see :func:`sample_installation`)."""
    return sample_installation(rng, size)[0]


def _exposed(look: Look) -> Look:
    belt, style, light = look.belt, look.style, look.light
    # An installer sets the exposure so the brightest surface does not clip (blown-out views are unknown scenes).
    spread = 1 + (abs(light.gradient[0]) + abs(light.gradient[1])) / 2
    brightest = max(max(belt.rgb), max(style.rgb), max(belt.rail_rgb)) * max(light.cast) * spread
    gain = min(light.gain, 248.0 / brightest)
    # ... and a night shift still leaves the product visible: the difference to the belt stays above ~20 levels.
    contrast = max(abs(_luma(belt.rgb) - _luma(style.rgb)), 1.0)
    gain = max(gain, min(20.0 / contrast, 248.0 / brightest))
    return replace(look, light=replace(light, gain=float(gain)))
