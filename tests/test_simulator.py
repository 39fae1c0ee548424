"""The training simulator: deterministic, labelled by the alert spec, varied, and fast enough."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from converter.synth import write_dataset
from edge.simulator import (
    ACCEPTABLE,
    ALERT,
    UNKNOWN,
    UNKNOWN_KINDS,
    AlertSpec,
    ConveyorStream,
    Drop,
    measure_gap,
    render,
    render_still,
    sample_installation,
    still_frame,
)
from edge.simulator.stills import lay_products
from edge.simulator.stream import Episode, Stop


def test_same_seed_same_frame_different_seed_different_frame() -> None:
    """still_frame is a pure function of its generator's seed."""
    a = still_frame(np.random.default_rng(11), alert=True)
    b = still_frame(np.random.default_rng(11), alert=True)
    c = still_frame(np.random.default_rng(12), alert=True)
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_synth_writes_three_splits_deterministically_whatever_the_workers(tmp_path: Path) -> None:
    """training_set/, validation_set/, test_set/ with acceptable/, alert/, unknown/; byte-identical for a seed,
    whether rendered by one process or by a pool."""
    counts = write_dataset(tmp_path / "a", train=6, test=4, seed=3, validation=4, workers=1)
    write_dataset(tmp_path / "b", train=6, test=4, seed=3, validation=4, workers=2)
    assert counts["training_set/acceptable"] == 3 and counts["test_set/alert"] == 2 and counts["training_set/unknown"] == 2
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and len(files_a) == sum(counts.values()) + 2  # + manifest.jsonl and spec.json
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    records = [json.loads(line) for line in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    assert {r["label"] for r in records} == {ACCEPTABLE, ALERT, UNKNOWN}
    for r in records:
        assert r["file"].split("/")[1] == r["label"]
        if r["label"] == ALERT:
            assert r["gap_pitches"] >= 2.0
        elif r["label"] == ACCEPTABLE:
            assert r["gap_pitches"] <= 1.25


@pytest.mark.parametrize("label", [ACCEPTABLE, ALERT])
def test_stills_are_labelled_by_the_spec_from_what_was_drawn(label: str) -> None:
    """Every still's measured longest gap lies on its label's side of the boundary, including lane crops."""
    rng = np.random.default_rng(21)
    for _ in range(40):
        _, truth = render_still(rng, label)
        assert (truth.gap_pitches >= 2.0) if label == ALERT else (truth.gap_pitches <= 1.25), truth


def test_near_boundary_cases_are_frequent() -> None:
    """One missing row (about 1 pitch) and gaps just over 2 pitches both appear often: the model sees the boundary."""
    rng = np.random.default_rng(5)
    acceptable = [render_still(rng, ACCEPTABLE)[1].gap_pitches for _ in range(100)]
    alert = [render_still(rng, ALERT)[1].gap_pitches for _ in range(100)]
    assert sum(0.75 <= g <= 1.25 for g in acceptable) >= 10
    assert sum(2.0 <= g <= 2.6 for g in alert) >= 15


def test_a_gap_in_the_products_is_an_empty_band_in_the_pixels() -> None:
    """A plain, untilted view with a 3-pitch gap: the image columns over the gap hold no product colour."""
    rng = np.random.default_rng(2)
    look, layout = sample_installation(rng, (320, 240), lanes=(3, 3))
    cam = replace(look.camera, tilt_deg=0.0, vertical=False, keystone=(0.0, 0.0))
    look = replace(look, camera=cam, optics=replace(look.optics, noise=0.0, shot=0.0, defocus=0.0, motion_blur=0.0, dirt=0),
                   light=replace(look.light, glare=None, highlights=0, shadow=None))
    products = lay_products(look, layout, rng, "gap", 3.0, None)
    assert 2.6 <= measure_gap(cam, layout, products, (0, 0, 320, 240)) <= 3.4
    image = render(look, products, rng).astype(np.int32)
    us = np.array([p.u for p in products])
    xs, _ = cam.to_image(us, np.zeros_like(us))
    centres = np.sort(xs[(xs > 0) & (xs < 320)])
    widest = int(np.argmax(np.diff(centres)))
    left, right = centres[widest] + layout.length * cam.zoom / 2 + 2, centres[widest + 1] - layout.length * cam.zoom / 2 - 2
    belt = np.asarray(look.belt.rgb) * look.light.gain * np.asarray(look.light.cast)
    gap_cols = image[:, int(left) : int(right)]
    assert gap_cols.shape[1] > 2 * layout.pitch * cam.zoom - 8
    # Inside the gap every row looks like the belt or the rail; product pixels would be far from both.
    band = gap_cols[int(120 - look.belt.half_width * cam.zoom * 0.8) : int(120 + look.belt.half_width * cam.zoom * 0.8)]
    assert np.abs(band.mean(axis=(0, 1)) - belt).max() < 40


@pytest.mark.parametrize("kind", UNKNOWN_KINDS)
def test_unknown_scenes_render_at_the_asked_size(kind: str) -> None:
    """Each unknown scene kind draws a frame of the requested size."""
    image, truth = render_still(np.random.default_rng(1), UNKNOWN, size=(200, 150), kind=kind)
    assert image.shape == (150, 200, 3) and truth.kind == kind and truth.label == UNKNOWN


def test_the_dont_care_band_is_configurable() -> None:
    """A spec asking for 3-pitch gaps labels by it: alert stills then have gaps of at least 3 pitches."""
    spec = AlertSpec(min_gap_pitches=3.0, max_acceptable_pitches=1.8)
    rng = np.random.default_rng(9)
    assert all(render_still(rng, ALERT, spec)[1].gap_pitches >= 3.0 for _ in range(15))


def test_a_drop_makes_a_gap_that_crosses_the_view_and_leaves() -> None:
    """A scripted drop empties part of the view, then the full flow comes back."""
    stream = ConveyorStream(seed=3, size=(160, 120), speed=160.0, drops=(Drop(2.0, 3.0),))
    fractions = [stream.gap_fraction(t) for t in np.arange(0.0, 10.0, 0.5)]
    assert fractions[0] == 0.0 and max(fractions) == 1.0 and fractions[-1] == 0.0
    assert stream.frame_at(1.0).shape == (120, 160, 3)
    assert not stream.truth_at(0.5).alert and stream.truth_at(4.0).alert


def test_a_lane_drop_starves_that_lane_only() -> None:
    """A drop in lane 1 gives lane 1 a gap of several pitches while the whole flow stays below the alert spec."""
    stream = ConveyorStream(seed=6, size=(320, 240), speed=160.0, drops=(Drop(1.0, 1.0, lanes=(1,)),), stray_rate=0.0)
    truth = max((stream.truth_at(t) for t in np.arange(1.0, 5.0, 0.25)), key=lambda tr: tr.lane_gap_pitches[1])
    assert truth.lane_gap_pitches[1] >= 2.0 and not truth.alert
    assert all(g < 1.0 for lane, g in enumerate(truth.lane_gap_pitches) if lane != 1)


def test_a_stop_holds_the_belt_and_episodes_replace_the_view() -> None:
    """During a stop consecutive frames differ only by noise; during an episode the truth names the scene."""
    stream = ConveyorStream(seed=3, size=(160, 120), stops=(Stop(1.0, 2.0),), episodes=(Episode("grey_wall", 4.0, 1.0),))
    assert stream.travel(1.5) == stream.travel(2.5) == stream.travel(1.0) and stream.travel(3.5) > stream.travel(2.9)
    still_a, still_b = stream.frame_at(1.5).astype(int), stream.frame_at(2.5).astype(int)
    assert np.abs(still_a - still_b).mean() < 8
    assert not stream.truth_at(2.0).moving and stream.truth_at(4.5).episode == "grey_wall"
    assert stream.frame_at(4.5).astype(int).std() < stream.frame_at(0.5).astype(int).std()


def test_all_lanes_but_one_may_starve_and_the_whole_belt_stays_acceptable() -> None:
    """'Two lanes of three empty' is drawn as an acceptable whole-belt frame: product still crosses the stretch."""
    rng = np.random.default_rng(4)
    seen_two_starved = 0
    for _ in range(40):
        look, layout = sample_installation(rng, (320, 240), lanes=(3, 3))
        products = lay_products(look, layout, rng, "lanes_starved", 0.0, None)
        box = (0.0, 0.0, 320.0, 240.0)
        per_lane = [measure_gap(look.camera, layout, [p for p in products if p.lane == lane], box) for lane in range(3)]
        if sum(g >= 2.0 for g in per_lane) == 2:
            seen_two_starved += 1
            assert measure_gap(look.camera, layout, products, box) <= 1.25
    assert seen_two_starved >= 5


def test_rough_products_have_uneven_outlines() -> None:
    """A 'rough' bake's edge lies at a radius that varies with the angle by a few per cent; a round one's does not."""
    from edge.simulator.render import _sdf
    from edge.simulator.scene import Product, sample_style

    style = replace(sample_style(np.random.default_rng(0)), shape="rough")
    product = Product(0.0, 0.0, 0, 20.0, 20.0, 20.0, 0.0, 1.0, seed=12345)
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False).astype(np.float32)
    radii = np.linspace(10, 30, 401, dtype=np.float32)
    lx, ly = radii[:, None] * np.cos(angles)[None, :], radii[:, None] * np.sin(angles)[None, :]
    edge_rough = radii[np.argmin(np.abs(_sdf(style, product, lx, ly)), axis=0)]
    edge_round = radii[np.argmin(np.abs(_sdf(replace(style, shape="round"), product, lx, ly)), axis=0)]
    assert np.ptp(edge_round) < 0.2 and 0.6 < np.ptp(edge_rough) < 8.0


def test_every_belt_texture_is_a_seamless_tile_around_one() -> None:
    """Each belt family's texture multiplies the belt colour by about 1 and has visible structure."""
    from edge.simulator.textures import BELT_TEXTURES, TILE, belt_tile

    assert {"speckled", "ribbed"} <= set(BELT_TEXTURES)
    for kind in BELT_TEXTURES:
        tile = belt_tile(kind, 1, 6.0)
        assert tile.shape == (TILE, TILE) and 0.9 < float(tile.mean()) < 1.1 and 0.01 < float(tile.std()) < 0.2, kind
