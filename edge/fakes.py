"""FakeClassifier: the shipped test double for the model, so daemon tests need no TFLite runtime.

It has the same surface as :class:`edge.inference.Classifier` that the pipeline uses (``card``,
``runtime``, ``classify``) and answers with probabilities from a function of the crops it is
given, or of how many times it was called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.inference import Scores
from edge.preprocess import INPUT_SIZE
from edge.scene import SceneRules

# Scene limits that only the (fake) unknown head can trip: test pictures may be plain colours.
HEAD_ONLY = SceneRules(unknown_threshold=0.5, max_saturated=1.0, min_correlation=-1.0, min_detail=0.0, min_brightness=-1.0,
                       max_dark_share=1.0)


@dataclass(frozen=True)
class FakeTensor:
    shape: tuple[int, ...] = (1, INPUT_SIZE, INPUT_SIZE, 3)
    dtype: str = "uint8"
    scale: float = 1.0 / 255.0
    zero_point: int = 0


@dataclass(frozen=True)
class FakeCard:
    input: FakeTensor = FakeTensor()
    tflite_sha256: str = "f" * 64
    threshold: float = 0.5
    # The bands a card of the bundled kind would carry; fixed here so that daemon tests read plainly.
    levels: dict[str, Any] = field(default_factory=lambda: {"warning": [0.35, 0.25], "alert": [0.6, 0.4]})
    scene: SceneRules | None = None  # None: no scene judging (HEAD_ONLY: only the fake's unknown scores count)


@dataclass(frozen=True)
class FakeRuntime:
    name: str = "fake"
    version: str = "0"


class FakeClassifier:
    """``probabilities(crops, call_index) -> one alert probability per crop``; optionally
    ``unknown(crops, call_index) -> one not-a-belt probability per crop`` (a model with a scene head)."""

    def __init__(self, probabilities: Callable[[npt.NDArray[np.generic], int], Sequence[float]],
                 card: FakeCard | None = None,
                 unknown: Callable[[npt.NDArray[np.generic], int], Sequence[float]] | None = None) -> None:
        self._probabilities = probabilities
        self._unknown = unknown
        self.card = card or (FakeCard(scene=HEAD_ONLY) if unknown is not None else FakeCard())
        self.runtime = FakeRuntime()
        self.calls = 0

    @classmethod
    def constant(cls, probability: float) -> FakeClassifier:
        return cls(lambda crops, _: [probability] * len(crops))

    @classmethod
    def scripted(cls, script: Callable[[int], float]) -> FakeClassifier:
        """The same probability for every crop of the n-th call: ``script(n)``."""
        return cls(lambda crops, n: [script(n)] * len(crops))

    @classmethod
    def darkness(cls) -> FakeClassifier:
        """Alert probability = how dark the crop is: an empty dark belt reads as a gap."""
        return cls(lambda crops, _: [1.0 - float(c.mean()) / 255.0 for c in crops])

    def classify(self, inputs: npt.NDArray[np.generic]) -> Scores:
        out = np.asarray(self._probabilities(inputs, self.calls), dtype=np.float32).reshape(len(inputs))
        unknown = None
        if self._unknown is not None:
            unknown = np.clip(np.asarray(self._unknown(inputs, self.calls), dtype=np.float32).reshape(len(inputs)), 0.0, 1.0)
        self.calls += 1
        return Scores(np.clip(out, 0.0, 1.0), unknown)
