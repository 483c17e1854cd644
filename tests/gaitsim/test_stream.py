"""The frame stream: timestamps, walk separation, scenarios and the empty corridor."""

import itertools

import numpy as np
import pytest

from gaitsim import CameraConfig, SimConfigError, empty_corridor, iter_frames
from gaitsim.camera import SceneConfig
from gaitsim.render import Body, FrameRenderer
from gaitsim.stream import plan_walk


@pytest.fixture(scope="module")
def two_walks():
    return list(iter_frames(seed=3, walks=2, gap_s=0.5, color=False, fps=30.0, start_time=100.0))


def test_timestamps_are_monotonic_at_the_frame_rate(two_walks):
    t = np.array([f.timestamp for f in two_walks])
    assert t[0] == pytest.approx(100.0)
    assert np.allclose(np.diff(t), 1 / 30.0)
    assert [f.index for f in two_walks] == list(range(len(two_walks)))


def test_walks_are_separated_by_empty_corridor(two_walks):
    ids = [f.walk_index for f in two_walks]
    runs = [(k, len(list(g))) for k, g in itertools.groupby(ids)]
    assert [k for k, _ in runs] == [-1, 0, -1, 1, -1]
    assert all(n == 15 for k, n in runs if k == -1)  # gap_s 0.5 at 30 fps
    assert all(
        60 <= n <= 300 for k, n in runs if k >= 0
    )  # about 2-5 s of walking, plus entry and exit
    for f in two_walks:
        if f.walk_index == -1:
            assert f.label is None and not f.mask.any()
        else:
            assert f.label in (0, 1, 2)
    walking = [f for f in two_walks if f.walk_index == 0]
    assert sum(f.mask.any() for f in walking) > 0.8 * len(walking)


def test_frames_have_the_camera_geometry(two_walks):
    f = two_walks[20]
    assert f.depth.dtype == np.uint16 and f.depth.shape == (480, 640)
    assert f.mask.dtype == bool and f.mask.shape == (480, 640)
    assert f.color is None
    assert f.depth.max() <= 8000
    assert (f.depth == 0).mean() < 0.2


def test_stream_is_deterministic_for_a_seed():
    def take(seed):
        return list(itertools.islice(iter_frames(seed=seed, view="mixed", gap_s=0.2), 40))

    a, b, c = take(11), take(11), take(12)
    assert all(
        np.array_equal(x.depth, y.depth)
        and np.array_equal(x.mask, y.mask)
        and np.array_equal(x.color, y.color)
        for x, y in zip(a, b)
    )
    assert any(not np.array_equal(x.depth, y.depth) for x, y in zip(a, c))


def test_endless_stream_keeps_going():
    seen = set()
    for f in iter_frames(
        seed=1, walks=None, gap_s=0.0, color=False, noise=False, scenario="too_short"
    ):
        seen.add(f.walk_index)
        if len(seen) == 4:
            break
    assert seen == {0, 1, 2, 3}  # gap_s=0: no empty frames between walks


def test_bad_arguments_are_refused():
    with pytest.raises(SimConfigError, match="view"):
        next(iter_frames(view="diagonal"))
    with pytest.raises(SimConfigError, match="scenario"):
        next(iter_frames(scenario="dancing"))


def test_empty_corridor_is_stable_background():
    frames = empty_corridor(seed=2, frames=20)
    assert len(frames) == 20 and all(f.walk_index == -1 and not f.mask.any() for f in frames)
    stack = np.stack([f.depth for f in frames]).astype(np.float32)
    stack[stack == 0] = np.nan
    median = np.nanmedian(stack, axis=0)
    # floor just below the image centre row: depth = camera height / ray slope
    cam = CameraConfig()
    v = 400
    expected = cam.height_m / ((v - cam.cy) / cam.fy) * 1000.0
    assert abs(median[v, 320] - expected) < 0.03 * expected
    # noise grows with distance: the far wall scatters more than the near floor
    far_std = np.nanstd(stack[:, 230:250, 300:340], axis=0).mean()
    near_std = np.nanstd(stack[:, 460:470, 300:340], axis=0).mean()
    assert far_std > 5 * near_std


