"""Walk paths through the scene and the per-frame state of a walker along them."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from gaitsim.body import Primitives, place, pose
from gaitsim.camera import SceneConfig
from gaitsim.errors import SimConfigError
from gaitsim.subject import Subject

VIEWS = ("toward", "away", "side", "mixed")
APPROACH_ANGLE_DEG = (
    6.0  # largest angle between a corridor walk's straight part and the corridor axis
)
SCENARIOS = (
    None,
    "two_people",
    "occlusion",
    "partial_exit",  # leaves through the side of the view midway
    "stop_midway",
    "too_short",
    "close_end",  # walks on until very close to the camera, cut off by the image border
)


def check_view(view: str) -> str:
    if view not in VIEWS:
        raise SimConfigError(f"view {view!r} is unknown: use one of {VIEWS}")
    return view


def check_scenario(scenario: str | None) -> str | None:
    if scenario not in SCENARIOS:
        raise SimConfigError(
            f"scenario {scenario!r} is unknown: use None or one of {SCENARIOS[1:]}"
        )
    return scenario


def _chaikin(points: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Corner-cutting smoothing of an open polyline (keeps both end points)."""
    for _ in range(rounds):
        q = 0.75 * points[:-1] + 0.25 * points[1:]
        r = 0.25 * points[:-1] + 0.75 * points[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        points = np.vstack([points[:1], mid, points[-1:]])
    return points


@dataclass
class Path:
    """A smooth floor path (x, z) with its arc length; `straight` marks the corridor section."""

    points: np.ndarray  # [N, 2]
    arclen: np.ndarray  # [N]
    straight: tuple[float, float]  # arc-length interval of the straight, fully visible section

    @staticmethod
    def from_waypoints(waypoints: list[tuple[float, float]], straight_idx: tuple[int, int]) -> Path:
        raw = np.array(waypoints, dtype=np.float64)
        pts = _chaikin(raw)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        arclen = np.concatenate([[0.0], np.cumsum(seg)])
        # the straight section: arc length nearest to its two waypoints
        near = [
            float(arclen[np.argmin(np.linalg.norm(pts - raw[i], axis=1))]) for i in straight_idx
        ]
        return Path(pts, arclen, (min(near), max(near)))

    @property
    def length(self) -> float:
        return float(self.arclen[-1])

    def at(self, s: float) -> tuple[float, float, float]:
        """Position (x, z) and heading at arc length s (heading 0 = +Z)."""
        s = float(np.clip(s, 0.0, self.length))
        x = float(np.interp(s, self.arclen, self.points[:, 0]))
        z = float(np.interp(s, self.arclen, self.points[:, 1]))
        ahead = min(s + 0.15, self.length)
        behind = max(ahead - 0.3, 0.0)
        dx = float(
            np.interp(ahead, self.arclen, self.points[:, 0])
            - np.interp(behind, self.arclen, self.points[:, 0])
        )
        dz = float(
            np.interp(ahead, self.arclen, self.points[:, 1])
            - np.interp(behind, self.arclen, self.points[:, 1])
        )
        return x, z, math.atan2(dx, dz)


def make_path(
    rng: np.random.Generator, view: str, scene: SceneConfig, scenario: str | None = None
) -> Path:
    """A child's path for one walk. Toward: enter from the cross corridor, walk to
    about 1.2-1.6 m from the camera, turn out through a side door. Away: the same reversed."""
    if view == "side":
        z = float(rng.uniform(2.7, 3.3))
        sgn = float(rng.choice([-1.0, 1.0]))
        return Path.from_waypoints(
            [(-3.2 * sgn, z), (-2.0 * sgn, z), (2.0 * sgn, z), (3.2 * sgn, z)], (1, 2)
        )
    half = scene.corridor_width / 2.0
    lane = float(rng.uniform(-0.35, 0.35))
    enter_side = float(rng.choice([-1.0, 1.0]))
    exit_side = float(rng.choice([-1.0, 1.0]))
    z_far = scene.junction_z - float(rng.uniform(0.3, 0.8))
    z_near = float(rng.uniform(1.2, 1.6))
    # children rarely walk exactly along the corridor axis: the straight part keeps a small
    # approach angle, drifting across the corridor (kept 0.6 m inside the walls' centre line)
    drift = math.tan(math.radians(float(rng.uniform(-APPROACH_ANGLE_DEG, APPROACH_ANGLE_DEG))))

    def lane_at(z: float) -> float:
        return float(np.clip(lane + drift * (z_far - z), -0.6, 0.6))

    entry = [
        (enter_side * (half + 1.0), scene.junction_z + 0.7),
        (lane + enter_side * 0.3, scene.junction_z - 0.1),
    ]
    straight = [(lane, z_far), (lane_at(z_near), z_near)]
    leave = [(exit_side * (half + 0.4), z_near - 0.7)]
    if scenario == "too_short":
        # the child steps out of a side door into view and straight back: under a gait cycle in view
        z = float(rng.uniform(2.0, 2.6))
        reach = half - float(rng.uniform(0.5, 0.8))
        door = [
            (exit_side * (half + 0.3), z + 0.4),
            (exit_side * reach, z + 0.15),
            (exit_side * reach, z - 0.15),
            (exit_side * (half + 0.3), z - 0.4),
        ]
        path = Path.from_waypoints(door, (1, 2))
        return (
            path
            if view != "away"
            else Path(
                path.points[::-1].copy(),
                path.length - path.arclen[::-1],
                (path.length - path.straight[1], path.length - path.straight[0]),
            )
        )
    if scenario == "partial_exit":
        z_turn = float(rng.uniform(2.6, 3.4))
        straight = [(lane, z_far), (lane_at(z_turn + 0.8), z_turn + 0.8)]
        leave = [(exit_side * (half + 0.8), z_turn - 0.2)]
    if scenario == "close_end":
        # the child keeps walking past the usual turn, to 0.5-0.8 m from the camera (cut off
        # at the top and bottom of the image), then steps aside
        z_close = float(rng.uniform(0.5, 0.8))
        straight = [(lane, z_far), (lane_at(z_near), z_near)]
        leave = [(lane_at(z_close), z_close), (exit_side * (half + 0.4), max(z_close - 0.4, 0.2))]
    waypoints = entry + straight + leave
    path = Path.from_waypoints(waypoints, (2, 3))
    if view == "away":
        pts = path.points[::-1].copy()
        arclen = path.length - path.arclen[::-1]
        path = Path(pts, arclen, (path.length - path.straight[1], path.length - path.straight[0]))
    return path


@dataclass
class Walker:
    """A subject moving along a path; frame k's state is precomputed on a fixed time grid."""

    subject: Subject
    path: Path
    fps: float
    start_frame: int = 0  # frame (relative to the walk) at which this walker starts moving
    stop_at: float | None = None  # arc length where the walker stands still for a while
    stop_s: float = 0.0

    def __post_init__(self) -> None:
        dt = 1.0 / self.fps
        s, phase, motion, t_stopped = 0.0, self.subject.phase0, 1.0, 0.0
        states = []
        ramp = 0.4  # seconds to stop or start
        while s < self.path.length:
            stopping = (
                self.stop_at is not None and s >= self.stop_at and t_stopped < self.stop_s + ramp
            )
            if stopping:
                t_stopped += dt
                target = 0.0 if t_stopped < self.stop_s else 1.0
                motion += float(np.clip(target - motion, -dt / ramp, dt / ramp))
            else:
                motion = min(1.0, motion + dt / ramp)
            states.append((s, phase, motion))
            s += self.subject.speed_mps * motion * dt
            phase += self.subject.stride_hz * motion * dt
            if len(states) > 60 * self.fps:
                raise SimConfigError("a walk did not finish within 60 s: check the path and speed")
        self.states = np.array(states)
        # per-stride amplitude variation, fixed per walker
        gen = np.random.default_rng(
            [zlib.crc32(self.subject.subject_id.encode()), int(self.subject.phase0 * 1e9)]
        )
        self._noise = gen.normal(0.0, self.subject.step_noise, 64)
        # per-step lateral foot placement (step-width variability), drawn after the stride noise
        self._step_width = gen.normal(0.0, self.subject.step_width_sd_m, (64, 2))

    def _foot_offset(self, leg_phase: float, leg: int) -> float:
        """Lateral offset of one foot: fixed during stance, moving to the next step's during swing."""
        n = int(math.floor(leg_phase))
        frac = leg_phase - n
        blend = float(np.clip((frac - 0.6) / 0.4, 0.0, 1.0))
        blend = blend * blend * (3.0 - 2.0 * blend)
        a, b = self._step_width[n % 64, leg], self._step_width[(n + 1) % 64, leg]
        return float(a + blend * (b - a))

    @property
    def frames(self) -> int:
        return self.start_frame + len(self.states)

    def state(self, k: int) -> tuple[float, float, float] | None:
        j = k - self.start_frame
        if j < 0 or j >= len(self.states):
            return None
        s, phase, motion = self.states[j]
        return float(s), float(phase), float(motion)

    def in_straight(self, k: int) -> bool:
        st = self.state(k)
        return st is not None and self.path.straight[0] <= st[0] <= self.path.straight[1]

    def primitives(self, k: int) -> Primitives | None:
        """World-space body at walk frame k, None when the walker is not in the scene."""
        st = self.state(k)
        if st is None:
            return None
        s, phase, motion = st
        gain = 1.0 + self._noise[int(phase) % len(self._noise)]
        x, z, heading = self.path.at(s)
        offsets = (self._foot_offset(phase, 0), self._foot_offset(phase + 0.5, 1))
        return place(pose(self.subject, phase % 1.0, motion, gain, offsets), (x, z), heading)
