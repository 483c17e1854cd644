"""The simulated camera stream: walks separated by empty corridor, at a fixed frame rate."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from gaitsim.camera import CameraConfig, SceneConfig
from gaitsim.errors import SimConfigError
from gaitsim.render import Body, FrameRenderer
from gaitsim.subject import Subject, label_for_severity, sample_subject
from gaitsim.walk import Path, Walker, check_scenario, check_view, make_path


@dataclass
class SimFrame:
    """One frame of the simulated depth camera, with the truth behind it."""

    index: int
    timestamp: float  # seconds, monotonic, 1/fps apart
    depth: np.ndarray  # uint16 [H, W] millimetres, 0 = invalid
    color: np.ndarray | None  # uint8 [H, W, 3] BGR, None when colour is off
    mask: np.ndarray  # bool [H, W], truth: the walking child's visible pixels
    walk_index: int  # -1 = empty corridor
    label: int | None  # gaitcontract.spec class index of the walking child
    camera: CameraConfig = field(default_factory=CameraConfig)
    view: str | None = None  # direction of this walk ("toward", "away", "side")
    severity: float | None = None  # the child's Cobb-like severity (truth)
    in_straight: bool = False  # the child is on the straight, fully visible part of the walk
    curve_type: str | None = None  # the child's curve type (truth)
    phase: float | None = None  # the child's gait phase in [0, 1) (truth)
    # queues (iter_frames(queue_gap_s=...)): the walk index each pixel shows, -1 none, and
    # the walks with a child in this frame (truth of who is where; never part of an image)
    owners: np.ndarray | None = None
    in_view: tuple[int, ...] = ()
    subject_index: int = -1  # which simulated child walks (walk_index // repeats); -1 = none


@dataclass
class WalkPlan:
    """Everything that moves during one walk; frame k of the walk is drawn from it."""

    child: Walker
    others: list[Walker]
    view: str
    scenario: str | None
    subject_index: int = -1

    @property
    def frames(self) -> int:
        return max([self.child.frames] + [w.frames for w in self.others])

    @property
    def subject(self) -> Subject:
        return self.child.subject


def scene_for_view(view: str) -> SceneConfig:
    return SceneConfig(kind="hall" if view == "side" else "corridor")


def plan_walk(
    seed: int,
    walk_index: int,
    view: str,
    scenario: str | None,
    fps: float,
    scene: SceneConfig,
    repeats: int = 1,
) -> WalkPlan:
    """The deterministic plan of walk `walk_index` of a stream with `seed`.

    With `repeats` > 1 the same simulated child walks `repeats` times in a row (walks
    i * repeats ... (i + 1) * repeats - 1 are child i): same body, posture and gait, a new
    path, start phase and sensor noise each time; with view "mixed" the walks alternate between
    toward and away (the first drawn per child), as a child walking to the kiosk and back.
    `repeats=1` is the one-child-per-walk stream of before, bit for bit."""
    rng = np.random.default_rng([seed, walk_index, 0xA11])
    subject_index = walk_index // repeats
    if repeats == 1:
        if view == "mixed":
            view = str(rng.choice(["toward", "away"]))
        subject = sample_subject(rng, subject_id=f"stream-{seed}-{walk_index}")
    else:
        child_rng = np.random.default_rng([seed, subject_index, 0x5B1])
        first = str(child_rng.choice(["toward", "away"]))
        subject = sample_subject(child_rng, subject_id=f"stream-{seed}-child-{subject_index}")
        # a new walk starts at another point of the stride (its step noise follows from it)
        subject = dataclasses.replace(subject, phase0=float(rng.uniform(0.0, 1.0)))
        if view == "mixed":
            other = "away" if first == "toward" else "toward"
            view = first if (walk_index % repeats) % 2 == 0 else other
    path = make_path(rng, view, scene, scenario)
    stop_at, stop_s = None, 0.0
    if scenario == "stop_midway":
        stop_at, stop_s = float(np.mean(path.straight)), float(rng.uniform(1.5, 2.5))
    child = Walker(subject, path, fps, stop_at=stop_at, stop_s=stop_s)
    others: list[Walker] = []
    if scenario == "two_people":
        other = sample_subject(
            rng, subject_id=f"stream-{seed}-{walk_index}-b", height_range=(1.45, 1.9)
        )
        lane_shift = 0.7 if float(path.points[len(path.points) // 2, 0]) < 0 else -0.7
        pts = path.points + np.array([lane_shift, 0.0])
        others.append(
            Walker(
                other,
                Path(pts, path.arclen, path.straight),
                fps,
                start_frame=int(rng.integers(5, 30)),
            )
        )
    elif scenario == "occlusion":
        # an adult crosses the corridor between the camera and the child, mid-walk
        crosser = sample_subject(
            rng, subject_id=f"stream-{seed}-{walk_index}-x", height_range=(1.6, 1.9)
        )
        half = scene.corridor_width / 2.0 + 0.4
        z = float(rng.uniform(1.9, 2.5))
        cross = Path.from_waypoints(
            [(-half, z), (-half + 0.1, z), (half - 0.1, z), (half, z)], (1, 2)
        )
        k_mid = int(np.searchsorted(child.states[:, 0], np.mean(path.straight)))
        to_centre = int(half / crosser.speed_mps * fps)
        others.append(Walker(crosser, cross, fps, start_frame=max(k_mid - to_centre, 0)))
    return WalkPlan(child, others, view, scenario, subject_index)


def _frame(
    index, timestamp, rendered, walk_index, camera, plan: WalkPlan | None = None, k: int = 0
) -> SimFrame:
    depth, color, mask = rendered
    if plan is None:
        return SimFrame(index, timestamp, depth, color, mask, -1, None, camera)
    posture = plan.subject.posture
    state = plan.child.state(k)
    return SimFrame(
        index,
        timestamp,
        depth,
        color,
        mask,
        walk_index,
        label_for_severity(posture.severity),
        camera,
        view=plan.view,
        severity=posture.severity,
        in_straight=plan.child.in_straight(k),
        curve_type=posture.curve_type,
        phase=None if state is None else state[1],
        subject_index=plan.subject_index,
    )


def iter_frames(
    seed: int = 0,
    walks: int | None = None,
    view: str = "toward",
    fps: float = 30.0,
    gap_s: float = 1.0,
    scenario: str | None = None,
    camera: CameraConfig | None = None,
    color: bool = True,
    noise: bool = True,
    start_time: float = 0.0,
    reflect: float = 0.0,
    queue_gap_s: float | None = None,
    repeats: int = 1,
) -> Iterator[SimFrame]:
    """Frames of simulated walks, each preceded by `gap_s` of empty corridor (and one
    more gap after the last walk when `walks` is finite, so a kiosk sees it end).
    `walks=None` streams forever. Deterministic for a seed. `reflect` (0..1) makes the floor
    mirror the people in the colour image (a polished school floor).

    `queue_gap_s`: a queue instead: after the first gap, each child comes into view
    `queue_gap_s` after the one before was last in view (negative: while it is still in
    view, so both are), with no empty corridor between them; frames carry `owners` and
    `in_view`, the truth of which child is where.

    `repeats` > 1: each simulated child walks that many times in a row (see plan_walk);
    `walks` counts walks."""
    check_view(view)
    check_scenario(scenario)
    if fps <= 0 or gap_s < 0:
        raise SimConfigError(f"fps must be > 0 and gap_s >= 0, got fps={fps}, gap_s={gap_s}")
    if repeats < 1:
        raise SimConfigError(f"repeats must be >= 1 walks per child, got {repeats}")
    if walks is not None and walks < 0:
        raise SimConfigError(f"walks must be >= 0 or None (endless), got {walks}")
    if queue_gap_s is not None and queue_gap_s < 0 and repeats > 1:
        raise SimConfigError(
            "a child cannot be in view twice: repeats > 1 needs queue_gap_s >= 0 "
            f"(got {queue_gap_s})"
        )
    if queue_gap_s is not None and scenario in ("two_people", "occlusion"):
        raise SimConfigError(
            f"a queue's children walk alone: scenario {scenario!r} adds another person"
        )
    camera = camera or CameraConfig()
    scene = scene_for_view(view)
    renderer = FrameRenderer(camera, scene, color=color, noise=noise, seed=seed, reflect=reflect)
    gap = int(round(gap_s * fps))
    index = 0

    def empty() -> Iterator[SimFrame]:
        nonlocal index
        for _ in range(gap):
            rng = np.random.default_rng([seed, index, 0xF00])
            t = start_time + index / fps
            yield _frame(index, t, renderer.render(None, (), rng, t), -1, camera)
            index += 1

    if queue_gap_s is not None:
        yield from empty()
        numbers = itertools.count() if walks is None else iter(range(walks))
        plans = (plan_walk(seed, i, view, scenario, fps, scene, repeats) for i in numbers)
        for sim in queue_frames(plans, renderer, seed, fps, queue_gap_s, index, start_time):
            index = sim.index + 1
            yield sim
        yield from empty()
        return
    walk_index = 0
    while walks is None or walk_index < walks:
        yield from empty()
        plan = plan_walk(seed, walk_index, view, scenario, fps, scene, repeats)
        palette = plan.subject.palette
        for k in range(plan.frames):
            rng = np.random.default_rng([seed, index, 0xF00])
            prims = plan.child.primitives(k)
            child = Body(prims, palette) if prims is not None else None
            others = [
                Body(p, w.subject.palette)
                for w in plan.others
                if (p := w.primitives(k)) is not None
            ]
            t = start_time + index / fps
            rendered = renderer.render(child, others, rng, t)
            yield _frame(index, t, rendered, walk_index, camera, plan, k)
            index += 1
        walk_index += 1
    if walks is not None:
        yield from empty()


class _Preview:
    """Which frames of a plan show its child, from a small noise-free render of the child
    alone (an eighth of the camera's size: the same view, 1/64 of the pixels)."""

    SCALE = 8

    def __init__(self, camera: CameraConfig, scene: SceneConfig) -> None:
        k = self.SCALE
        small = dataclasses.replace(
            camera,
            width=max(16, camera.width // k),
            height=max(16, camera.height // k),
            fx=camera.fx / k,
            fy=camera.fy / k,
            cx=camera.cx / k,
            cy=camera.cy / k,
        )
        self.renderer = FrameRenderer(small, scene, color=False, noise=False)

    def span(self, plan: WalkPlan) -> tuple[int, int]:
        """First and last frame (of the plan) with any of its child's pixels in view."""
        seen = []
        for k in range(plan.frames):
            prims = plan.child.primitives(k)
            if prims is None:
                continue
            _, _, mask = self.renderer.render(Body(prims, plan.subject.palette), ())
            if mask.any():
                seen.append(k)
        return (seen[0], seen[-1]) if seen else (0, plan.frames - 1)


def queue_frames(
    plans: Iterator[WalkPlan],
    renderer: FrameRenderer,
    seed: int,
    fps: float,
    queue_gap_s: float,
    index: int,
    start_time: float,
) -> Iterator[SimFrame]:
    """A queue: child i+1 comes into view round(queue_gap_s * fps) frames after child i was
    last in view (earlier when negative: both in view); the earliest child in view is the
    frame's subject. Ends after the last plan; `plans` may be endless.

    The gap is measured in view, not along the paths: a path starts and ends out of sight
    (the cross corridor, a side door), so a gap between paths would leave the corridor empty
    for a while even when "negative"."""
    camera = renderer.camera
    preview = _Preview(camera, renderer.scene)
    shift = int(round(queue_gap_s * fps))
    active: list[tuple[int, WalkPlan, int]] = []  # walk index, plan, first frame
    upcoming = enumerate(plans)
    following = next(upcoming, None)
    next_start = index
    spans: dict[int, tuple[int, int]] = {}  # walk index -> first, last frame in view
    while True:
        while following is not None and index >= next_start:
            walk_index, plan = following
            last = spans.pop(walk_index, None) or preview.span(plan)
            start = index
            active.append((walk_index, plan, start))
            following = next(upcoming, None)
            if following is not None:
                spans[following[0]] = preview.span(following[1])
                coming = spans[following[0]][0]
                # the next child's first frame in view = this child's last one + the gap
                next_start = max(start + 1, start + last[1] + 1 + shift - coming)
        active = [a for a in active if index - a[2] < a[1].frames]
        if not active and following is None:
            return
        bodies: list[tuple[int, Body]] = []
        for walk_index, plan, first in active:
            prims = plan.child.primitives(index - first)
            if prims is not None:
                bodies.append((walk_index, Body(prims, plan.subject.palette)))
        rng = np.random.default_rng([seed, index, 0xF00])
        t = start_time + index / fps
        subject = bodies[0][1] if bodies else None
        rendered = renderer.render(subject, [b for _, b in bodies[1:]], rng, t)
        lookup = np.array([w for w, _ in bodies] + [-1], np.int16)
        owners = lookup[renderer.last_owner.astype(np.int16)]  # -1 indexes the trailing -1
        if active:
            walk_index, plan, first = active[0]
            sim = _frame(index, t, rendered, walk_index, camera, plan, index - first)
        else:
            sim = _frame(index, t, rendered, -1, camera)
        sim.owners = owners
        sim.in_view = tuple(int(w) for w in np.unique(owners) if w >= 0)
        yield sim
        index += 1


def empty_corridor(
    seed: int = 0,
    frames: int = 60,
    camera: CameraConfig | None = None,
    noise: bool = True,
    view: str = "toward",
) -> list[SimFrame]:
    """Frames of the empty scene, e.g. for learning a kiosk's background depth."""
    if frames < 1:
        raise SimConfigError(f"frames must be >= 1, got {frames}")
    it = iter_frames(seed=seed, walks=0, view=view, gap_s=frames / 30.0, camera=camera, noise=noise)
    return [f for _, f in zip(range(frames), it)]
