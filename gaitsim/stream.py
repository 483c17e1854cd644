"""The simulated camera stream: walks separated by empty corridor, at a fixed frame rate."""

from __future__ import annotations

import dataclasses
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
    label: int | None  # gaitmil.spec class index of the walking child
    camera: CameraConfig = field(default_factory=CameraConfig)
    view: str | None = None  # direction of this walk ("toward", "away", "side")
    severity: float | None = None  # the child's Cobb-like severity (truth)
    in_straight: bool = False  # the child is on the straight, fully visible part of the walk
    curve_type: str | None = None  # the child's curve type (truth)
    phase: float | None = None  # the child's gait phase in [0, 1) (truth)
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
    repeats: int = 1,
) -> Iterator[SimFrame]:
    """Frames of simulated walks, each preceded by `gap_s` of empty corridor (and one
    more gap after the last walk when `walks` is finite, so a kiosk sees it end).
    `walks=None` streams forever. Deterministic for a seed. `reflect` (0..1) makes the floor
    mirror the people in the colour image (a polished school floor). `repeats` > 1: each
    simulated child walks that many times in a row (see plan_walk); `walks` counts walks."""
    check_view(view)
    check_scenario(scenario)
    if fps <= 0 or gap_s < 0:
        raise SimConfigError(f"fps must be > 0 and gap_s >= 0, got fps={fps}, gap_s={gap_s}")
    if repeats < 1:
        raise SimConfigError(f"repeats must be >= 1 walks per child, got {repeats}")
    if walks is not None and walks < 0:
        raise SimConfigError(f"walks must be >= 0 or None (endless), got {walks}")
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
