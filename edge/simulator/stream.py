"""A moving belt as a video: rows keep coming, and scripted drops leave gaps in the flow."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from edge.simulator.render import CameraLook, Cookie, render_frame
from edge.simulator.scene import BeltScene, cookie_at, sample_look, sample_scene


@dataclass(frozen=True)
class Drop:
    """Production stops feeding the belt from ``start_s`` for ``duration_s`` (stream time)."""

    start_s: float
    duration_s: float

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.start_s + self.duration_s


class ConveyorStream:
    """Frames of one camera over one belt; ``frame_at(t)`` is deterministic for a seed.

    The belt moves ``speed`` pixels per second left to right. A row that would have
    entered the view during a :class:`Drop` is missing, so each drop becomes a gap
    that travels across the frame and leaves again: the flow drops and recovers.
    """

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = (320, 240),
        speed: float = 160.0,
        drops: tuple[Drop, ...] = (),
        stray_rate: float = 0.01,
        noise: bool = True,
    ) -> None:
        rng = np.random.default_rng(seed)
        look = sample_look(rng, size)
        # One fixed installation: a moderate look, so the demo is representative rather than extreme.
        look = replace(look, tilt_deg=look.tilt_deg / 3, gain=min(max(look.gain, 0.85), 1.15), blur=1,
                       noise_sigma=max(look.noise_sigma, 2.0))
        self.look: CameraLook = look if noise else replace(look, noise_sigma=0.0)
        self.scene: BeltScene = sample_scene(rng, self.look)
        self.seed = seed
        self.speed = speed
        self.drops = drops
        self.stray_rate = stray_rate
        self._rows: OrderedDict[int, list[Cookie]] = OrderedDict()
        self._noise = np.random.default_rng(seed + 1)

    def _row(self, index: int) -> list[Cookie]:
        cached = self._rows.get(index)
        if cached is not None:
            return cached
        rng = np.random.default_rng((self.seed, index & 0x7FFFFFFF))
        entry_time = (index * self.scene.pitch - self.look.width / 2.0) / self.speed
        cookies: list[Cookie] = []
        if not any(drop.covers(entry_time) for drop in self.drops):
            for v in self.scene.lane_positions(self.look, index):
                cookie = cookie_at(self.scene, self.look, 0.0, v, rng)
                if rng.random() >= self.stray_rate:
                    cookies.append(cookie)
        self._rows[index] = cookies
        if len(self._rows) > 256:
            self._rows.popitem(last=False)
        return cookies

    def gap_fraction(self, t: float) -> float:
        """The fraction of the visible belt length that is empty at stream time ``t``."""
        shift = self.speed * t
        half = self.look.width / 2.0
        empty = 0
        samples = 64
        for i in range(samples):
            u = -half + (i + 0.5) * self.look.width / samples
            row = round((shift - u) / self.scene.pitch)
            entry_time = (row * self.scene.pitch - half) / self.speed
            empty += any(drop.covers(entry_time) for drop in self.drops)
        return empty / samples

    def frame_at(self, t: float) -> npt.NDArray[np.uint8]:
        """Render the view at stream time ``t`` seconds."""
        shift = self.speed * t
        half = self.scene.visible_half_length(self.look)
        lo = int(np.floor((shift - half) / self.scene.pitch))
        hi = int(np.ceil((shift + half) / self.scene.pitch))
        cookies = [
            replace(c, u=shift - row * self.scene.pitch + (c.u))
            for row in range(lo, hi + 1)
            for c in self._row(row)
        ]
        return render_frame(self.look, cookies, self._noise)
