"""A moving belt as a video: rows keep coming; scripted drops, stops and unknown scenes.

The camera is fixed; the belt (its texture and the product on it) travels past at ``speed`` pixels
per second, left to right. A row that would have entered the view while a :class:`Drop` is active
is missing (in every lane, or only in the drop's lanes), so each drop becomes a gap that crosses
the view and leaves again. A :class:`Stop` halts the belt; an :class:`Episode` replaces the view by
an unknown scene (a hand, a covered lens, ...) for a while. ``truth_at(t)`` says what the alert spec
makes of the view at any time, for time-based checks.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from edge.simulator.render import render
from edge.simulator.scene import Layout, Look, Optics, Product, make_product, sample_installation
from edge.simulator.spec import DEFAULT_SPEC, AlertSpec, gap_pitches, longest_empty_stretch
from edge.simulator.unknown import render_unknown


@dataclass(frozen=True)
class Drop:
    """Production stops feeding the belt from ``start_s`` for ``duration_s`` (stream time); ``lanes``
    limits the drop to those lanes (None: every lane)."""

    start_s: float
    duration_s: float
    lanes: tuple[int, ...] | None = None

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s


@dataclass(frozen=True)
class Stop:
    """The belt stands still from ``start_s`` for ``duration_s``."""

    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Episode:
    """An unknown scene (see :data:`edge.simulator.unknown.UNKNOWN_KINDS`) replaces the view for a while."""

    kind: str
    start_s: float
    duration_s: float

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s


@dataclass(frozen=True)
class StreamTruth:
    """What the view shows at one moment, judged by the alert spec."""

    gap_pitches: float
    lane_gap_pitches: tuple[float, ...]
    alert: bool
    moving: bool
    episode: str | None


def stream_look(seed: int, size: tuple[int, int], noise: bool = True) -> tuple[Look, Layout]:
    """One fixed installation for a seed: a moderate look, so a stream is representative rather than extreme."""
    rng = np.random.default_rng(seed)
    look, layout = sample_installation(rng, size, lanes=(3, 5), rows_in_view=(5.0, 8.0))
    cam = replace(look.camera, vertical=False, tilt_deg=look.camera.tilt_deg / 3, keystone=(0.0, 0.0), centre_v=look.camera.centre_v / 2)
    belt = look.belt
    light = replace(look.light, gain=float(np.clip(look.light.gain, 0.8, 1.15)), glare=None, shadow=None, highlights=0,
                    vignette=min(look.light.vignette, 0.2))
    optics = Optics(motion_blur=0.0, defocus=0.0, dirt=0, dirt_seed=0, noise=float(np.clip(look.optics.noise, 2.0, 5.0)) if noise else 0.0,
                    shot=0.5 if noise else 0.0, jpeg_quality=0)
    look = Look(cam, belt, look.style, light, optics)
    return look, layout


class ConveyorStream:
    """Frames of one camera over one belt; ``frame_at(t)`` is deterministic for a seed."""

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = (320, 240),
        speed: float = 160.0,
        drops: tuple[Drop, ...] = (),
        stray_rate: float = 0.01,
        noise: bool = True,
        stops: tuple[Stop, ...] = (),
        episodes: tuple[Episode, ...] = (),
        flicker: float = 0.0,
        spec: AlertSpec = DEFAULT_SPEC,
    ) -> None:
        self.look, self.layout = stream_look(seed, size, noise)
        if flicker:
            self.look = replace(self.look, light=replace(self.look.light, flicker=flicker))
        self.seed = seed
        self.speed = speed
        self.drops = drops
        self.stops = tuple(sorted(stops, key=lambda s: s.start_s))
        self.episodes = episodes
        self.stray_rate = stray_rate
        self.spec = spec
        self._rows: OrderedDict[int, list[Product]] = OrderedDict()
        self._noise = np.random.default_rng((seed, 1))
        self._half_view = self.look.camera.width / 2.0 / self.look.camera.zoom
        # Belt travel is piecewise linear in time: knots (time, travel) at every start and end of a stop.
        knots_t, knots_s, t, s = [0.0], [0.0], 0.0, 0.0
        for stop in self.stops:
            start = max(stop.start_s, t)
            s += (start - t) * speed
            end = max(start, stop.start_s + stop.duration_s)
            knots_t += [start, end]
            knots_s += [s, s]
            t = end
        self._knots_t, self._knots_s = knots_t, knots_s

    # -- belt motion -------------------------------------------------------------------------------------------
    def travel(self, t: float) -> float:
        """Belt pixels travelled by stream time ``t``."""
        i = bisect_right(self._knots_t, t) - 1
        if i < 0:
            return 0.0
        t0, s0 = self._knots_t[i], self._knots_s[i]
        if i + 1 < len(self._knots_t) and self._knots_s[i + 1] == s0 and t < self._knots_t[i + 1]:
            return s0  # inside a stop
        return s0 + (t - t0) * self.speed

    def moving(self, t: float) -> bool:
        return not any(stop.start_s <= t < stop.start_s + stop.duration_s for stop in self.stops)

    def _time_of_travel(self, s: float) -> float:
        """The first stream time at which the belt has travelled ``s`` (negative travel: before the stream)."""
        if s <= 0:
            return s / self.speed
        for i in range(len(self._knots_t)):
            nxt = self._knots_s[i + 1] if i + 1 < len(self._knots_s) else np.inf
            if s <= nxt:
                if i + 1 < len(self._knots_s) and self._knots_s[i + 1] == self._knots_s[i]:
                    continue
                return self._knots_t[i] + (s - self._knots_s[i]) / self.speed
        return self._knots_t[-1] + (s - self._knots_s[-1]) / self.speed

    # -- product ------------------------------------------------------------------------------------------------
    def row_entry_time(self, row: int) -> float:
        """When row ``row`` (belt u = -row * pitch) enters the view at its upstream (left) edge."""
        return self._time_of_travel(row * self.layout.pitch - self._half_view)

    def _row(self, index: int) -> list[Product]:
        cached = self._rows.get(index)
        if cached is not None:
            return cached
        rng = np.random.default_rng((self.seed, index & 0x7FFFFFFF))
        entry = self.row_entry_time(index)
        missing = set()
        for drop in self.drops:
            if drop.covers(entry):
                missing |= set(range(self.layout.lanes)) if drop.lanes is None else set(drop.lanes)
        products = []
        for lane, v in enumerate(self.layout.lane_v):
            product = make_product(self.layout, self.look.style, -index * self.layout.pitch, v, lane, rng)
            if lane not in missing and rng.random() >= self.stray_rate:
                products.append(product)
        self._rows[index] = products
        if len(self._rows) > 512:
            self._rows.popitem(last=False)
        return products

    def _camera_at(self, t: float) -> Look:
        return replace(self.look, camera=replace(self.look.camera, centre_u=-self.travel(t)))

    def products_at(self, t: float) -> list[Product]:
        centre = -self.travel(t)
        reach = self._half_view * 1.5 + 2 * self.layout.pitch
        lo = int(np.floor((-centre - reach) / self.layout.pitch))
        hi = int(np.ceil((-centre + reach) / self.layout.pitch))
        return [p for row in range(lo, hi + 1) for p in self._row(row)]

    # -- what the view shows -------------------------------------------------------------------------------------
    def gap_fraction(self, t: float) -> float:
        """The fraction of the visible belt length that is empty in every lane at stream time ``t``."""
        centre = -self.travel(t)
        samples = 64
        empty = 0
        for i in range(samples):
            u = centre - self._half_view + (i + 0.5) * 2 * self._half_view / samples
            row = round(-u / self.layout.pitch)
            entry = self.row_entry_time(row)
            empty += any(drop.covers(entry) and drop.lanes is None for drop in self.drops)
        return empty / samples

    def truth_at(self, t: float) -> StreamTruth:
        """The spec's view of the frame at ``t``: longest gap across the flow and per lane, motion, episode."""
        look = self._camera_at(t)
        cam = look.camera
        products = self.products_at(t)
        lo, hi = cam.flow_range((0.0, 0.0, float(cam.width), float(cam.height)))

        def longest(items: list[Product]) -> float:
            occupied = [(p.u - p.half_u, p.u + p.half_u) for p in items]
            return gap_pitches(longest_empty_stretch(occupied, lo, hi), self.layout.length, self.layout.pitch)

        whole = longest(products)
        lanes = tuple(longest([p for p in products if p.lane == lane]) for lane in range(self.layout.lanes))
        episode = next((e.kind for e in self.episodes if e.covers(t)), None)
        return StreamTruth(whole, lanes, whole >= self.spec.min_gap_pitches, self.moving(t), episode)

    def lane_boxes(self) -> list[tuple[float, float, float, float]]:
        """One region of interest per lane whose centre line is in the picture, top to bottom, in fractions of the
        frame (x, y, width, height). A camera zoomed in on the middle of a wide belt leaves the outer lanes out of
        view: they have no box (a box for them would have had a negative height)."""
        return [box for _, box in self.visible_lanes()]

    def visible_lanes(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """``(lane, box)`` for each box of :meth:`lane_boxes`, in its order: which lane (the index a
        :class:`Drop`'s ``lanes`` takes) each box shows. A camera can see the lanes in either order, and the outer
        ones may be out of view, so a box's place in the list is not its lane's index."""
        cam = self.look.camera
        spacing = self.layout.lane_v[1] - self.layout.lane_v[0] if self.layout.lanes > 1 else self.layout.width * 1.4
        lanes = []
        for lane, v in enumerate(self.layout.lane_v):
            _, y = cam.to_image(np.array([cam.centre_u]), np.array([v]))
            if not 0.0 <= float(y[0]) < cam.height:
                continue
            half = spacing * cam.zoom / 2
            top, bottom = max(0.0, float(y[0]) - half), min(float(cam.height), float(y[0]) + half)
            lanes.append((lane, (0.0, top / cam.height, 1.0, (bottom - top) / cam.height)))
        return sorted(lanes, key=lambda item: item[1][1])

    def frame_at(self, t: float) -> npt.NDArray[np.uint8]:
        """Render the view at stream time ``t`` seconds."""
        look = self._camera_at(t)
        products = self.products_at(t)
        for index, episode in enumerate(self.episodes):
            if episode.covers(t):
                # The scene's shape changes every half second (a hand moves), its noise every frame.
                step = int((t - episode.start_s) * 2)
                rng = np.random.default_rng((self.seed, 7, index, step))
                return render_unknown(episode.kind, look, products, rng)
        return render(look, products, self._noise)