def _plan(scenario, seed=5, view="toward"):
    return plan_walk(seed, 0, view, scenario, 30.0, SceneConfig())


def test_too_short_walk_is_short():
    short = _plan("too_short")
    assert short.frames < 75  # under 2.5 s from appearing to leaving
    frames = [
        f
        for f in iter_frames(
            seed=5, walks=1, gap_s=0.0, scenario="too_short", color=False, noise=False
        )
        if f.walk_index == 0
    ]
    assert 0 < sum(f.mask.any() for f in frames) < 60


def test_stop_midway_stands_still():
    plan = _plan("stop_midway")
    motion = plan.child.states[:, 2]
    assert (motion == 0.0).sum() >= 30  # at least a second of standing still
    assert plan.frames > _plan(None).frames


@pytest.mark.parametrize("scenario", ["two_people", "occlusion"])
def test_other_people_are_in_depth_but_not_in_the_truth_mask(scenario):
    frames = list(
        iter_frames(seed=4, walks=1, gap_s=0.1, scenario=scenario, color=False, noise=False)
    )
    bg = frames[0].depth.astype(np.int32)
    extra = [
        ((np.abs(f.depth.astype(np.int32) - bg) > 100) & ~f.mask).sum()
        for f in frames
        if f.walk_index == 0
    ]
    assert max(extra) > 2000  # a whole other person, not just edge pixels


def test_occlusion_hides_part_of_the_walk():
    # the child's subject and path do not depend on the scenario, so the same walk
    # without the crossing adult is the reference
    occluded, clear = _plan("occlusion", seed=4), _plan(None, seed=4)
    renderer = FrameRenderer(CameraConfig(), SceneConfig(), color=False, noise=False)
    ratios = []
    for k in range(0, occluded.child.frames, 3):
        if not occluded.child.in_straight(k):
            continue
        child = Body(occluded.child.primitives(k), {})
        others = [Body(p, {}) for w in occluded.others if (p := w.primitives(k)) is not None]
        area_occluded = renderer.render(child, others)[2].sum()
        area_clear = renderer.render(Body(clear.child.primitives(k), {}))[2].sum()
        ratios.append(area_occluded / area_clear)
    assert min(ratios) < 0.5  # the adult hides at least half of the child at some point
    assert max(ratios) == 1.0  # and not the whole walk


def test_partial_exit_leaves_through_the_side():
    frames = [
        f
        for f in iter_frames(
            seed=6, walks=1, gap_s=0.1, scenario="partial_exit", color=False, noise=False
        )
        if f.walk_index == 0 and f.mask.any()
    ]
    last = frames[-1].mask
    assert (
        last[:, :3].any()
        or last[:, -3:].any()
        or last.sum() < 0.3 * max(f.mask.sum() for f in frames)
    )


def test_repeats_walk_one_child_several_times():
    scene = SceneConfig()
    plans = [plan_walk(5, i, "mixed", None, 30.0, scene, repeats=2) for i in range(4)]
    assert [p.subject_index for p in plans] == [0, 0, 1, 1]
    a, b = plans[0].subject, plans[1].subject
    assert a.posture == b.posture and a.height_m == b.height_m  # the same child
    assert a.speed_mps == b.speed_mps and a.palette == b.palette
    assert plans[0].view != plans[1].view  # toward, then away (or the reverse)
    assert not np.array_equal(plans[0].child.path.points, plans[1].child.path.points)
    assert plans[2].subject.posture != a.posture  # the next child is another one
    # repeats=1 is the one-child-per-walk stream of before
    single = plan_walk(5, 1, "mixed", None, 30.0, scene)
    assert single.subject_index == 1 and single.subject.subject_id == "stream-5-1"


def test_repeats_reach_the_frames_and_are_checked():
    frames = [f for f in iter_frames(seed=2, walks=2, gap_s=0.1, color=False, repeats=2)]
    assert {f.subject_index for f in frames if f.walk_index >= 0} == {0}
    assert {f.subject_index for f in frames if f.walk_index < 0} == {-1}
    with pytest.raises(SimConfigError):
        next(iter_frames(seed=2, walks=2, repeats=0))
