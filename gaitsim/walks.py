"""Fast path: normalised silhouette sequences of simulated walks, mask only.

Renders only the child's mask, in a tight crop scaled so the child is about
112 px tall (OpenGait resizes to 64 anyway), with the same body, gait,
posture and camera as the full renderer. Used for training sets, export
parity, INT8 calibration sets, benchmarks and tests.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from gaitcontract.silhouette import cut, normalize
from gaitcontract.spec import CANVAS_SIZE, even_indices, input_width
from gaitsim.camera import CameraConfig, vary_camera
from gaitsim.errors import SimConfigError
from gaitsim.raster import render_mask_crop
from gaitsim.render import camera_intrinsics, to_camera
from gaitsim.stream import scene_for_view
from gaitsim.subject import DEFAULT_THRESHOLDS, Subject, sample_subject
from gaitsim.walk import Walker, check_view, make_path

FPS = 30.0
MIN_VISIBLE_FRAMES = 16
_VIEW_CHOICES = ("toward", "away")  # "mixed" draws from these: the views a corridor kiosk sees


@dataclass
class WalkBatch:
    """Normalised silhouettes of simulated walks with their truth."""

    silhouettes: np.ndarray  # uint8 [N, T, 64, 44]
    labels: np.ndarray  # int64 [N]
    severity: np.ndarray  # float32 [N], Cobb-like degrees
    views: list[str]
    subject_ids: list[str]


def pick_view(rng: np.random.Generator, view: str) -> str:
    check_view(view)
    return str(rng.choice(_VIEW_CHOICES)) if view == "mixed" else view


def _fully_visible(walker: Walker, k: int, camera: CameraConfig, reach_m: float = 0.4) -> bool:
    """Cheap test on the box around the body (arm and leg reach `reach_m`), without posing it."""
    x, z, _ = walker.path.at(walker.state(k)[0])
    top = 1.02 * walker.subject.height_m
    corners = np.array(
        [
            [x + dx, y, z + dz]
            for dx in (-reach_m, reach_m)
            for dz in (-reach_m, reach_m)
            for y in (0.0, top)
        ]
    )
    if (camera.to_camera(corners)[:, 2] <= 0.1).any():
        return False
    uv = camera.project(corners)
    return bool(
        (uv[:, 0] >= 0).all()
        and (uv[:, 0] <= camera.width).all()
        and (uv[:, 1] >= 0).all()
        and (uv[:, 1] <= camera.height).all()
    )


def walk_frames(
    subject: Subject,
    view: str,
    rng: np.random.Generator,
    camera: CameraConfig | None = None,
) -> tuple[Walker, list[int], CameraConfig]:
    """One walk's walker, its fully visible straight frames and the camera that sees them.

    Without `camera`, each walk draws its own camera height and tilt
    (`gaitsim.camera.vary_camera`); a given camera is used as it is.
    """
    scene = scene_for_view(view)
    walker = Walker(subject, make_path(rng, view, scene), FPS)
    camera = camera or vary_camera(rng)
    visible = [
        k
        for k in range(walker.frames)
        if walker.in_straight(k) and _fully_visible(walker, k, camera)
    ]
    if len(visible) < MIN_VISIBLE_FRAMES:
        raise SimConfigError(
            f"walk of {subject.subject_id} ({view}) is fully visible in only {len(visible)} frames: "
            f"check the camera height/tilt ({camera.height_m} m, {camera.tilt_deg} deg)"
        )
    return walker, visible, camera


def walk_silhouettes(
    subject: Subject,
    view: str,
    rng: np.random.Generator,
    frames: int | None = 30,
    max_frames: int = 120,
    camera: CameraConfig | None = None,
    height: int = CANVAS_SIZE,
) -> np.ndarray:
    """uint8 [T, 64, 64] OpenGait silhouettes (not cut) of one walk's fully visible straight part
    ([T, 128, 128] for `height` 128: normalised from the rendered camera mask, not upsampled).

    `frames`: sample exactly this many frames evenly (sample_walks); None: every
    visible frame, evenly thinned to at most `max_frames` (dataset sequences).
    """
    return walk_sequence(subject, view, rng, frames, max_frames, camera, height)[0]


def walk_sequence(
    subject: Subject,
    view: str,
    rng: np.random.Generator,
    frames: int | None = 30,
    max_frames: int = 120,
    camera: CameraConfig | None = None,
    height: int = CANVAS_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """walk_silhouettes plus the true gait phase of each frame: float32 [T] in [0, 1), the
    fraction of the stride cycle (used to measure how well phase bags follow the gait)."""
    walker, visible, camera = walk_frames(subject, view, rng, camera)
    intr = camera_intrinsics(camera)
    count = frames if frames is not None else min(len(visible), max_frames)
    chosen = [visible[i] for i in even_indices(len(visible), count)]
    out = np.zeros((len(chosen), height, height), np.uint8)
    for i, k in enumerate(chosen):
        result = normalize(render_mask_crop(to_camera(walker.primitives(k), camera), intr), height)
        if not result.ok:
            raise SimConfigError(
                f"frame {k} of {subject.subject_id} normalised to nothing ({result.reason})"
            )
        out[i] = result.silhouette
    phases = np.array([walker.state(k)[1] % 1.0 for k in chosen], np.float32)
    return out, phases


def labels_for_ratio(
    count: int, ratio: tuple[int, int, int], rng: np.random.Generator
) -> np.ndarray:
    """`count` class indices in the proportions negative:neutral:positive = ratio, shuffled."""
    if len(ratio) != 3 or min(ratio) < 0 or sum(ratio) == 0:
        raise SimConfigError(
            f"ratio {ratio} must be three non-negative integers (negative:neutral:positive), not all 0"
        )
    pattern = np.repeat(np.arange(3), ratio)
    labels = pattern[np.arange(count) % len(pattern)]
    return rng.permutation(labels).astype(np.int64)


def _one_walk(args: tuple) -> tuple[np.ndarray, float, str, str]:
    seed, i, label, frames, view, thresholds, height = args
    rng = np.random.default_rng([seed, i, 0x5A3])
    subject = sample_subject(
        rng, int(label), subject_id=f"sim{seed}-{i:05d}", thresholds=thresholds
    )
    chosen = pick_view(rng, view)
    sil = cut(walk_silhouettes(subject, chosen, rng, frames=frames, height=height))
    return sil, subject.posture.severity, chosen, subject.subject_id


def sample_walks(
    count: int,
    seed: int = 0,
    frames: int = 30,
    view: str = "mixed",
    ratio: tuple[int, int, int] = (2, 1, 1),
    workers: int = 1,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
    height: int = CANVAS_SIZE,
) -> WalkBatch:
    """`count` walks of `frames` silhouettes each (uint8 [N, T, 64, 44]; [N, T, 128, 88] for
    `height` 128), one subject per walk, classes in proportions negative:neutral:positive =
    `ratio`. Deterministic for a seed (and independent of `workers`)."""
    if count < 1:
        raise SimConfigError(f"count must be >= 1, got {count}")
    if frames < 1:
        raise SimConfigError(f"frames must be >= 1, got {frames}")
    check_view(view)
    labels = labels_for_ratio(count, ratio, np.random.default_rng([seed, 0x1AB]))
    input_width(height)  # a height the contract lacks is refused here
    jobs = [(seed, i, int(labels[i]), frames, view, thresholds, height) for i in range(count)]
    workers = max(1, min(int(workers), os.cpu_count() or 1, count))
    if workers == 1:
        results = [_one_walk(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_one_walk, jobs, chunksize=max(1, count // (4 * workers))))
    return WalkBatch(
        silhouettes=np.stack([r[0] for r in results]),
        labels=labels,
        severity=np.array([r[1] for r in results], np.float32),
        views=[r[2] for r in results],
        subject_ids=[r[3] for r in results],
    )
