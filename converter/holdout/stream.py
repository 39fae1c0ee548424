"""A moving belt from the second renderer, for time-based evaluation (the detection benchmark).

Rendering an hour at 15 fps frame by frame would take far too long, so the belt is drawn once per
stretch as a long panorama strip (cookies, stripes, shadows at twice the size, reduced once), and
every frame is a rotated window into it (one affine resample), then lit, made noisy and JPEG
compressed on its own. Gaps, stops, single missing rows, lighting drift and flicker are scripted;
unknown scenes (hand, covered lens, wall, noise, glare) are drawn over or instead of the view.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from converter.holdout.cases import _hand
from converter.holdout.draw import Cookie, draw_canvas, lane_centres, sample_installation, with_camera

Uint8Image = npt.NDArray[np.uint8]
CHUNK = 2048  # panorama pixels (along the flow) drawn at a time


@dataclass(frozen=True)
class Script:
    """What happens on the belt: gaps (start time, length in pitches), stops and unknown scenes (start, duration)."""

    gaps: tuple[tuple[float, float], ...] = ()
    missing_rows: tuple[float, ...] = ()  # single missing rows (1 pitch: acceptable)
    stops: tuple[tuple[float, float], ...] = ()
    episodes: tuple[tuple[str, float, float], ...] = ()  # kind, start, duration
    stray_rate: float = 0.01
    drift: float = 0.15  # slow lighting drift amplitude
    flicker: float = 0.03


@dataclass(frozen=True)
class FrameTruth:
    gap_index: int | None  # the scripted gap whose empty stretch is fully in view (or fills it), if any
    moving: bool
    episode: str | None


class HoldoutStream:
    """Frames at ``fps`` from a fixed installation; ``frame(i)`` must be asked in increasing order."""

    def __init__(self, seed: int, script: Script, fps: float = 15.0, size: tuple[int, int] = (320, 240), speed: float = 150.0,
                 jpeg: bool = True) -> None:
        rng = np.random.default_rng((seed, 99))
        inst = sample_installation(rng, size, rows=int(rng.integers(3, 6)), vertical=False)
        self.inst = with_camera(inst, angle_deg=float(rng.uniform(-5, 5)), blur=0.0, noise=float(rng.uniform(2, 7)),
                                brightness=float(rng.uniform(0.75, 1.05)), jpeg=int(rng.integers(75, 92)))
        self.seed, self.script, self.fps, self.speed, self.jpeg = seed, script, fps, speed, jpeg
        self.pitch = self.inst.pitch
        self._rng = np.random.default_rng((seed, 5))
        self._noise = np.random.default_rng((seed, 6)).standard_normal((512, 1024, 3), dtype=np.float32)
        self._chunk: tuple[int, Image.Image] | None = None
        self._hands: dict[int, npt.NDArray[np.float32]] = {}
        # Belt travel at each frame (stops hold it), and which rows (index k at belt x = -k * pitch) are missing.
        self._gap_rows: list[tuple[int, int, float]] = []  # first row, rows missing, extra shift after the gap
        for start, length in script.gaps:
            k0 = int(np.ceil((self._travel_at(start) + size[0] / 2) / self.pitch))
            self._gap_rows.append((k0, int(np.floor(length)), (length - np.floor(length)) * self.pitch))
        self._single = {int(np.ceil((self._travel_at(t) + size[0] / 2) / self.pitch)) for t in script.missing_rows}
        self._half = size[0] / 2
        ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
        _, strength, direction = self.inst.gradient
        self._light = (1 + strength * ((xs / size[0] - 0.5) * np.cos(direction) + (ys / size[1] - 0.5) * np.sin(direction)))[:, :, None]

    # -- the belt ------------------------------------------------------------------------------------------------
    def _travel_at(self, t: float) -> float:
        travelled, last = 0.0, 0.0
        for start, duration in sorted(self.script.stops):
            if t <= start:
                break
            travelled += (start - last) * self.speed
            last = min(t, start + duration)
            if t < start + duration:
                return travelled
        return travelled + (t - last) * self.speed

    def moving(self, t: float) -> bool:
        return not any(s <= t < s + d for s, d in self.script.stops)

    def _row_x(self, k: int) -> float:
        """Belt position of row k's centre (rows upstream have larger k and more negative x)."""
        shift = sum(extra for k0, m, extra in self._gap_rows if k >= k0 + m)
        return -k * self.pitch - shift

    def _row_missing(self, k: int) -> set[int] | None:
        """Lanes missing in row k: None for none, all lanes for a gap or a single missing row."""
        if any(k0 <= k < k0 + m for k0, m, _ in self._gap_rows) or k in self._single:
            return set(range(self.inst.rows))
        return None

    def _cookies(self, x_lo: float, x_hi: float) -> list[Cookie]:
        cookies = []
        k_hi = int(np.ceil(-x_lo / self.pitch)) + 2 + sum(m + 1 for _, m, _ in self._gap_rows)
        k_lo = max(-1000000, int(np.floor(-x_hi / self.pitch)) - 2 - sum(m + 1 for _, m, _ in self._gap_rows))
        for k in range(k_lo, k_hi + 1):
            x = self._row_x(k)
            if not (x_lo - 2 * self.pitch <= x <= x_hi + 2 * self.pitch) or self._row_missing(k) is not None:
                continue
            rng = np.random.default_rng((self.seed, 3, k & 0x7FFFFFFF))
            for lane, y in enumerate(lane_centres(self.inst)):
                if rng.random() < self.script.stray_rate:
                    continue
                r = self.inst.radius * rng.uniform(0.92, 1.08)
                cookies.append(Cookie(x + rng.normal(0, 0.04 * r), y + rng.normal(0, 0.04 * r), r, lane, int(rng.integers(1 << 30))))
        return cookies

    def _panorama(self, travel: float) -> tuple[float, Image.Image]:
        """The chunk of belt (reduced to frame scale) holding the view at ``travel``; returns its left belt x and the image."""
        index = int(np.floor((-travel - self._half - 64) / (CHUNK / 2)))
        if self._chunk is None or self._chunk[0] != index:
            x_left = index * CHUNK / 2
            centre = x_left + CHUNK / 2
            cookies = [Cookie(c.x - centre, c.y, c.radius, c.lane, c.seed) for c in self._cookies(x_left, x_left + CHUNK)]
            strip, _, _ = draw_canvas(self.inst, cookies, 2, shift=centre, size=(CHUNK, int(self.inst.height * 1.6)))
            self._chunk = (index, strip.reduce(2))
        x_left = self._chunk[0] * CHUNK / 2
        return x_left, self._chunk[1]

    # -- frames --------------------------------------------------------------------------------------------------
    def truth(self, i: int) -> FrameTruth:
        t = i / self.fps
        travel = self._travel_at(t)
        view_lo, view_hi = -travel - self._half, -travel + self._half
        gap_index = None
        for index in range(len(self._gap_rows)):
            if self._fully_visible(index, view_lo, view_hi):
                gap_index = index
        episode = next((kind for kind, s, d in self.script.episodes if s <= t < s + d), None)
        return FrameTruth(gap_index, self.moving(t), episode)

    def _stretch(self, index: int) -> tuple[float, float]:
        """Belt x of gap ``index``'s empty stretch: from the edge of row k0+m (upstream) to that of row k0-1."""
        k0, m, _ = self._gap_rows[index]
        return self._row_x(k0 + m) + self.inst.radius, self._row_x(k0 - 1) - self.inst.radius

    def _fully_visible(self, index: int, view_lo: float, view_hi: float) -> bool:
        """The whole gap is in view, or (a gap longer than the view) the view is all gap; within one frame's travel,
        so that a gap just shorter than the view, which fits it only between two frames, still counts."""
        upstream, downstream = self._stretch(index)
        tol = self.speed / self.fps
        return (view_lo - tol <= upstream and downstream <= view_hi + tol) or (upstream <= view_lo + tol and view_hi - tol <= downstream)

    def gap_visible_span(self, index: int) -> tuple[float, float]:
        """Stream times (s) from the first frame where gap ``index`` is fully in view (or fills the view) to the
        first frame after it has left the view."""
        upstream, _ = self._stretch(index)
        first = None
        step = 1.0 / self.fps
        start = self.script.gaps[index][0]
        t = start
        while True:
            travel = self._travel_at(t)
            lo, hi = -travel - self._half, -travel + self._half
            if first is None and self._fully_visible(index, lo, hi):
                first = t
            if first is not None and upstream > hi:
                return first, t
            t += step
            if t > start + 3600:
                raise RuntimeError("gap never leaves the view")

    def frame(self, i: int) -> Uint8Image:
        t = i / self.fps
        travel = self._travel_at(t)
        x_left, strip = self._panorama(travel)
        inst = self.inst
        # Affine window: frame pixel (fx, fy) -> strip pixel, rotating about the view centre.
        a = np.deg2rad(inst.angle_deg)
        cx = (-travel) - x_left
        cy = strip.height / 2
        c, s = np.cos(a), np.sin(a)
        coeffs = (c, s, cx - c * inst.width / 2 - s * inst.height / 2, -s, c, cy + s * inst.width / 2 - c * inst.height / 2)
        view = strip.transform((inst.width, inst.height), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        episode = next(((n, kind, s0) for n, (kind, s0, d) in enumerate(self.script.episodes) if s0 <= t < s0 + d), None)
        img = np.asarray(view, np.float32)
        if episode is not None:
            img = self._episode(img, episode[0], episode[1])
        drift = 1 + self.script.drift * np.sin(2 * np.pi * t / 600.0)
        gain = inst.brightness * drift * (1 + self._rng.normal(0, self.script.flicker))
        img = img * self._light * (gain * np.asarray(inst.cast, np.float32))
        if episode is not None and episode[1] == "glare":
            img = self._glare(img, episode[0])
        # Sensor noise: a random window of a precomputed normal field (drawing 230,000 normals a frame would
        # cost more than everything else here); windows differ every frame.
        y0, x0 = int(self._rng.integers(0, 512 - inst.height)), int(self._rng.integers(0, 1024 - inst.width))
        img += self._noise[y0 : y0 + inst.height, x0 : x0 + inst.width] * np.float32(inst.noise)
        out = np.clip(img, 0, 255).astype(np.uint8)
        if episode is not None and episode[1] == "noise":
            out = self._rng.integers(0, 256, out.shape, dtype=np.uint8)
        if self.jpeg:
            buf = io.BytesIO()
            Image.fromarray(out).save(buf, format="JPEG", quality=inst.jpeg)
            out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), np.uint8)
        return out

    def _episode(self, img: npt.NDArray[np.float32], n: int, kind: str) -> npt.NDArray[np.float32]:
        h, w = img.shape[:2]
        rng = np.random.default_rng((self.seed, 17, n))
        if kind == "hand":
            mask = self._hands.setdefault(n, _hand(rng, w, h))
            skin = np.array([[220, 175, 150], [160, 115, 85], [60, 110, 200]], np.float32)[n % 3]
            return img * (1 - mask[:, :, None]) + (skin * 0.9)[None, None, :] * mask[:, :, None]
        if kind == "covered_lens":
            edge = np.clip((0.8 - np.arange(w)[None, :] / w) / 0.15 + 0.5, 0, 1)[:, :, None]
            return img * (1 - edge) * 0.7 + np.array([25, 15, 12], np.float32) * edge
        if kind == "grey_wall":
            grey = 90 + 80 * rng.random()
            return np.full_like(img, grey) + rng.normal(0, 2, (h, w, 1)).astype(np.float32)
        return img

    def _glare(self, img: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.float32]:
        h, w = img.shape[:2]
        rng = np.random.default_rng((self.seed, 19, n))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        gx, gy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, rng.uniform(0.45, 0.7) * w
        return img + 500 * np.exp(-(((xs - gx) / r) ** 2 + ((ys - gy) / r) ** 2))[:, :, None]
