"""Appearance and stance variation: each parameter changes the rendered mask the way it says,
walks vary the camera and the approach angle, and the statistics command reports them."""

import dataclasses
import json
import math

import numpy as np
import pytest

from gaitsim import CameraConfig, stats
from gaitsim.body import place, pose
from gaitsim.camera import CAMERA_HEIGHT_RANGE_M, CAMERA_TILT_RANGE_DEG
from gaitsim.raster import rasterize
from gaitsim.render import camera_intrinsics, to_camera
from gaitsim.stream import scene_for_view
from gaitsim.subject import sample_subject
from gaitsim.walk import APPROACH_ANGLE_DEG, Walker, make_path
from gaitsim.walks import walk_frames

CAM = CameraConfig()
DISTANCE_M = 2.5
BASE = dataclasses.replace(
    sample_subject(np.random.default_rng(0), 0),
    height_m=1.5,
    girth=1.0,
    clothing_m=0.01,
    hair_m=0.0,
    shoulder_slope_deg=0.0,
    shirt_loose_m=0.0,
    trousers_loose_m=0.0,
    shoe_width=1.0,
    toe_out_deg=0.0,
    step_width_m=0.0,
)
PX_PER_M = CAM.fx / DISTANCE_M


def standing_mask(**changes) -> np.ndarray:
    subject = dataclasses.replace(BASE, **changes)
    prims = to_camera(place(pose(subject, 0.0, motion=0.0), (0.0, DISTANCE_M), 0.0), CAM)
    zbuf = np.full((CAM.height, CAM.width), np.inf, np.float32)
    rasterize(prims, camera_intrinsics(CAM), zbuf)
    return np.isfinite(zbuf)


def row_extent(mask: np.ndarray, row: int) -> int:
    cols = np.flatnonzero(mask[row])
    return int(cols[-1] - cols[0] + 1)


def test_hair_widens_the_head():
    plain, haired = standing_mask(), standing_mask(hair_m=0.03)
    top = np.flatnonzero(plain.any(axis=1))[0]
    row = top + int(0.06 * BASE.height_m * PX_PER_M)  # the head's widest part
    # 3 cm of hair on each side: 2 * 0.03 m at 2.5 m is 9.2 px; allow for pixel quantisation
    assert row_extent(haired, row) - row_extent(plain, row) >= 7


def test_sloped_shoulders_drop_toward_the_arms():
    flat, sloped = standing_mask(), standing_mask(shoulder_slope_deg=20.0)
    centre = int(np.flatnonzero(flat.any(axis=0)).mean())
    col = centre + int(0.09 * BASE.height_m * PX_PER_M)
    drop = np.flatnonzero(sloped[:, col])[0] - np.flatnonzero(flat[:, col])[0]
    # the capsule's top at 0.09 H out sinks by roughly tan(20 deg) * 0.07 H - 0.01 H = 2.3 cm (5.5 px)
    assert drop >= 3


def test_wider_shoes_toe_out_and_step_width_widen_the_ankle_rows():
    plain = standing_mask()
    bottom = np.flatnonzero(plain.any(axis=1))[-1]
    row = bottom - 2  # the shoes
    wide = standing_mask(shoe_width=1.3, toe_out_deg=12.0, step_width_m=0.03)
    # the two feet each 3 cm farther out alone add 2 * 0.03 m at 2.5 m = 9.2 px; wider shoes add more
    assert row_extent(wide, row) - row_extent(plain, row) >= 10


def test_loose_trousers_widen_the_shanks_but_stay_off_the_floor():
    plain, loose = standing_mask(), standing_mask(trousers_loose_m=0.03)
    rows = np.flatnonzero(plain.any(axis=1))
    shank_row = rows[-1] - int(0.15 * BASE.height_m * PX_PER_M)
    assert row_extent(loose, shank_row) > row_extent(plain, shank_row)
    assert (
        np.flatnonzero(loose.any(axis=1))[-1] == rows[-1]
    )  # the shoe sole is still the lowest point


def test_step_width_varies_from_step_to_step():
    subject = dataclasses.replace(BASE, step_width_sd_m=0.02)
    path = make_path(np.random.default_rng(3), "toward", scene_for_view("toward"))
    walker = Walker(subject, path, 30.0)
    offsets = np.array(
        [walker._foot_offset(n + 0.3, 0) for n in range(30)]
    )  # mid-stance of 30 steps
    assert 0.01 < offsets.std() < 0.03


def test_walks_draw_their_own_camera_unless_one_is_given():
    cams = []
    for i in range(12):
        subject = sample_subject(np.random.default_rng([7, i]), 0)
        _, _, cam = walk_frames(subject, "toward", np.random.default_rng([7, i, 1]))
        cams.append(cam)
        lo, hi = CAMERA_HEIGHT_RANGE_M
        assert lo <= cam.height_m <= hi
        lo, hi = CAMERA_TILT_RANGE_DEG
        assert lo <= cam.tilt_deg <= hi
    assert np.std([c.height_m for c in cams]) > 0.05 and np.std([c.tilt_deg for c in cams]) > 1.0
    again = walk_frames(
        sample_subject(np.random.default_rng([7, 0]), 0), "toward", np.random.default_rng([7, 0, 1])
    )
    assert again[2] == cams[0]  # deterministic for a seed
    fixed = CameraConfig(height_m=1.1, tilt_deg=3.0)
    assert walk_frames(subject, "toward", np.random.default_rng(0), camera=fixed)[2] == fixed


def test_corridor_walks_approach_at_a_small_angle():
    angles = []
    for i in range(30):
        path = make_path(np.random.default_rng([11, i]), "toward", scene_for_view("toward"))
        # the middle of the straight part: its ends already bend into the entry and exit turns
        heading = path.at(float(np.mean(path.straight)))[2]
        angles.append(abs(math.pi - abs(heading)))
    degrees = np.degrees(angles)
    assert degrees.max() <= APPROACH_ANGLE_DEG + 0.5
    assert degrees.mean() > 1.0  # not every walk runs straight down the axis


def test_stats_command_prints_every_measure(capsys):
    assert stats.main(["--walks", "4", "--frames", "4", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["walks"] == 4
    assert 2.0 < out["aspect_height_over_width"] < 4.0
    assert 0.05 < out["head_row_width_over_height"] < 0.2
    assert 0.05 < out["ankle_row_width_over_height"] < 0.35
    for key in (
        "lower_body_width_cv_within_walk",
        "aspect_cv_between_walks",
        "lower_body_width_cv_between_walks",
    ):
        assert out[key] > 0.0
    assert stats.walk_stats(4, seed=2, frames=4) == out  # deterministic


def test_stats_command_needs_two_walks(capsys):
    assert stats.main(["--walks", "1"]) == 2
    assert "--walks" in capsys.readouterr().err


def test_frame_shape_of_a_rectangle():
    mask = np.zeros((100, 60), bool)
    mask[10:90, 20:40] = True
    shape = stats.frame_shape(mask)
    assert shape["aspect"] == pytest.approx(4.0)
    assert shape["head"] == pytest.approx(20 / 80) and shape["ankle"] == pytest.approx(20 / 80)
