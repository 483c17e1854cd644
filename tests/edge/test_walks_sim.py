"""Simulated walks (gaitsim) through sim:// -> DepthSegmenter -> WalkAssembler: the walk gate."""

from __future__ import annotations

import pytest

import gaitsim
from edge.segmentation.depth import DepthSegmenter
from edge.segmentation.site import learn_site
from edge.sources import open_source
from edge.types import Frame
from edge.walks.assembler import MULTIPLE_PEOPLE, PARTIAL_VIEW, STOPPED, TOO_SHORT, WalkAssembler


@pytest.fixture(scope="module")
def sites():
    learned = {}
    for view in ("toward", "side"):
        frames = gaitsim.empty_corridor(seed=0, frames=10, view=view)
        learned[view] = learn_site(Frame(f.index, f.timestamp, f.depth) for f in frames)
    return learned


def run_stream(uri, site):
    segmenter, assembler = DepthSegmenter(site), WalkAssembler()
    walks, truth_frames = [], 0
    with open_source(uri) as source:
        for frame in source:
            truth_frames += source.last_truth["walk_index"] >= 0
            walk = assembler.push(segmenter.segment(frame))
            if walk is not None:
                walks.append(walk)
    assert assembler.flush() is None  # the stream ends with empty corridor: nothing left over
    return walks, truth_frames


@pytest.mark.parametrize(
    "view, scenario, expected",
    [
        ("toward", None, None),
        ("away", None, None),
        ("side", None, None),
        ("toward", "two_people", MULTIPLE_PEOPLE),
        ("toward", "too_short", TOO_SHORT),
        ("toward", "partial_exit", PARTIAL_VIEW),
        ("away", "partial_exit", PARTIAL_VIEW),
        ("toward", "stop_midway", STOPPED),
        ("toward", "occlusion", MULTIPLE_PEOPLE),  # an adult crossing in front: retake, not a guess
    ],
)
def test_simulated_walk_gate(sites, view, scenario, expected):
    uri = f"sim://?seed=21&walks=1&view={view}&color=0" + (
        f"&scenario={scenario}" if scenario else ""
    )
    walks, truth_frames = run_stream(uri, sites["side" if view == "side" else "toward"])
    assert len(walks) == 1, [w.retake_reason for w in walks]
    walk = walks[0]
    assert walk.retake_reason == expected, walk.quality.as_dict()
    if expected is None:
        assert walk.quality.frames_kept >= 30
        assert walk.quality.frames_kept <= truth_frames
        assert (
            walk.quality.direction == {"toward": "toward", "away": "away", "side": "lateral"}[view]
        )
        assert walk.silhouettes.shape[1:] == (64, 44) and walk.silhouettes.max() == 255


@pytest.mark.slow
def test_several_walks_in_one_stream_each_give_one_walk(sites):
    walks, _ = run_stream("sim://?seed=5&walks=3&view=mixed&color=0", sites["toward"])
    assert len(walks) == 3
    assert all(w.accepted for w in walks)
    assert walks[0].end_time < walks[1].start_time < walks[1].end_time < walks[2].start_time
