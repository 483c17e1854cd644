"""The reflective floor: people mirrored in the colour image's floor, nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest

import gaitsim
from gaitsim.camera import CameraConfig, SceneConfig
from gaitsim.errors import SimConfigError
from gaitsim.render import FrameRenderer


def test_reflection_changes_only_floor_colour_below_the_feet():
    plain = list(gaitsim.iter_frames(seed=3, walks=1, view="side", gap_s=0.0, reflect=0.0))
    shiny = list(gaitsim.iter_frames(seed=3, walks=1, view="side", gap_s=0.0, reflect=0.5))
    assert len(plain) == len(shiny)
    f0, f1 = plain[60], shiny[60]
    assert np.array_equal(f0.depth, f1.depth) and np.array_equal(f0.mask, f1.mask)
    changed = np.any(f0.color != f1.color, axis=2)
    feet = int(np.nonzero(f0.mask)[0].max())
    assert changed.sum() > 500  # the mirror image is there
    assert not changed[: feet - 2].any()  # and only below the feet
    assert not (changed & f0.mask).any()  # never on the person


def test_reflectance_must_be_below_one():
    with pytest.raises(SimConfigError, match="reflectance"):
        FrameRenderer(CameraConfig(), SceneConfig(), reflect=1.0)
