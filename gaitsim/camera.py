"""Pinhole camera (RealSense-D435-like) and the corridor scene it looks at.

World frame: X to the right as seen from the camera, Y up, Z along the
corridor away from the camera; the floor is Y = 0 and the camera sits at
(0, height_m, 0). Camera frame: x right, y down, z forward, so a pixel's ray
is (u - cx) / fx, (v - cy) / fy, 1 and the ray parameter *is* the depth z
that a RealSense reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from gaitsim.errors import SimConfigError


@dataclass(frozen=True)
class CameraConfig:
    """Intrinsics and pose of the depth camera (defaults: D435 depth at 640x480)."""

    width: int = 640
    height: int = 480
    fx: float = 385.0
    fy: float = 385.0
    cx: float = 320.0
    cy: float = 240.0
    height_m: float = 1.0  # camera height above the floor
    tilt_deg: float = 0.0  # down-tilt of the optical axis
    max_depth_mm: int = 8000  # farther returns are reported as 0 (invalid)
    min_depth_mm: int = 280  # D435 minimum range at 640x480
    depth_scale: float = 0.001  # metres per depth unit (z16 in millimetres)
    baseline_mm: float = 50.0  # stereo baseline, sets the noise and the shadow band
    subpixel: float = 0.08  # stereo matching sub-pixel RMS, sets depth noise

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise SimConfigError(
                f"camera size {self.width}x{self.height} is too small: use at least 16x16"
            )
        if self.fx <= 0 or self.fy <= 0:
            raise SimConfigError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if not 0.2 <= self.height_m <= 3.0:
            raise SimConfigError(f"camera height_m={self.height_m} is outside 0.2..3.0 m")
        if not -30.0 <= self.tilt_deg <= 45.0:
            raise SimConfigError(f"camera tilt_deg={self.tilt_deg} is outside -30..45 degrees")

    @property
    def position(self) -> np.ndarray:
        return np.array([0.0, self.height_m, 0.0])

    def world_to_camera(self) -> np.ndarray:
        """3x3 rotation taking world directions to camera directions (rows: camera x, y, z)."""
        t = math.radians(self.tilt_deg)
        x_c = (1.0, 0.0, 0.0)
        y_c = (0.0, -math.cos(t), -math.sin(t))  # image down
        z_c = (0.0, -math.sin(t), math.cos(t))  # optical axis, tilted down for t > 0
        return np.array([x_c, y_c, z_c])

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """World points [..., 3] to camera coordinates [..., 3]."""
        return (np.asarray(points_world) - self.position) @ self.world_to_camera().T

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """World points [..., 3] to pixel coordinates [..., 2] (u, v)."""
        p = self.to_camera(points_world)
        return np.stack(
            [self.fx * p[..., 0] / p[..., 2] + self.cx, self.fy * p[..., 1] / p[..., 2] + self.cy],
            -1,
        )

    def depth_noise_sigma_mm(self, depth_mm: np.ndarray | float) -> np.ndarray | float:
        """Stereo depth RMS error: z^2 * subpixel / (f * baseline), growing with distance squared."""
        return np.square(depth_mm) * (self.subpixel / (self.fx * self.baseline_mm))


# per-walk camera pose of the fast path (`gaitsim.walks`): kiosks are mounted at slightly
# different heights and tilts, so training silhouettes should not all share one perspective
CAMERA_HEIGHT_RANGE_M = (0.85, 1.25)
CAMERA_TILT_RANGE_DEG = (-2.0, 6.0)  # + tilts the optical axis down


def vary_camera(rng: np.random.Generator, base: CameraConfig | None = None) -> CameraConfig:
    """`base` (default CameraConfig()) with a height and down-tilt drawn from the ranges above."""
    return replace(
        base or CameraConfig(),
        height_m=float(rng.uniform(*CAMERA_HEIGHT_RANGE_M)),
        tilt_deg=float(rng.uniform(*CAMERA_TILT_RANGE_DEG)),
    )


@dataclass(frozen=True)
class SceneConfig:
    """Static geometry around the walker, in metres.

    "corridor": walls at X = +-width/2 from the camera to `junction_z`, where a
    cross corridor opens (children enter and leave there, hidden by the wall
    ends); the cross corridor's far wall at `far_wall_z`. "hall": the camera
    looks across a room at a back wall (used for the side view).
    """

    kind: str = "corridor"
    corridor_width: float = 3.0
    junction_z: float = 5.6
    far_wall_z: float = 7.4
    ceiling_y: float = 2.7
    hall_back_wall_z: float = 4.8
    hall_half_width: float = 6.0

    def __post_init__(self) -> None:
        if self.kind not in ("corridor", "hall"):
            raise SimConfigError(f"scene kind {self.kind!r} is unknown: use 'corridor' or 'hall'")


def pixel_rays(camera: CameraConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-column x slope and per-row y slope of the camera rays (z = 1)."""
    dx = ((np.arange(camera.width) - camera.cx) / camera.fx).astype(np.float32)
    dy = ((np.arange(camera.height) - camera.cy) / camera.fy).astype(np.float32)
    return dx, dy


def scene_depth(
    camera: CameraConfig, scene: SceneConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic depth (metres, inf where nothing is hit) of the empty scene, and
    the world X and Z of each hit (used for textures)."""
    dx, dy = pixel_rays(camera)
    rays_cam = np.stack(np.broadcast_arrays(dx[None, :], dy[:, None], np.float32(1.0)), -1)
    rays = rays_cam @ camera.world_to_camera()  # world direction per pixel, camera-z = 1
    cy_ = camera.height_m
    rx, ry, rz = rays[..., 0], rays[..., 1], rays[..., 2]
    best = np.full(rx.shape, np.inf, dtype=np.float64)

    def consider(t: np.ndarray, ok: np.ndarray) -> None:
        hit = ok & (t > 0) & (t < best)
        best[hit] = t[hit]

    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = -cy_ / ry
        consider(t_floor, ry < 0)
        t_ceil = (scene.ceiling_y - cy_) / ry
        consider(t_ceil, ry > 0)
        if scene.kind == "corridor":
            half = scene.corridor_width / 2.0
            for wall_x in (-half, half):
                t = wall_x / rx
                z, y = t * rz, cy_ + t * ry
                consider(t, (z >= 0) & (z <= scene.junction_z) & (y >= 0) & (y <= scene.ceiling_y))
            consider(scene.far_wall_z / rz, rz > 0)
        else:
            for wall_x in (-scene.hall_half_width, scene.hall_half_width):
                consider(wall_x / rx, np.abs(rx) > 0)
            consider(scene.hall_back_wall_z / rz, rz > 0)
    hit_x = np.where(np.isfinite(best), best * rx, 0.0)
    hit_z = np.where(np.isfinite(best), best * rz, 0.0)
    return best.astype(np.float32), hit_x.astype(np.float32), hit_z.astype(np.float32)
