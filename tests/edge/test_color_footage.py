"""Real footage: OpenCV's pedestrian video vtest.avi through the colour path and the kiosk.

The clip is read where Debian's `opencv-doc` package installs it (scripts/system-deps.sh
installs that package); docs/PIPELINE.md ("Real footage") says where it comes from and why
the repository keeps no copy. 768x576, 10 fps, a static camera over a campus path and lawn.

- frames 0-59: several people on the path: one result, a multiple_people retake. Since the
  walk gate follows one tracked person per walk (issue 28) the short tracks are fragments
  (dropped) and the one person seen long enough was in view with others for a good part of
  their walk;
- frames 640-701 in the lower-left window roi=0,240,420,336: one woman crosses the lawn
  alone, in view from the first frame, walking left and away from the camera: one judged
  walk. The window holds her whole body in every frame (at least 28 px from each edge) because
  the walk gate drops frames whose person touches a border; a tighter window (the earlier
  roi=0,380,400,196) cuts her head or feet and leaves no usable frame. The clip ends while she
  is still in view, so the end-of-recording rule judges it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.segmentation.colour import PersonSegmenter
from edge.settings import WalkConfig
from edge.sources import open_source
from edge.walks.assembler import MULTIPLE_PEOPLE, WalkAssembler
from tests.edge.kiosk_support import kiosk_config

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CROWD = "?frames=60"
LANE = "&roi=0,240,420,336"
ONE_WOMAN = f"?start=640&frames=62{LANE}"
# the walk gate for a 10 fps camera and this window: a full crossing spans half its width
FPS = 10.0
GATE = {
    "enter_frames": 2,
    "exit_frames": 3,
    "min_frames": 20,
    "full_lateral_travel": 0.5,
}


@pytest.fixture(scope="module")
def vtest() -> Path:
    if not VTEST.is_file():
        pytest.fail(
            f"{VTEST} is missing: run scripts/system-deps.sh (it installs Debian's opencv-doc)"
        )
    return VTEST


@pytest.fixture(scope="module")
def segmenter():
    return PersonSegmenter()


def replay(uri, segmenter):
    assembler = WalkAssembler(WalkConfig(**GATE), fps=FPS, min_area_px=1200)
    walks, masks = [], []
    with open_source(uri) as source:
        for frame in source:
            mask = segmenter.segment(frame)
            masks.append(mask)
            if (walk := assembler.push(mask)) is not None:
                walks.append(walk)
    if (walk := assembler.flush()) is not None:
        walks.append(walk)
    return walks, masks


def test_people_are_segmented_and_counted_in_a_crowd(vtest, segmenter):
    walks, masks = replay(f"video://{vtest}{CROWD}", segmenter)
    assert len(masks) == 60
    people = np.array([m.components for m in masks])
    assert np.mean(people >= 1) > 0.9  # someone is found in (nearly) every frame
    assert np.mean(people >= 2) >= 0.2  # and more than one person in a good part of them
    published = [w for w in walks if not w.fragment]  # what the kiosk publishes
    assert [w.retake_reason for w in published] == [MULTIPLE_PEOPLE], [
        (w.retake_reason, w.quality.as_dict()) for w in walks
    ]


def test_one_person_crossing_is_one_judged_walk(vtest, segmenter):
    walks, masks = replay(f"video://{vtest}{ONE_WOMAN}", segmenter)
    assert masks[0].bbox is not None  # in view from the first frame
    # a second person-sized shape (a passer-by at the window's top) in at most a few frames
    assert np.mean([m.components >= 2 for m in masks]) < 0.1
    assert not any(m.touches_border for m in masks)  # the window holds her whole body
    assert len(walks) == 1, [w.retake_reason for w in walks]
    walk = walks[0]
    assert walk.accepted, (walk.retake_reason, walk.quality.as_dict())
    assert walk.quality.frames_kept >= GATE["min_frames"] and walk.quality.direction == "lateral"
    assert "touches_border" not in walk.quality.dropped


def kiosk_on(tmp_path, broker_url, model, uri):
    overrides = {
        "source.uri": uri,
        "source.fps": 10.0,
        "walk.enter_frames": 2,
        "walk.exit_frames": 3,
        "walk.min_frames": 20,
        "walk.full_lateral_travel": 0.5,
        "segmentation.min_area": 1200,
    }
    cfg = kiosk_config(tmp_path, broker_url, model, **overrides)
    assert cfg.segmentation.method == "auto"  # the default picks the colour path for a video file
    results: list[dict] = []
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    kiosk = Kiosk(
        cfg, components=build_components(cfg), options=ServiceOptions(install_signals=False)
    )
    kiosk.on_result = results.append
    assert kiosk.run() == 0
    return results


@pytest.mark.slow
def test_kiosk_defaults_publish_one_result_per_clip(tmp_path, mosquitto, kiosk_model, vtest):
    one = kiosk_on(tmp_path / "one", mosquitto.url, kiosk_model, f"video://{vtest}{ONE_WOMAN}")
    assert [r["outcome"] for r in one] in (
        ["refer_for_clinical_exam"],
        ["no_referral_indicated"],
    ), one
    crowd = kiosk_on(tmp_path / "crowd", mosquitto.url, kiosk_model, f"video://{vtest}{CROWD}")
    assert [(r["outcome"], r["retake_reason"]) for r in crowd] == [("retake", MULTIPLE_PEOPLE)]


def test_a_recording_that_ends_mid_walk_is_judged_by_the_gate(vtest, segmenter):
    """The file ends while she is still in view: judged when enough was seen, else the gate's own reason."""
    walks, masks = replay(f"video://{vtest}?start=640&frames=44{LANE}", segmenter)
    assert masks[-1].bbox is not None and len(walks) == 1 and walks[0].accepted
    walks, masks = replay(f"video://{vtest}?start=640&frames=40{LANE}", segmenter)
    assert masks[-1].bbox is not None
    assert [w.retake_reason for w in walks] == ["partial_view"]  # never a generic "interrupted"


@pytest.mark.slow
def test_kiosk_on_simulated_colour_with_a_reflective_floor(tmp_path, mosquitto, kiosk_model):
    """The simulator's colour camera, the child in view from the first frame, a polished floor:
    one walk -> one judged result; two people -> one multiple_people retake."""
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    def run(name, uri):
        cfg = kiosk_config(
            tmp_path / name,
            mosquitto.url,
            kiosk_model,
            **{"source.uri": uri, "segmentation.method": "person"},
        )
        results: list[dict] = []
        kiosk = Kiosk(
            cfg, components=build_components(cfg), options=ServiceOptions(install_signals=False)
        )
        kiosk.on_result = results.append
        assert kiosk.run() == 0
        return [(r["outcome"], r["retake_reason"]) for r in results]

    one = run("one", "sim://?seed=10&walks=1&view=side&color=1&reflect=0.5&gap_s=0")
    assert len(one) == 1 and one[0][0] != "retake", one
    two = run(
        "two", "sim://?seed=10&walks=1&view=side&color=1&reflect=0.5&gap_s=0&scenario=two_people"
    )
    assert two == [("retake", MULTIPLE_PEOPLE)]
