"""A queue of children through the kiosk's segmenter and walk gate (issue 28).

Checked against the simulator's truth of which child every pixel shows
(benchmarks.queues): exactly one result per child, or a share in a multiple_people
retake; never a walk whose kept frames show two children; never a retake of a child after
that child's judged result. Two children per queue keep it short; the >= 100-child figure
is `python -m benchmarks.kiosk_path --queues-only --queue-children 108` (docs/PIPELINE.md).
"""

from __future__ import annotations

import pytest

from benchmarks.queues import JUDGED, run_queue, summarise
from edge.config import load_config
from edge.walks.assembler import MULTIPLE_PEOPLE
from edge.wiring import make_assembler, make_segmenter, open_configured_source


def check(run):
    assert run.merged == 0, "a walk holds two children's frames"
    assert run.stray == 0, "a retake followed a judged walk of the same child"
    assert run.failures == [], {c: run.per_child.get(c, []) for c in run.failures}


@pytest.mark.slow
@pytest.mark.parametrize("view", ["toward", "away", "side"])
@pytest.mark.parametrize("gap_s", [-0.5, 0.0, 1.0, 3.0])
def test_a_depth_queue_gives_one_result_per_child(view, gap_s):
    run = run_queue(view, gap_s, children=2, seed=31)
    check(run)
    if gap_s >= 0:  # one after the other: never in the zone together
        assert MULTIPLE_PEOPLE not in run.outcomes()


@pytest.mark.slow
@pytest.mark.parametrize("view, gap_s", [("toward", -0.5), ("side", -0.5), ("toward", 1.0)])
def test_a_colour_queue_gives_one_result_per_child(view, gap_s):
    check(run_queue(view, gap_s, children=2, seed=32, color=True))


def test_back_to_back_children_are_each_judged():
    """The issue's footage: the next child comes into view half a second before the one
    before leaves. The gate before issue 28 made two walks of these four children, each
    judged on two children's frames; now each child is judged on their own."""
    run = run_queue("toward", -0.5, children=4, seed=5)
    check(run)
    assert run.per_child == {0: [JUDGED], 1: [JUDGED], 2: [JUDGED], 3: [JUDGED]}
    assert summarise([run])["merged_walks"] == 0


def walks_of(uri: str):
    cfg = load_config(None, {"source.uri": uri}, env={})
    source = open_configured_source(cfg)
    segmenter, assembler = make_segmenter(cfg, source), make_assembler(cfg)
    walks = []
    with source:
        for frame in source:
            if (walk := assembler.push(segmenter.segment(frame))) is not None:
                walks.append(walk)
    if (walk := assembler.flush()) is not None:
        walks.append(walk)
    return walks


@pytest.mark.parametrize("scenario", ["close_end", "partial_exit"])
def test_no_stray_retake_after_a_child_ending_close_or_leaving_by_the_side(scenario):
    """A child walking on until cut off near the camera, or out through the side: one result;
    what is left at the border afterwards is a fragment (dropped by the kiosk), never a retake."""
    walks = walks_of(f"sim://?seed=7&walks=1&view=toward&color=0&scenario={scenario}")
    published = [w for w in walks if not w.fragment]
    assert len(published) == 1, [(w.retake_reason, w.quality.as_dict()) for w in walks]
    if scenario == "close_end":
        assert published[0].accepted, published[0].quality.as_dict()
