"""WalkAssembler: the state machine and the walk gate on synthetic depth streams."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edge.segmentation.depth import DepthSegmenter
from edge.segmentation.site import learn_site
from edge.settings import WalkConfig
from edge.types import Mask
from edge.walks.assembler import (
    MULTIPLE_PEOPLE,
    PARTIAL_VIEW,
    RETAKE_REASONS,
    STOPPED,
    TOO_LONG,
    TOO_SHORT,
    WalkAssembler,
    person_band,
)
from gaitcontract.silhouette import normalize_for_model

from .pipeline_synth import empty_frames, walk_frames


@pytest.fixture(scope="module")
def segmenter():
    return DepthSegmenter(learn_site(empty_frames(10)))


def run(frames, segmenter, config=None):
    assembler = WalkAssembler(config)
    walks, states = [], []
    for frame in frames:
        walk = assembler.push(segmenter.segment(frame))
        states.append(assembler.state)
        if walk is not None:
            walks.append(walk)
    return walks, states, assembler


def test_a_normal_walk_is_accepted_with_its_silhouettes(segmenter):
    frames = walk_frames(60)
    walks, states, assembler = run(frames, segmenter)
    assert len(walks) == 1
    walk = walks[0]
    assert walk.accepted and walk.retake_reason is None
    assert walk.silhouettes.shape == (60, 64, 44) and walk.silhouettes.dtype == np.uint8
    assert walk.timestamps.shape == (60,)
    np.testing.assert_allclose(walk.timestamps, [f.timestamp for f in frames[10:70]])
    assert walk.start_time == pytest.approx(frames[10].timestamp)
    assert walk.end_time == pytest.approx(
        frames[69].timestamp
    )  # the last frame with the child in view
    assert walk.quality.frames_kept == 60 and walk.quality.direction == "toward"
    assert walk.quality.coverage > 0.9 and walk.quality.max_components == 1
    # states in order: idle, entering (k-1 frames), walking, leaving, idle
    assert states[9] == "idle" and states[10] == "entering" and states[12] == "walking"
    assert states[70] == "leaving" and states[75] == "idle" and not assembler.active
    assert walk.silhouettes[30].max() == 255 and walk.silhouettes[30].mean() > 20


def test_silhouettes_equal_normalising_the_mask_directly(segmenter):
    frames = walk_frames(40)
    walks, _, _ = run(frames, segmenter)
    mask = segmenter.segment(frames[30])
    direct = normalize_for_model(mask.mask)
    assert direct.ok
    kept = walks[0].silhouettes[20]
    np.testing.assert_array_equal(kept, direct.silhouette)


def test_consecutive_walks_and_cooldown(segmenter):
    # the second child appears 1.2 s after the first left: after walk.cooldown_seconds (1 s)
    frames = walk_frames(45, seed=1) + walk_frames(50, start_index=80, seed=2)
    walks, _, _ = run(frames, segmenter)
    assert [w.accepted for w in walks] == [True, True]
    assert walks[0].walk_id != walks[1].walk_id
    assert [len(w.silhouettes) for w in walks] == [45, 50]
    # within the cooldown the next walk cannot start: its first frames are not part of a walk
    frames = walk_frames(45, seed=1) + walk_frames(50, start_index=67, seed=2)
    walks, _, _ = run(frames, segmenter, WalkConfig(cooldown_seconds=1.0))
    assert len(walks) == 2 and len(walks[1].silhouettes) < 50


def test_too_short(segmenter):
    # a short walk waits rejoin_s (1.5 s) for the child to come back before it ends
    walks, _, _ = run(walk_frames(20, z_start=4000.0, z_end=1800.0, gap_after=60), segmenter)
    assert len(walks) == 1 and walks[0].retake_reason == TOO_SHORT  # 20 frames < min_frames
    assert walks[0].quality.frames_kept == 20
    walks, _, _ = run(walk_frames(60, z_start=4000.0, z_end=3000.0), segmenter)
    assert walks[0].retake_reason == TOO_SHORT  # enough frames, but only 1 m walked
    assert walks[0].quality.coverage < 0.3


def test_a_child_lost_for_a_moment_gives_one_walk(segmenter):
    # seen briefly at the far end, lost for 0.6 s (longer than exit_frames), then the whole walk
    first = walk_frames(12, z_start=6400.0, z_end=6000.0, gap_after=18)
    rest = walk_frames(60, z_start=6000.0, z_end=1800.0, gap_before=0, start_index=len(first))
    walks, _, _ = run(first + rest, segmenter)
    assert len(walks) == 1 and walks[0].accepted
    assert walks[0].quality.dropped.get("absent") == 18
    # without the wait the first 12 frames are a fragment of their own (which the kiosk
    # drops, never a retake), and the tracker sees the rest as a new person: judged whole
    walks, _, _ = run(first + rest, segmenter, WalkConfig(rejoin_s=0.0))
    assert [(w.retake_reason, w.fragment) for w in walks] == [(TOO_SHORT, True), (None, False)]


def test_the_turns_are_left_out(segmenter):
    # slow sideways entry (the turn into the corridor), then the straight walk toward the camera
    turn = walk_frames(30, z_start=6000.0, z_end=5900.0, x_start=-0.6, x_end=0.0, gap_after=0)
    straight = walk_frames(60, z_start=5900.0, z_end=1800.0, gap_before=0, start_index=len(turn))
    walks, _, _ = run(turn + straight, segmenter)
    assert len(walks) == 1 and walks[0].accepted
    kept = walks[0].timestamps
    assert (
        kept.min() >= straight[0].timestamp - 0.5
    )  # at most about half the smoothing window of the turn
    assert walks[0].quality.dropped.get("turning", 0) >= 20
    walks, _, _ = run(turn + straight, segmenter, WalkConfig(straight_only=False))
    assert "turning" not in walks[0].quality.dropped


def test_two_people(segmenter):
    walks, _, _ = run(walk_frames(60, second_person=True), segmenter)
    assert len(walks) == 1 and walks[0].retake_reason == MULTIPLE_PEOPLE
    assert walks[0].quality.max_components == 2


def test_leaving_through_the_side_midway_is_partial_view(segmenter):
    # walks ~3 m toward the camera while drifting out of view on the left
    walks, _, _ = run(walk_frames(60, z_start=6000.0, z_end=3000.0, x_end=-3.0), segmenter)
    assert len(walks) == 1 and walks[0].retake_reason == PARTIAL_VIEW
    assert walks[0].quality.dropped.get("touches_border", 0) > 0


def test_standing_still_is_stopped(segmenter):
    walks, _, _ = run(walk_frames(110, stop=(30, 80)), segmenter)
    assert len(walks) == 1 and walks[0].retake_reason == STOPPED


def test_too_long_then_the_view_must_clear(segmenter):
    config = WalkConfig(max_seconds=2.0)
    frames = walk_frames(120, z_start=6000.0, z_end=2000.0)
    walks, states, _ = run(frames, segmenter, config)
    assert [w.retake_reason for w in walks] == [TOO_LONG]
    # no second walk starts while the same child is still in view after too_long
    assert walks[0].end_time - walks[0].start_time == pytest.approx(2.0 + 1 / 30, abs=0.05)
    assert len(walks) == 1


def test_a_blip_is_not_a_walk(segmenter):
    frames = walk_frames(2, gap_before=5, gap_after=10)
    walks, states, _ = run(frames, segmenter)
    assert walks == [] and "entering" in states and states[-1] == "idle"


def test_short_gaps_inside_a_walk_are_bridged(segmenter):
    frames = walk_frames(60)
    for frame in frames[40:43]:  # three frames lost (occlusion, dropped frames)
        frame.depth = empty_frames(1, seed=frame.index)[0].depth
    walks, _, _ = run(frames, segmenter)
    assert len(walks) == 1 and walks[0].accepted
    assert walks[0].quality.dropped == {"absent": 3}
    assert walks[0].quality.frames_kept == 57


def test_flush_finishes_or_interrupts(segmenter):
    frames = walk_frames(60, gap_after=0)
    assembler = WalkAssembler()
    for frame in frames:
        assert assembler.push(segmenter.segment(frame)) is None
    walk = assembler.flush()
    assert walk is not None and walk.accepted  # enough of the walk was seen
    assert assembler.flush() is None and not assembler.active
    assembler = WalkAssembler()
    for frame in frames[:25]:
        assembler.push(segmenter.segment(frame))
    walk = assembler.flush()
    # the gate's own reason, not a generic `interrupted` that would hide it
    assert walk.retake_reason == TOO_SHORT


def test_flush_keeps_multiple_people_and_drops_no_exit_frames(segmenter):
    """A recording ending mid-walk with two people in view: the published reason is theirs."""
    frames = walk_frames(60, gap_after=0)
    assembler = WalkAssembler()
    for frame in frames:
        mask = segmenter.segment(frame)
        mask.components = 2  # a second person-sized shape in every frame
        mask.people = ()  # counted, not listed: the gate goes by the count
        assembler.push(mask)
    assert assembler.flush().retake_reason == MULTIPLE_PEOPLE
    # the child left, then the recording ended inside the exit hysteresis
    assembler = WalkAssembler()
    for frame in walk_frames(60, gap_after=3):
        assembler.push(segmenter.segment(frame))
    walk = assembler.flush()
    assert walk.accepted and "absent" not in walk.quality.dropped


def test_noise_and_zero_frames_never_make_an_accepted_walk(segmenter):
    rng = np.random.default_rng(0)
    from edge.types import Frame

    assembler = WalkAssembler()
    results = []
    for i in range(60):
        depth = (
            rng.integers(0, 65535, (480, 640), dtype=np.uint16)
            if i % 2
            else np.zeros((480, 640), np.uint16)
        )
        walk = assembler.push(segmenter.segment(Frame(i, i / 30.0, depth)))
        if walk is not None:
            results.append(walk)
    flushed = assembler.flush()
    results += [flushed] if flushed else []
    assert all(not w.accepted for w in results)


def test_reason_codes_are_a_fixed_documented_set():
    assert RETAKE_REASONS == (
        "too_short",
        "multiple_people",
        "partial_view",
        "stopped",
        "too_long",
        "interrupted",
    )
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        WalkConfig(enter_frames=0)


def test_person_band_drops_stray_blobs_before_normalising():
    image = np.zeros((100, 80), np.bool_)
    image[10:90, 30:50] = True
    image[12:15, 70:75] = True  # a stray blob inside the person's rows
    band = person_band(Mask(0, 0.0, image, (30, 10, 20, 80), 1600, 1, False))
    assert band.shape == (80, 80) and band.sum() == 80 * 20 and not band[:, 70:75].any()
    image[12:15, 32:34] = False
    image[40:43, 31:33] = False
    image[20:23, 46:48] = False
    inside = image.copy()
    inside[50:52, 30:32] = True  # still one component
    band = person_band(Mask(0, 0.0, inside, (30, 10, 20, 80), int(inside[:, :60].sum()), 1, False))
    assert not band[:, 70:75].any()
    clean = normalize_for_model(band)
    image[12:15, 70:75] = False
    assert np.array_equal(clean.silhouette, normalize_for_model(image).silhouette)


# -- the model's input height (issue 25: trunk cues bigger than a pixel) ---------------------


def test_a_128_px_model_gets_128x88_walks_made_from_the_camera_mask(segmenter):
    frames = walk_frames(40)
    assembler = WalkAssembler(input_height=128)
    walks = [w for f in frames if (w := assembler.push(segmenter.segment(f))) is not None]
    assert len(walks) == 1 and walks[0].accepted
    walk = walks[0]
    assert walk.silhouettes.shape == (40, 128, 88) and walk.silhouettes.dtype == np.uint8
    # each silhouette is the camera-resolution mask normalised to 128 px, not a 64-px one resized
    mask = segmenter.segment(frames[30])
    np.testing.assert_array_equal(
        walk.silhouettes[20], normalize_for_model(person_band(mask), 128).silhouette
    )


def test_a_refused_128_px_walk_is_empty_at_128x88(segmenter):
    assembler = WalkAssembler(input_height=128)
    assembler.push(segmenter.segment(walk_frames(3)[0]))
    walk = assembler.flush()
    assert walk is None or walk.silhouettes.shape[1:] == (128, 88)


def test_a_model_height_outside_the_contract_is_refused_at_start_up():
    from edge.errors import ModelError

    with pytest.raises(ModelError, match="not in the model contract"):
        WalkAssembler(input_height=96)


@pytest.mark.parametrize("gap", [340, 341])  # even and odd: sampled or skipped at half resolution
def test_the_depth_segmenter_keeps_a_camera_pixel_gap_for_the_128_px_silhouette(gap):
    # The segmenter works at half resolution but re-thresholds the kept person's box at camera
    # resolution: a gap of one camera pixel between arm and trunk (the wall's depth behind it)
    # stays in the mask, so the 128-px silhouette is made from a camera-resolution mask and
    # shows it, whichever column the working resolution sampled.
    from edge.types import Frame

    depth = np.full((480, 640), 2800, np.uint16)  # a wall beyond the range gate
    depth[100:356, 280:gap] = 1500  # a child 256 camera pixels tall
    depth[130:150, 280 : gap + 13] = 1500  # the shoulder
    depth[150:300, gap + 1 : gap + 13] = 1500  # the arm, one column of wall from the trunk
    mask = DepthSegmenter(None, far_mm=2500, scale=2).segment(
        Frame(index=0, timestamp=0.0, depth=depth)
    )
    assert len(mask.people) == 1  # one child, the arm attached at the shoulder
    row = mask.mask[200, gap - 1 : gap + 2]
    assert row.tolist() == [True, False, True]  # the gap, at camera resolution
    silhouette = normalize_for_model(person_band(mask), 128).silhouette
    gap_rows = 0
    for line in silhouette:
        bright = np.flatnonzero(line >= 128)
        gap_rows += bool(bright.size and (line[bright[0] : bright[-1] + 1] < 128).any())
    assert gap_rows >= 60  # the arm's 150 camera rows are 75 rows of the 128-px silhouette
