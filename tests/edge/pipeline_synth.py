"""A tiny synthetic depth corridor for the pipeline tests (engineer D), independent of gaitsim.

A pinhole camera 1 m above a flat floor looks down a corridor with a back wall; 'people'
are boxes with two legs at a given distance. Enough to test segmentation geometry and
the walk state machine exactly; gaitsim's rendered walks are used by the scenario tests.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge.types import Frame, Intrinsics

W, H = 640, 480
FX = FY = 385.0
CX, CY = 320.0, 240.0
CAM_H_MM = 1000.0
WALL_MM = 7500
INTR = Intrinsics(W, H, FX, FY, CX, CY)


@lru_cache(maxsize=1)
def _base() -> np.ndarray:
    v = np.arange(H, dtype=np.float32)[:, None]
    depth = np.full((H, W), WALL_MM, np.float32)
    below = v > CY + 1
    floor = FY * CAM_H_MM / np.maximum(v - CY, 1e-3)
    depth = np.where(below & (floor < WALL_MM), np.broadcast_to(floor, (H, W)), depth)
    return depth.astype(np.int32)


def corridor(rng: np.random.Generator | None = None, noise_mm: int = 14) -> np.ndarray:
    """Empty corridor depth (uint16 mm); with `rng`: uniform +-noise_mm (sigma ~8 mm) and 1 % dropouts."""
    depth = _base()
    if rng is None:
        return depth.astype(np.uint16)
    noisy = depth + rng.integers(-noise_mm, noise_mm + 1, depth.shape, dtype=np.int32)
    noisy[rng.integers(0, 100, depth.shape, dtype=np.uint8) == 0] = 0  # stereo dropouts
    return noisy.astype(np.uint16)


def draw_person(
    depth: np.ndarray, z_mm: float, x_m: float, phase: float = 0.0, height_m: float = 1.4
) -> None:
    """Paint a person standing on the floor at distance z (mm), lateral offset x (m)."""
    s = FY / z_mm * 1000.0  # px per metre at that distance
    foot_v = CY + CAM_H_MM / 1000.0 * s
    head_v = foot_v - height_m * s
    hip_v = foot_v - 0.75 * height_m * s * 0.62
    cu = CX + x_m * s
    half = 0.18 * s
    top, hip, bottom = int(round(head_v)), int(round(hip_v)), int(round(foot_v))
    left, right = int(round(cu - half)), int(round(cu + half))
    sl = slice(max(top, 0), min(hip, H))
    depth[sl, max(left, 0) : max(min(right, W), 0)] = np.uint16(z_mm)
    swing = 0.12 * s * np.sin(phase)
    leg = max(int(0.07 * s), 1)
    for offset in (-0.08 * s + swing, 0.08 * s - swing):
        c = int(round(cu + offset))
        depth[max(hip, 0) : min(bottom, H), max(c - leg, 0) : max(min(c + leg, W), 0)] = np.uint16(
            z_mm
        )


def walk_frames(
    n_frames: int,
    *,
    z_start: float = 6000.0,
    z_end: float = 1800.0,
    x_start: float = 0.0,
    x_end: float = 0.0,
    second_person: bool = False,
    gap_before: int = 10,
    gap_after: int = 12,
    start_index: int = 0,
    seed: int = 0,
    stop: tuple[int, int] | None = None,
    fps: float = 30.0,
) -> list[Frame]:
    """Empty frames, a walk of n_frames, empty frames. `stop=(a, b)`: stand still from frame a to b."""
    rng = np.random.default_rng(seed)
    frames = []
    index = start_index
    for _ in range(gap_before):
        frames.append(Frame(index, index / fps, corridor(rng), intrinsics=INTR))
        index += 1
    positions = np.linspace(0.0, 1.0, n_frames)
    if stop is not None:
        a, b = stop
        positions = np.concatenate(
            [
                positions[:a],
                np.full(b - a, positions[a]),
                np.linspace(positions[a], 1.0, n_frames - b),
            ]
        )
    for t, p in enumerate(positions):
        depth = corridor(rng)
        if second_person:
            draw_person(depth, z_start + (z_end - z_start) * p + 600, x_start + 0.9, phase=t * 0.4)
        draw_person(
            depth, z_start + (z_end - z_start) * p, x_start + (x_end - x_start) * p, phase=t * 0.42
        )
        frames.append(Frame(index, index / fps, depth, intrinsics=INTR))
        index += 1
    for _ in range(gap_after):
        frames.append(Frame(index, index / fps, corridor(rng), intrinsics=INTR))
        index += 1
    return frames


def empty_frames(count: int = 30, seed: int = 1) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [Frame(i, i / 30.0, corridor(rng), intrinsics=INTR) for i in range(count)]
