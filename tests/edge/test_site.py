"""Site calibration: background depth learned from the empty corridor, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import SegmentationError
from edge.segmentation.site import SITE_FORMAT, SiteModel, learn_site
from edge.types import Frame

from .pipeline_synth import WALL_MM, corridor, empty_frames


def test_learn_site_recovers_the_background_and_suggests_a_gate():
    site = learn_site(empty_frames(20))
    truth = corridor(None).astype(np.float32)
    known = site.background_mm > 0
    assert known.mean() > 0.99  # 1 % dropouts per frame: the median still sees every pixel
    error = np.abs(site.background_mm[known].astype(np.float32) - truth[known])
    assert np.median(error) < 5.0  # noise sigma 8 mm, median of 20 samples
    assert site.near_mm == 300
    assert (
        WALL_MM - 50 <= site.far_mm <= WALL_MM + 50
    )  # 95th percentile of background = the back wall
    assert site.frames == 20
    assert 0.95 < float(site.valid_fraction.mean()) <= 1.0


def test_pixels_mostly_invalid_get_no_background():
    frames = empty_frames(10)
    for frame in frames[:7]:
        frame.depth[:10, :10] = 0  # e.g. a black, IR-absorbing poster: valid in 3 of 10 frames
    site = learn_site(frames)
    assert (site.background_mm[:10, :10] == 0).all()
    assert site.valid_fraction[:10, :10].max() == pytest.approx(0.3)
    assert site.valid_share < 1.0


def test_save_and_load_round_trip(tmp_path):
    site = learn_site(empty_frames(8))
    path = site.save(tmp_path / "site")
    assert path.suffix == ".npz"
    loaded = SiteModel.load(path)
    np.testing.assert_array_equal(loaded.background_mm, site.background_mm)
    assert (loaded.near_mm, loaded.far_mm, loaded.frames) == (
        site.near_mm,
        site.far_mm,
        site.frames,
    )
    np.testing.assert_allclose(loaded.valid_fraction, site.valid_fraction, atol=1e-3)


def test_load_refuses_missing_foreign_and_other_versions(tmp_path):
    with pytest.raises(SegmentationError, match="does not exist.*calibrate-site"):
        SiteModel.load(tmp_path / "absent.npz")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, something=np.zeros(3))
    with pytest.raises(SegmentationError, match="unreadable or incomplete"):
        SiteModel.load(foreign)
    site = learn_site(empty_frames(5))
    path = site.save(tmp_path / "old.npz")
    data = dict(np.load(path))
    data["format"] = np.array("gaitmil-site/0")
    np.savez(path, **data)
    with pytest.raises(SegmentationError, match=f"expected '{SITE_FORMAT}'"):
        SiteModel.load(path)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(SegmentationError, match="calibrate-site"):
        SiteModel.load(broken)


@pytest.mark.parametrize(
    "frames, message",
    [
        (lambda: empty_frames(3), "needs at least 5"),
        (lambda: [Frame(0, 0.0, color=np.zeros((4, 4, 3), np.uint8))] * 6, "no depth"),
        (lambda: [Frame(0, 0.0, np.zeros((480, 640), np.float32))] * 6, "uint16"),
        (lambda: [Frame(0, 0.0, np.zeros((480, 640), np.uint16))] * 6, "no valid depth"),
        (lambda: empty_frames(5) + [Frame(9, 0.3, np.ones((240, 320), np.uint16))], "differs"),
    ],
)
def test_learn_site_refusals(frames, message):
    with pytest.raises(SegmentationError, match=message):
        learn_site(frames())
