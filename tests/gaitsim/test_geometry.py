"""Pinhole geometry: the rendered silhouette's size and place match the camera model.

Tolerance: the body's standing height is a sum of anthropometric segment
ratios (hip 0.53 H, trunk, neck, head) that lands within ~2 % of H, and the
rasterised mask's extent is quantised to whole pixels (+-1 px at each end);
the subject stands upright at one depth, so perspective adds < 1 %. We allow
3 % of the projected height plus 2 px.
"""

import dataclasses

import numpy as np
import pytest

from gaitsim import CameraConfig
from gaitsim.body import place, pose
from gaitsim.raster import rasterize
from gaitsim.render import camera_intrinsics, to_camera
from gaitsim.subject import sample_subject


def standing_mask(camera, height_m, distance_m, lateral_m=0.0):
    subject = dataclasses.replace(sample_subject(np.random.default_rng(4), 0), height_m=height_m)
    prims = to_camera(place(pose(subject, 0.0, motion=0.0), (lateral_m, distance_m), 0.0), camera)
    zbuf = np.full((camera.height, camera.width), np.inf, np.float32)
    rasterize(prims, camera_intrinsics(camera), zbuf)
    return np.isfinite(zbuf), zbuf


@pytest.mark.parametrize(("height_m", "distance_m"), [(1.3, 2.0), (1.5, 3.0), (1.8, 4.5)])
def test_pixel_height_matches_projection(height_m, distance_m):
    cam = CameraConfig()
    mask, _ = standing_mask(cam, height_m, distance_m)
    rows = np.flatnonzero(mask.any(axis=1))
    measured = rows[-1] - rows[0] + 1
    expected = cam.fy * height_m / distance_m
    assert abs(measured - expected) <= 0.03 * expected + 2, (measured, expected)


def test_tilted_camera_matches_projected_head_and_feet():
    cam = CameraConfig(height_m=1.6, tilt_deg=12.0)
    mask, _ = standing_mask(cam, 1.5, 3.0, lateral_m=0.3)
    rows = np.flatnonzero(mask.any(axis=1))
    top, bottom = cam.project(np.array([[0.3, 1.5, 3.0], [0.3, 0.0, 3.0]]))[:, 1]
    tol = 0.03 * (bottom - top) + 2
    assert abs(rows[0] - top) <= tol and abs(rows[-1] - bottom) <= tol
    cols = np.flatnonzero(mask.any(axis=0))
    u_centre = cam.project(np.array([[0.3, 0.75, 3.0]]))[0, 0]
    assert abs((cols[0] + cols[-1]) / 2 - u_centre) <= 3


def test_depth_is_camera_z():
    cam = CameraConfig()
    mask, zbuf = standing_mask(cam, 1.5, 3.0)
    # the trunk's visible surface is the back, ~0.05-0.15 m nearer than the body axis
    assert 2.8 < float(np.median(zbuf[mask])) < 3.0
