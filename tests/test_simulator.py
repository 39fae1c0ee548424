"""The conveyor simulator: deterministic, and its classes mean what they say."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converter.synth import write_dataset
from edge.simulator import ConveyorStream, Drop, still_frame


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    """still_frame is a pure function of its generator's seed."""
    a = still_frame(np.random.default_rng(11), alert=True)
    b = still_frame(np.random.default_rng(11), alert=True)
    c = still_frame(np.random.default_rng(12), alert=True)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_synth_writes_the_keras_layout_deterministically(tmp_path: Path) -> None:
    """synth writes training_set/ and test_set/ with one folder per class, byte-identical for a seed."""
    counts = write_dataset(tmp_path / "a", train=6, test=4, seed=3)
    write_dataset(tmp_path / "b", train=6, test=4, seed=3)
    assert counts == {"training_set/acceptable": 3, "training_set/alert": 3, "test_set/acceptable": 2, "test_set/alert": 2}
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and len(files_a) == 10
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)


def test_alert_frames_have_more_empty_belt_than_acceptable_frames() -> None:
    """Dark cookie pixels cover much less of an alert frame than of an acceptable one from the same look."""
    rng_seed = 21
    full = still_frame(np.random.default_rng(rng_seed), alert=False, size=(320, 240))
    gap = still_frame(np.random.default_rng(rng_seed), alert=True, size=(320, 240))

    def cookie_share(img: np.ndarray) -> float:
        r, g, b = (img[:, :, i].astype(int) for i in range(3))
        return float(np.mean((r > b + 25) & (g < 140)))

    assert cookie_share(gap) < 0.7 * cookie_share(full)


def test_stream_drop_travels_through_the_view_and_leaves() -> None:
    """A scripted drop empties part of the view, then the full flow comes back."""
    stream = ConveyorStream(seed=3, size=(160, 120), speed=160.0, drops=(Drop(2.0, 3.0),))
    fractions = [stream.gap_fraction(t) for t in np.arange(0.0, 10.0, 0.5)]
    assert fractions[0] == 0.0 and max(fractions) == 1.0 and fractions[-1] == 0.0
    assert stream.frame_at(1.0).shape == (120, 160, 3)
