"""The learned colour segmenter, floor reflections, fusion, and source-aware method choice.

The network is the shipped ONNX model run by the real ONNX Runtime; the frames are the
simulator's colour render (a person in view from the first frame, a reflective floor).
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

import gaitsim
from edge.config import load_config
from edge.errors import SegmentationError
from edge.segmentation.choice import choose_method
from edge.segmentation.colour import (
    FusedSegmenter,
    PersonSegmenter,
    ReflectionRules,
    reject_reflections,
)
from edge.segmentation.person_model import PersonModel, shipped_model
from edge.settings import WalkConfig
from edge.sources import open_source
from edge.types import Frame
from edge.walks.assembler import MULTIPLE_PEOPLE, WalkAssembler
from edge.wiring import make_segmenter


@pytest.fixture(scope="module")
def model():
    return PersonModel()


def sim_frames(seed, view="side", scenario=None, reflect=0.5):
    """A walk whose child is in view from the first frame: the frames before are dropped."""
    frames = list(
        gaitsim.iter_frames(
            seed=seed, walks=1, view=view, scenario=scenario, gap_s=0.0, reflect=reflect
        )
    )
    first = next(i for i, f in enumerate(frames) if f.mask.sum() > 3000)
    return frames[first:]


def walk_of(segmenter, frames, **gate):
    assembler = WalkAssembler(WalkConfig(**gate))
    walks, components = [], []
    for f in frames:
        mask = segmenter.segment(Frame(f.index, float(f.timestamp), color=f.color))
        components.append(mask.components)
        if (walk := assembler.push(mask)) is not None:
            walks.append(walk)
    if (walk := assembler.flush()) is not None:
        walks.append(walk)
    return walks, np.asarray(components)


def test_shipped_model_matches_its_manifest():
    path, manifest = shipped_model()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["onnx"]["sha256"]
    assert manifest["licence"] == "Apache-2.0" and manifest["check"]["checked_against_tflite"]
    assert (path.parent / "LICENSE.mediapipe").is_file() and (path.parent / "NOTICE").is_file()


def test_person_probability_is_high_on_the_child_and_low_elsewhere(model):
    frames = sim_frames(3, reflect=0.0)
    f = frames[len(frames) // 2]
    prob = cv2.resize(model.probability(f.color), (f.mask.shape[1], f.mask.shape[0]))
    inner = cv2.erode(f.mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    far = cv2.dilate(f.mask.astype(np.uint8), np.ones((41, 41), np.uint8)) == 0
    assert np.median(prob[inner]) > 0.8
    assert np.mean(prob[far] > 0.5) < 0.01


def test_mask_follows_the_child(model):
    seg = PersonSegmenter(model)
    ious = []
    for f in sim_frames(3, reflect=0.0)[::6]:
        mask = seg.segment(Frame(f.index, float(f.timestamp), color=f.color)).mask.astype(bool)
        ious.append((mask & f.mask).sum() / max((mask | f.mask).sum(), 1))
    assert np.median(ious) > 0.7  # measured 0.82 on this walk


def _blob(canvas, x, y, w, h):
    cv2.ellipse(canvas, (x + w // 2, y + h // 5), (w // 4, h // 10), 0, 0, 360, 255, -1)  # head
    cv2.rectangle(canvas, (x, y + h // 5), (x + w, y + 3 * h // 5), 255, -1)  # torso
    cv2.rectangle(canvas, (x + 2, y + 3 * h // 5), (x + w // 2 - 2, y + h), 255, -1)  # legs
    cv2.rectangle(canvas, (x + w // 2 + 2, y + 3 * h // 5), (x + w - 2, y + h), 255, -1)


def test_a_mirror_image_below_the_feet_is_removed_a_second_person_is_not():
    fg = np.zeros((240, 320), np.uint8)
    _blob(fg, 100, 40, 40, 110)  # feet at row 150
    fg[154:240] = np.flipud(fg[64:150])  # its reflection, 4 rows below the feet
    person = fg[:152].copy()
    assert reject_reflections(fg, None, ReflectionRules(), min_px=300) == 1
    assert np.array_equal(fg[:152], person) and not fg[152:].any()
    two = np.zeros((240, 320), np.uint8)
    _blob(two, 60, 40, 40, 110)
    _blob(two, 200, 50, 38, 104)  # a second person beside the first
    before = two.copy()
    assert reject_reflections(two, None, ReflectionRules(), 300) == 0
    assert np.array_equal(two, before)


@pytest.mark.parametrize("seed", [10, 11])
def test_one_child_on_a_reflective_floor_is_one_judged_walk(model, seed):
    walks, components = walk_of(PersonSegmenter(model), sim_frames(seed))
    assert len(walks) == 1 and walks[0].accepted, [
        (w.retake_reason, w.quality.as_dict()) for w in walks
    ]
    assert np.mean(components >= 2) < 0.2  # the gate's multiple_people share


def test_two_people_on_a_reflective_floor_are_multiple_people(model):
    walks, _ = walk_of(PersonSegmenter(model), sim_frames(10, scenario="two_people"))
    # what the kiosk publishes: the second person's leftover after the first one left is a
    # fragment (already in the multiple_people retake), dropped and counted
    assert [w.retake_reason for w in walks if not w.fragment] == [MULTIPLE_PEOPLE]


def test_fused_segmenter_keeps_the_child_and_drops_what_depth_puts_out_of_range(model):
    from edge.segmentation.site import learn_site

    empty = gaitsim.empty_corridor(seed=3, frames=10)
    site = learn_site(Frame(f.index, float(f.timestamp), depth=f.depth) for f in empty)
    fused = FusedSegmenter(site, model)
    f = sim_frames(3, view="toward", reflect=0.5)[40]
    frame = Frame(f.index, float(f.timestamp), depth=f.depth, color=f.color)
    mask = fused.segment(frame)
    kept = mask.mask.astype(bool)
    assert (kept & f.mask).sum() / f.mask.sum() > 0.6
    assert mask.depth_mm is not None
    # with every pixel beyond the range gate, nothing is a person
    frame.depth = np.full_like(f.depth, 9000)
    assert fused.segment(frame).bbox is None
    with pytest.raises(SegmentationError, match="no depth"):
        fused.segment(Frame(0, 0.0, color=f.color))


def test_person_segmenter_refuses_a_frame_without_colour(model):
    with pytest.raises(SegmentationError, match="no colour image"):
        PersonSegmenter(model).segment(Frame(0, 0.0, depth=np.zeros((48, 64), np.uint16)))


@pytest.mark.parametrize(
    ("images", "method"),
    [
        ({"color"}, "person"),
        ({"depth"}, "depth"),
        ({"depth", "color"}, "depth"),
        ({"silhouette"}, "passthrough"),
    ],
)
def test_auto_picks_by_the_source_images(images, method):
    assert choose_method("auto", frozenset(images)) == method


@pytest.mark.parametrize(
    ("uri", "method", "needs"),
    [
        ("video:///nowhere/walk.mp4", "depth", "needs depth"),
        ("/dev/video7", "fused", "needs depth"),
        ("silhouettes:///nowhere", "person", "needs color"),
        ("sim://?seed=0", "passthrough", "needs silhouette"),
        ("sim://?seed=0", "person", "needs color"),
    ],
)
def test_a_method_the_source_cannot_serve_fails_at_start_up(uri, method, needs):
    cfg = load_config(overrides={"source.uri": uri, "segmentation.method": method}, env={})
    with pytest.raises(SegmentationError, match=needs) as err:
        make_segmenter(cfg, open_source(uri))
    assert f"segmentation.method = {method!r}" in str(err.value)


def test_defaults_pick_colour_for_video_and_passthrough_for_silhouettes():
    from edge.segmentation.depth import PassthroughSegmenter

    cfg = load_config(overrides={"source.uri": "video:///nowhere/walk.mp4"}, env={})
    assert cfg.segmentation.method == "auto"
    assert isinstance(make_segmenter(cfg, open_source(cfg.source.uri)), PersonSegmenter)
    cfg = load_config(overrides={"source.uri": "silhouettes:///nowhere"}, env={})
    assert isinstance(make_segmenter(cfg, open_source(cfg.source.uri)), PassthroughSegmenter)
    cfg = load_config(
        overrides={"source.uri": "sim://?seed=0&color=1", "segmentation.method": "fused"}, env={}
    )
    assert isinstance(make_segmenter(cfg, open_source(cfg.source.uri)), FusedSegmenter)


def test_an_execution_provider_this_build_lacks_is_refused_by_name():
    with pytest.raises(SegmentationError, match="NoSuchExecutionProvider"):
        PersonModel(providers=["NoSuchExecutionProvider"])
