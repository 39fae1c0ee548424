"""Drawing for the second renderer (evaluation only; see the package docstring).

A camera installation is fixed by :class:`Installation`; cookies are placed on a flow-aligned
canvas (x along the flow, y across), drawn as irregular polygons with chips at ``SUPERSAMPLE``
times the size, the canvas is rotated into the camera's view, reduced, then lit, blurred, made
noisy and JPEG-compressed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

Uint8Image = npt.NDArray[np.uint8]
SIZES = ((320, 240), (352, 264), (400, 300), (480, 360), (512, 384), (560, 420), (640, 480), (720, 540), (800, 600),
         (640, 360), (768, 432), (426, 240))
MIN_GAP, MAX_ACCEPTABLE = 2.0, 1.25  # the alert spec's limits (docs/alert-spec.md), in pitches


@dataclass(frozen=True)
class Installation:
    """One camera over one belt, in frame pixels."""

    width: int
    height: int
    angle_deg: float
    vertical: bool
    rows: int  # lanes of cookies
    radius: float
    pitch: float
    lane_spacing: float
    belt_half: float  # belt half-width across the flow
    belt_rgb: tuple[int, int, int]
    stripe_rgb: tuple[int, int, int]
    stripe_period: float
    side_rgb: tuple[int, int, int]
    cookie_rgb: tuple[int, int, int]
    chip_rgb: tuple[int, int, int]
    chips: int
    brightness: float
    gradient: tuple[float, float, float]  # kind (0 linear, 1 radial), strength, direction (radians)
    cast: tuple[float, float, float]
    noise: float
    blur: float
    jpeg: int
    offset: float  # belt centre line offset across the view


@dataclass(frozen=True)
class Cookie:
    x: float  # along the flow, canvas pixels from the view centre
    y: float  # across
    radius: float
    lane: int
    seed: int


@dataclass(frozen=True)
class HoldoutFrame:
    image: Uint8Image
    gap_pitches: float
    label: str  # acceptable, alert, or the hard case's own expectation
    lane_gaps: tuple[float, ...] = ()


def sample_installation(rng: np.random.Generator, size: tuple[int, int] | None = None, rows: int | None = None,
                        vertical: bool | None = None) -> Installation:
    width, height = size if size is not None else SIZES[int(rng.integers(len(SIZES)))]
    vertical = bool(rng.random() < 0.15) if vertical is None else vertical
    across = width if vertical else height
    rows = rows if rows is not None else int(rng.integers(2, 7))
    belt_half = across * rng.uniform(0.34, 0.6)
    lane_spacing = 2 * belt_half * rng.uniform(0.8, 0.92) / rows
    radius = lane_spacing / 2 * rng.uniform(0.7, 0.92)
    palette = [(150, 150, 150), (200, 200, 196), (60, 90, 150), (40, 40, 44), (190, 170, 130), (90, 130, 100)]
    belt = np.array(palette[int(rng.integers(len(palette)))]) * rng.uniform(0.85, 1.15)
    cookie = np.array([rng.uniform(150, 215), rng.uniform(95, 150), rng.uniform(45, 90)]) * rng.uniform(0.75, 1.1)
    chip = np.array([rng.uniform(40, 75), rng.uniform(22, 40), rng.uniform(12, 25)])
    dim = rng.random() < 0.1
    return Installation(
        width=width, height=height, angle_deg=float(rng.uniform(-7, 7)), vertical=vertical, rows=rows,
        radius=float(radius), pitch=float(2 * radius * rng.uniform(1.12, 1.5)), lane_spacing=float(lane_spacing),
        belt_half=float(belt_half),
        belt_rgb=_rgb(belt), stripe_rgb=_rgb(belt * rng.uniform(0.82, 0.95)), stripe_period=float(rng.uniform(4, 18)),
        side_rgb=_rgb(np.full(3, rng.uniform(30, 140))), cookie_rgb=_rgb(cookie), chip_rgb=_rgb(chip),
        chips=int(rng.integers(3, 10)),
        brightness=float(rng.uniform(0.3, 0.55) if dim else rng.uniform(0.6, 1.2)),
        gradient=(float(rng.integers(2)), float(rng.uniform(0.0, 0.6)), float(rng.uniform(0, 2 * np.pi))),
        cast=(float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.8, 1.2))),
        noise=float(rng.uniform(0, 14)), blur=float(rng.uniform(0.5, 2.2) if rng.random() < 0.5 else 0.0),
        jpeg=int(rng.integers(65, 96)), offset=float(rng.uniform(-0.08, 0.08) * across),
    )


def _rgb(values: npt.NDArray[np.float64]) -> tuple[int, int, int]:
    v = np.clip(values, 0, 255).astype(int)
    return int(v[0]), int(v[1]), int(v[2])


def lane_centres(inst: Installation) -> list[float]:
    first = -(inst.rows - 1) / 2 * inst.lane_spacing
    return [inst.offset + first + k * inst.lane_spacing for k in range(inst.rows)]


def view_to_canvas(inst: Installation, fx: npt.NDArray[np.float64], fy: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """Frame pixel -> flow-aligned coordinates (x along the flow, y across), both relative to the view centre."""
    a = np.deg2rad(inst.angle_deg) + (np.pi / 2 if inst.vertical else 0.0)
    dx, dy = fx - inst.width / 2, fy - inst.height / 2
    return dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)


def canvas_to_view(inst: Installation, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    a = np.deg2rad(inst.angle_deg) + (np.pi / 2 if inst.vertical else 0.0)
    return x * np.cos(a) - y * np.sin(a) + inst.width / 2, x * np.sin(a) + y * np.cos(a) + inst.height / 2


def flow_extent(inst: Installation) -> tuple[float, float]:
    """Range of x (along the flow) the camera sees along the middle of the view."""
    corners_x, _ = view_to_canvas(inst, np.array([0.0, inst.width, inst.width, 0.0]), np.array([0.0, 0.0, inst.height, inst.height]))
    return float(corners_x.min()), float(corners_x.max())


def measure(inst: Installation, cookies: list[Cookie], box: tuple[float, float, float, float] | None = None) -> float:
    """Longest stretch across the flow without a cookie, in pitches, inside ``box`` (frame pixels; default the frame)."""
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(inst.width), float(inst.height))
    if inst.vertical:
        ends_x, _ = view_to_canvas(inst, np.array([(x0 + x1) / 2] * 2), np.array([y0, y1]))
    else:
        ends_x, _ = view_to_canvas(inst, np.array([x0, x1]), np.array([(y0 + y1) / 2] * 2))
    lo, hi = float(ends_x.min()), float(ends_x.max())
    spans = []
    for c in cookies:
        fx, fy = canvas_to_view(inst, np.array(c.x), np.array(c.y))
        if x0 <= float(fx) < x1 and y0 <= float(fy) < y1:
            spans.append((c.x - c.radius, c.x + c.radius))
    spans.sort()
    best, cursor = 0.0, lo
    for a, b in spans:
        if b <= lo or a >= hi:
            continue
        best = max(best, a - cursor)
        cursor = max(cursor, b)
    best = max(best, hi - cursor)
    return max(0.0, (best + 2 * inst.radius) / inst.pitch - 1.0)


def lay_cookies(inst: Installation, rng: np.random.Generator, gap: float = 0.0, gap_at: float | None = None,
                lanes: tuple[int, ...] | None = None, strays: int = 0, empty_lanes: tuple[int, ...] = ()) -> list[Cookie]:
    """Rows of cookies over the view; a gap of ``gap`` pitches starting at ``gap_at`` (in ``lanes``, default all)."""
    lo, hi = flow_extent(inst)
    phase = rng.uniform(0, inst.pitch)
    missing = int(np.floor(gap))
    extra = (gap - missing) * inst.pitch
    start = gap_at if gap_at is not None else lo
    cookies = []
    k = int(np.floor((lo - inst.pitch * 2 - phase) / inst.pitch))
    while True:
        x = phase + k * inst.pitch
        if x > hi + 2 * inst.pitch + extra:
            break
        k += 1
        in_gap = gap > 0 and start <= x < start + missing * inst.pitch
        shifted = x + extra if gap > 0 and x >= start + missing * inst.pitch else x
        for lane, y in enumerate(lane_centres(inst)):
            if lane in empty_lanes or (in_gap and (lanes is None or lane in lanes)):
                continue
            r = inst.radius * rng.uniform(0.92, 1.08)
            cookies.append(Cookie(shifted + rng.normal(0, 0.05 * r), y + rng.normal(0, 0.05 * r), r, lane, int(rng.integers(1 << 30))))
    for _ in range(min(strays, len(cookies))):
        cookies.pop(int(rng.integers(len(cookies))))
    return cookies


def _cookie_polygon(c: Cookie, cx: float, cy: float, scale: float, shrink: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    theta = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    wobble = sum(rng.uniform(0, 0.04) * np.cos(m * theta + rng.uniform(0, 2 * np.pi)) for m in (2, 3, 5))
    r = c.radius * shrink * (1 + wobble) * scale
    return list(zip((cx + r * np.cos(theta)).tolist(), (cy + r * np.sin(theta)).tolist(), strict=True))


def draw_canvas(inst: Installation, cookies: list[Cookie], scale: int, shift: float = 0.0,
                size: tuple[int, int] | None = None) -> tuple[Image.Image, float, float]:
    """The flow-aligned canvas (belt, sides, cookies): big enough for the rotated view, or ``size`` (frame
    pixels); returns it and its centre. ``shift`` is the belt position of the centre (for the stripes)."""
    diag = float(np.hypot(inst.width, inst.height)) + 8
    w, h = (int(size[0] * scale), int(size[1] * scale)) if size is not None else (int(np.ceil(diag * scale)),) * 2
    cx, cy = w / 2, h / 2
    img = Image.new("RGB", (w, h), inst.side_rgb)
    d = ImageDraw.Draw(img)
    top, bottom = cy + (inst.offset - inst.belt_half) * scale, cy + (inst.offset + inst.belt_half) * scale
    d.rectangle([0, top, w, bottom], fill=inst.belt_rgb)
    period = inst.stripe_period * scale
    x = -(shift * scale) % period
    while x < w:  # cross stripes that travel with the belt
        d.line([(x, top), (x + period * 0.3, bottom)], fill=inst.stripe_rgb, width=max(1, scale))
        x += period
    edge = tuple(min(255, int(c * 1.5) + 40) for c in inst.side_rgb)
    d.line([(0, top), (w, top)], fill=edge, width=2 * scale)
    d.line([(0, bottom), (w, bottom)], fill=edge, width=2 * scale)
    for c in cookies:
        px, py = cx + c.x * scale, cy + c.y * scale
        if not (-c.radius * 2 * scale < px < w + c.radius * 2 * scale):
            continue
        rng = np.random.default_rng(c.seed)
        shadow = [(x + 0.12 * c.radius * scale, y + 0.15 * c.radius * scale) for x, y in _cookie_polygon(c, px, py, scale, 1.0, rng)]
        d.polygon(shadow, fill=tuple(int(v * 0.6) for v in inst.belt_rgb))
        tone = rng.uniform(0.9, 1.1)
        rim = tuple(int(min(255, v * tone * 0.85)) for v in inst.cookie_rgb)
        face = tuple(int(min(255, v * tone * 1.05)) for v in inst.cookie_rgb)
        d.polygon(_cookie_polygon(c, px, py, scale, 1.0, rng), fill=rim)
        d.polygon(_cookie_polygon(c, px, py, scale, 0.8, rng), fill=face)
        for _ in range(int(rng.integers(max(1, inst.chips - 2), inst.chips + 3))):
            a, q = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1)) * 0.68 * c.radius * scale
            r = rng.uniform(0.08, 0.15) * c.radius * scale
            pts = [(px + q * np.cos(a) + r * rng.uniform(0.6, 1.2) * np.cos(t), py + q * np.sin(a) + r * rng.uniform(0.6, 1.2) * np.sin(t))
                   for t in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
            d.polygon(pts, fill=inst.chip_rgb)
    return img, cx, cy


def photograph(inst: Installation, canvas: Image.Image, scale: int, rng: np.random.Generator,
               brightness: float | None = None, extra_blur: float = 0.0) -> Uint8Image:
    """Rotate the canvas into the view, reduce, light, blur, add noise, JPEG."""
    angle = inst.angle_deg + (90.0 if inst.vertical else 0.0)
    rotated = canvas.rotate(-angle, resample=Image.Resampling.BICUBIC)  # PIL turns counter-clockwise; the view turns clockwise
    w, h = inst.width * scale, inst.height * scale
    left, top = (rotated.width - w) // 2, (rotated.height - h) // 2
    view = rotated.crop((left, top, left + w, top + h))
    if scale > 1:
        view = view.reduce(scale)
    blur = inst.blur + extra_blur
    if blur > 0.2:
        view = view.filter(ImageFilter.GaussianBlur(blur))
    img = np.asarray(view, np.float32) / 255.0
    ys, xs = np.mgrid[0 : inst.height, 0 : inst.width].astype(np.float32)
    nx, ny = xs / inst.width - 0.5, ys / inst.height - 0.5
    kind, strength, direction = inst.gradient
    if kind == 0:
        light = 1 + strength * (nx * np.cos(direction) + ny * np.sin(direction))
    else:
        light = 1 - strength * 1.4 * ((nx - 0.2 * np.cos(direction)) ** 2 + (ny - 0.2 * np.sin(direction)) ** 2)
    level = inst.brightness if brightness is None else brightness
    img = img * (light * level)[:, :, None] * np.asarray(inst.cast, np.float32)
    img = img * 255.0 + rng.normal(0, inst.noise, img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=inst.jpeg)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.uint8).copy()


def render_frame(inst: Installation, cookies: list[Cookie], rng: np.random.Generator, shift: float = 0.0, **kw: float) -> Uint8Image:
    scale = 2 if inst.width <= 480 else 1
    canvas, _, _ = draw_canvas(inst, cookies, scale, shift)
    return photograph(inst, canvas, scale, rng, **kw)


def belt_frame(rng: np.random.Generator, alert: bool, size: tuple[int, int] | None = None) -> HoldoutFrame:
    """A whole-frame still labelled by the spec: a full belt with a few strays or one missing row, or a
    gap of 2 to 8 pitches (most 2 to 4.5) across every lane."""
    for _ in range(50):
        inst = sample_installation(rng, size)
        lo, hi = flow_extent(inst)
        if alert:
            gap = float(rng.uniform(MIN_GAP, 4.5) if rng.random() < 0.8 else rng.uniform(4.5, 8.0))
            room = (hi - lo) - (gap + 1) * inst.pitch
            at = lo + rng.uniform(0, room) if room > 0 and rng.random() < 0.85 else rng.uniform(lo - gap * inst.pitch, hi)
            cookies = lay_cookies(inst, rng, gap, at, strays=int(rng.integers(0, 3)))
        else:
            mode = rng.random()
            if mode < 0.6:
                cookies = lay_cookies(inst, rng, strays=int(rng.integers(0, 4)))
            elif mode < 0.85:
                cookies = lay_cookies(inst, rng, float(rng.uniform(1.0, MAX_ACCEPTABLE)), rng.uniform(lo, hi - inst.pitch))
            else:
                keep = rng.random()
                cookies = [c for c in lay_cookies(inst, rng) if rng.random() > 0.12 * keep]
        measured = measure(inst, cookies)
        if (alert and measured >= MIN_GAP) or (not alert and measured <= MAX_ACCEPTABLE):
            return HoldoutFrame(render_frame(inst, cookies, rng), measured, "alert" if alert else "acceptable")
    raise RuntimeError("could not draw a holdout frame")  # pragma: no cover


def with_camera(inst: Installation, **changes: object) -> Installation:
    return replace(inst, **changes)  # type: ignore[arg-type]
