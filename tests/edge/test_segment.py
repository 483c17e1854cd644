"""Segmenters: depth against the site model, colour background subtraction, passthrough."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import SegmentationError, SourceError
from edge.segmentation.depth import (
    ColorSegmenter,
    DepthSegmenter,
    PassthroughSegmenter,
)
from edge.segmentation.site import learn_site
from edge.settings import SegmentationConfig
from edge.types import Frame

from .pipeline_synth import CAM_H_MM, CX, CY, FY, corridor, draw_person, empty_frames


@pytest.fixture(scope="module")
def site():
    return learn_site(empty_frames(12))


def _frame(depth, index=0):
    return Frame(index, index / 30.0, depth)


def test_person_is_found_with_its_geometry_and_depth(site):
    seg = DepthSegmenter(site)
    rng = np.random.default_rng(3)
    for z in (5500.0, 4000.0, 2500.0):
        depth = corridor(rng)
        draw_person(depth, z, 0.3)
        mask = seg.segment(_frame(depth))
        s = FY / z * 1000.0
        foot, head = CY + CAM_H_MM / 1000.0 * s, CY + CAM_H_MM / 1000.0 * s - 1.4 * s
        x, y, w, h = mask.bbox
        assert mask.mask.shape == (480, 640) and mask.mask.dtype == np.bool_
        assert abs(y - head) <= 4  # half-resolution work: within 2 working pixels
        # the feet touch the floor at the same depth as the floor: the lowest rows merge with it
        assert foot - 0.15 * s <= y + h <= foot + 4
        assert abs((x + w / 2) - (CX + 0.3 * s)) <= 0.1 * s
        assert mask.components == 1 and not mask.touches_border
        assert mask.depth_mm == pytest.approx(z, abs=20)
        assert mask.area == int(np.count_nonzero(mask.mask))
        assert mask.area > 0.5 * (0.36 * s) * (1.4 * s)


def test_empty_corridor_gives_no_person(site):
    seg = DepthSegmenter(site)
    for frame in empty_frames(10, seed=7):
        mask = seg.segment(frame)
        assert mask.bbox is None and mask.area == 0 and not mask.mask.any()


def test_without_site_model_the_floor_leaks_in():
    # why calibrate-site exists: a plain range gate keeps the floor as foreground
    depth = corridor(np.random.default_rng(0))
    mask = DepthSegmenter(None, far_mm=6000).segment(_frame(depth))
    assert mask.bbox is not None and mask.touches_border


def test_two_people_are_counted_and_the_larger_kept(site):
    depth = corridor(np.random.default_rng(1))
    draw_person(depth, 5000.0, -0.8)
    draw_person(depth, 3000.0, 0.6)
    mask = DepthSegmenter(site).segment(_frame(depth))
    assert mask.components == 2
    assert mask.depth_mm == pytest.approx(3000.0, abs=20)  # the nearer, larger person
    assert mask.bbox[0] > CX


def test_border_contact_is_flagged(site):
    depth = corridor(np.random.default_rng(2))
    draw_person(depth, 3000.0, -2.45)  # half out of view on the left
    mask = DepthSegmenter(site).segment(_frame(depth))
    assert mask.bbox is not None and mask.bbox[0] == 0 and mask.touches_border


def test_holes_in_the_person_are_filled(site):
    depth = corridor(np.random.default_rng(4))
    draw_person(depth, 3000.0, 0.0)
    depth[230:250, 310:330] = 0  # a stereo hole in the torso
    mask = DepthSegmenter(site).segment(_frame(depth))
    assert mask.mask[235:245, 315:325].all()


def test_small_clutter_is_not_a_person(site):
    depth = corridor(np.random.default_rng(5))
    depth[300:315, 100:115] = 2000  # a bag on the floor: 225 px
    mask = DepthSegmenter(site).segment(_frame(depth))
    assert mask.bbox is None and mask.components == 0


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_scales_agree(site, scale):
    depth = corridor(np.random.default_rng(6))
    draw_person(depth, 3500.0, 0.0)
    reference = DepthSegmenter(site, scale=1).segment(_frame(depth))
    mask = DepthSegmenter(site, scale=scale).segment(_frame(depth))
    inter = np.count_nonzero(mask.mask & reference.mask)
    union = np.count_nonzero(mask.mask | reference.mask)
    assert inter / union > 0.85


def test_bad_frames_give_clear_errors_or_empty_masks(site):
    seg = DepthSegmenter(site)
    zeros = seg.segment(_frame(np.zeros((480, 640), np.uint16)))
    assert zeros.bbox is None and zeros.components == 0
    rng = np.random.default_rng(0)
    for _ in range(5):  # sensor garbage: no crash, and no person-shaped result
        noise = seg.segment(_frame(rng.integers(0, 65535, (480, 640), dtype=np.uint16)))
        assert noise.mask.shape == (480, 640)
    nan_depth = np.full((480, 640), np.nan, np.float32)
    with pytest.raises(SourceError, match=r"uint16 millimetres, got float32 \(307200 NaN"):
        seg.segment(_frame(nan_depth))
    with pytest.raises(SourceError, match="uint16 millimetres, got int32"):
        seg.segment(_frame(np.zeros((480, 640), np.int32)))
    with pytest.raises(SourceError, match="2-D uint16"):
        seg.segment(_frame(np.zeros((480, 640, 1), np.uint16)))
    with pytest.raises(SegmentationError, match="recalibrate"):
        seg.segment(_frame(np.zeros((240, 320), np.uint16)))
    with pytest.raises(SegmentationError, match="no depth"):
        seg.segment(Frame(0, 0.0, color=np.zeros((480, 640, 3), np.uint8)))
    with pytest.raises(SourceError, match="holds no depth, colour or silhouette"):
        seg.segment(Frame(0, 0.0))
    # the segmenter still works after the refusals
    depth = corridor(rng)
    draw_person(depth, 3000.0, 0.0)
    assert seg.segment(_frame(depth)).components == 1


def test_gate_settings_are_checked():
    with pytest.raises(SegmentationError, match="near < far"):
        DepthSegmenter(None, near_mm=5000, far_mm=4000)
    with pytest.raises(SegmentationError, match="scale"):
        DepthSegmenter(None, scale=3)


def _color_scene(rng, person_x=None, shadow=False):
    image = np.full((240, 320, 3), 120, np.uint8)
    image[:, :, 0] = 110 + (np.arange(320) % 40).astype(np.uint8)  # some texture
    image = np.clip(image.astype(np.int16) + rng.integers(-3, 4, image.shape), 0, 255).astype(
        np.uint8
    )
    if shadow:
        image[200:240, 0:160] = (image[200:240, 0:160] * 0.6).astype(np.uint8)
    if person_x is not None:
        image[60:200, person_x : person_x + 40] = (30, 200, 60)
    return image


@pytest.mark.parametrize("method", ["mog2", "knn"])
def test_color_segmenter_finds_a_person_and_drops_shadows(method):
    rng = np.random.default_rng(0)
    seg = ColorSegmenter(
        method, history=50, rules=SegmentationConfig(min_area=800, min_height_px=40)
    )
    for i in range(60):
        seg.segment(Frame(i, i / 30, color=_color_scene(rng)))
    seg.freeze(True)
    mask = seg.segment(Frame(60, 2.0, color=_color_scene(rng, person_x=150, shadow=True)))
    x, y, w, h = mask.bbox
    assert abs(x - 150) <= 4 and abs(w - 40) <= 6 and abs(y - 60) <= 4 and abs(h - 140) <= 6
    assert mask.components == 1  # the shadow (marked 127) is not a second person
    assert not mask.mask[220:240, 0:100].any()


def test_color_freeze_keeps_a_standing_child_in_the_foreground():
    rng = np.random.default_rng(1)
    results = {}
    for frozen in (False, True):
        seg = ColorSegmenter(
            "mog2", history=20, rules=SegmentationConfig(min_area=800, min_height_px=40)
        )
        for i in range(40):
            seg.segment(Frame(i, i / 30, color=_color_scene(rng)))
        seg.freeze(frozen)
        for i in range(80):  # the child stands still for ~2.7 s
            last = seg.segment(Frame(40 + i, i / 30, color=_color_scene(rng, person_x=150)))
        results[frozen] = last.area
    assert results[True] > 4000  # frozen: still there
    assert results[False] < results[True] / 2  # learning on: absorbed into the background


def test_color_segmenter_refusals():
    with pytest.raises(SegmentationError, match="mog2, knn"):
        ColorSegmenter("gmg")
    with pytest.raises(SegmentationError, match="no colour"):
        ColorSegmenter().segment(Frame(0, 0.0, depth=np.zeros((4, 4), np.uint16)))
    with pytest.raises(SourceError, match=r"uint8 BGR array \[H, W, 3\]"):
        ColorSegmenter().segment(Frame(0, 0.0, color=np.zeros((8, 8), np.uint8)))


def test_passthrough_keeps_the_largest_blob_and_grey_levels():
    sil = np.zeros((128, 88), np.uint8)
    sil[10:120, 30:60] = 200
    sil[10:20, 0:5] = 255  # a stray blob
    mask = PassthroughSegmenter().segment(Frame(0, 0.0, silhouette=sil))
    assert mask.bbox == (30, 10, 30, 110)
    assert mask.mask.dtype == np.uint8 and mask.mask.max() == 200
    assert not mask.mask[10:20, 0:5].any()
    with pytest.raises(SegmentationError, match="silhouettes://"):
        PassthroughSegmenter().segment(Frame(0, 0.0, depth=np.zeros((4, 4), np.uint16)))
    empty = PassthroughSegmenter().segment(Frame(1, 0.0, silhouette=np.zeros((64, 64), np.uint8)))
    assert empty.bbox is None
