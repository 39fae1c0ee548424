"""Is the camera giving us usable pictures? Pure logic on the model-sized pixels.

A frozen camera repeats byte-identical frames (real sensors always have noise); a covered or
unlit camera is very dark; a fogged or defocused one has almost no edges. In those cases the
model's output means nothing, so the daemon reports ``degraded`` instead of alerting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.state import Health

OK, CAMERA_FAULT, DEGRADED = Health.OK, Health.CAMERA_FAULT, Health.DEGRADED


@dataclass(frozen=True)
class HealthRules:
    frozen_after_s: float
    dark_level: float
    blur_level: float
    degraded_after_s: float


def sharpness(grey: npt.NDArray[np.float32]) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred or featureless images."""
    lap = grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(lap.var())


class ImageHealth:
    """Tracks frozen, dark and blurred streams; ``update`` returns the current verdict and reason."""

    def __init__(self, rules: HealthRules) -> None:
        self.rules = rules
        self._previous: npt.NDArray[np.uint8] | None = None
        self._same_since: float | None = None
        self._bad_since: float | None = None
        self.verdict: Health = OK
        self.reason = ""

    def reset(self) -> None:
        """Forget the past frames (after the camera was reopened)."""
        self._previous, self._same_since, self._bad_since = None, None, None
        self.verdict, self.reason = OK, ""

    def update(self, pixels64: npt.NDArray[np.uint8], now: float) -> tuple[Health, str]:
        previous, self._previous = self._previous, pixels64
        if previous is not None and np.array_equal(previous, pixels64):
            self._same_since = self._same_since if self._same_since is not None else now
        else:
            self._same_since = None
        if self._same_since is not None and now - self._same_since >= self.rules.frozen_after_s:
            return self._set(CAMERA_FAULT, f"frozen: identical frames for {now - self._same_since:.1f} s")
        grey = pixels64.astype(np.float32).mean(axis=2)
        brightness = float(grey.mean())
        problem = ""
        if brightness < self.rules.dark_level:
            problem = f"too dark: mean level {brightness:.1f} < {self.rules.dark_level}"
        elif sharpness(grey) < self.rules.blur_level:
            problem = f"too blurred: sharpness {sharpness(grey):.2f} < {self.rules.blur_level}"
        if not problem:
            self._bad_since = None
            return self._set(OK, "")
        self._bad_since = self._bad_since if self._bad_since is not None else now
        if now - self._bad_since >= self.rules.degraded_after_s:
            return self._set(DEGRADED, problem)
        return self.verdict, self.reason

    def _set(self, verdict: Health, reason: str) -> tuple[Health, str]:
        self.verdict, self.reason = verdict, reason
        return verdict, reason
