"""Severity measurably tilts the shoulders and shifts the trunk in the rendered mask."""

import dataclasses

import numpy as np
import pytest

from gaitsim import CameraConfig
from gaitsim.body import place, pose
from gaitsim.raster import rasterize
from gaitsim.render import camera_intrinsics, to_camera
from gaitsim.subject import APPEARANCE_FIELDS, Posture, Subject, sample_subject

CAM = CameraConfig()
# the plain body (appearance and stance at their defaults), so the posture alone is measured;
# loose clothing hides part of the effect (docs/SIMULATOR.md gives both)
PLAIN = {f.name: f.default for f in dataclasses.fields(Subject) if f.name in APPEARANCE_FIELDS}
BASE = dataclasses.replace(
    sample_subject(np.random.default_rng(0), 0), height_m=1.5, girth=1.0, clothing_m=0.01, **PLAIN
)


def measure(severity, curve_type="thoracic", side=1):
    """Shoulder height difference (px, + = right shoulder higher) and chest-minus-hip
    centroid shift (px, + = toward the subject's right), seen from behind at 2.5 m."""
    subject = dataclasses.replace(BASE, posture=Posture(severity, curve_type, side, 0.4))
    prims = to_camera(place(pose(subject, 0.0, motion=0.0), (0.0, 2.5), 0.0), CAM)
    zbuf = np.full((CAM.height, CAM.width), np.inf, np.float32)
    rasterize(prims, camera_intrinsics(CAM), zbuf)
    mask = np.isfinite(zbuf)
    rows = np.flatnonzero(mask.any(axis=1))
    top, bottom = rows[0], rows[-1]
    height = bottom - top

    def centre(r0, r1):
        return np.nonzero(mask[int(r0) : int(r1)])[1].mean()

    head = centre(top, top + 0.08 * height)
    chest = centre(bottom - 0.72 * height, bottom - 0.62 * height)
    hips = centre(bottom - 0.55 * height, bottom - 0.48 * height)
    off = int(0.8 * 0.112 * 1.5 * CAM.fx / 2.5)
    right_top = np.flatnonzero(mask[:, int(head) + off])[
        0
    ]  # seen from behind, image right = body right
    left_top = np.flatnonzero(mask[:, int(head) - off])[0]
    return left_top - right_top, chest - hips


def test_straight_spine_is_symmetric():
    tilt, shift = measure(0.0)
    assert tilt == 0 and abs(shift) < 0.5


@pytest.mark.parametrize("curve_type", ["thoracic", "thoracolumbar", "double"])
def test_severity_raises_the_convex_shoulder(curve_type):
    tilts = [measure(sev, curve_type)[0] for sev in (0.0, 20.0, 40.0)]
    assert tilts[0] < tilts[2] and tilts[2] >= 3, tilts
    assert measure(40.0, curve_type, side=-1)[0] <= -3


@pytest.mark.parametrize("curve_type", ["thoracic", "thoracolumbar"])
def test_severity_shifts_the_trunk_toward_the_convex_side(curve_type):
    shifts = [measure(sev, curve_type)[1] for sev in (0.0, 15.0, 35.0)]
    assert shifts[0] < shifts[1] < shifts[2] and shifts[2] > 1.5, shifts
    assert measure(35.0, curve_type, side=-1)[1] < -1.5
