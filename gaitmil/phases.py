"""Gait-phase centroids: k-means++ on phase features of silhouettes average-pooled
to 16x11 (numpy only).

The centroids are fitted once on training frames, stored in the model as a
buffer and used as a fixed nearest-centroid lookup in training, ONNX and
TensorRT alike (see GaitMIL.assign_phases, which pools the same way).

Two phase features (GaitMILConfig.phase_features):

- "walk_residual" (default): each pooled frame minus the mean pooled frame
  of its walk. The walk mean is the child's build and clothing; the residual
  is where the limbs are in the stride, so the bags follow the gait cycle.
- "appearance": the pooled frame itself (the first construction; its bags
  group walkers by looks more than by phase). Kept for ablations.
"""

from __future__ import annotations

import numpy as np

from gaitcontract.errors import ConfigError
from gaitcontract.spec import INPUT_HEIGHT, INPUT_WIDTH, is_input_geometry

POOL = 4
DIM = (INPUT_HEIGHT // POOL) * (INPUT_WIDTH // POOL)  # 176


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """[N, 64, 44] uint8 (0..255) or float in [0, 1] -> float32 [N, 176] of 4x4 means; a
    128x88 walk is pooled 8x8 (as GaitMIL.assign_phases does), so it has the same 176 features."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or not is_input_geometry(*frames.shape[1:]):
        raise ConfigError(
            f"frames must have shape [N, {INPUT_HEIGHT}, {INPUT_WIDTH}] (or [N, 128, 88]), "
            f"got {frames.shape}"
        )
    height, width = frames.shape[1:]
    pool = POOL * height // INPUT_HEIGHT
    x = frames.astype(np.float32)
    if frames.dtype == np.uint8:
        x /= np.float32(255.0)
    n = x.shape[0]
    return x.reshape(n, height // pool, pool, width // pool, pool).mean(axis=(2, 4)).reshape(n, DIM)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances [N, K], computed as the model does (|x|^2 - 2 x.c + |c|^2)."""
    return np.maximum((x * x).sum(1, keepdims=True) - 2.0 * x @ c.T + (c * c).sum(1), 0.0)


FEATURES = ("walk_residual", "appearance")


def phase_features(walk: np.ndarray, kind: str) -> np.ndarray:
    """Phase features [T, 176] of one walk's frames [T, 64, 44] (numpy twin of the model's)."""
    pooled = pool_frames(walk)
    if kind == "walk_residual":
        return pooled - pooled.mean(0, keepdims=True)
    if kind == "appearance":
        return pooled
    raise ConfigError(f"phase features {kind!r} are unknown: use one of {', '.join(FEATURES)}")


def fit_walk_centroids(walks, kind: str, k: int = 4, seed: int = 0, iters: int = 50) -> np.ndarray:
    """k-means++ centroids [k, 176] of the phase features of `walks` (each [T, 64, 44])."""
    walks = list(walks)
    if not walks:
        raise ConfigError("need at least one walk to fit phase centroids")
    return kmeans(np.concatenate([phase_features(w, kind) for w in walks]), k, seed, iters)


def fit_centroids(frames: np.ndarray, k: int = 4, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Appearance centroids [k, 176] of single frames (phase_features="appearance")."""
    return kmeans(pool_frames(frames), k, seed, iters)


def kmeans(features: np.ndarray, k: int = 4, seed: int = 0, iters: int = 50) -> np.ndarray:
    """k-means++ initialisation then Lloyd iterations on rows of `features`; returns float32 [k, D].

    Deterministic for a seed. An empty cluster is re-seeded with the point
    farthest from its centroid, so every phase keeps a centroid.
    """
    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    if n < k:
        raise ConfigError(f"need at least k={k} frames to fit {k} phase centroids, got {n}")
    rng = np.random.default_rng(seed)
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    closest = _sq_dist(x, centers[:1])[:, 0]
    for j in range(1, k):
        total = closest.sum()
        # all remaining points coincide with a centre: any point will do
        idx = rng.choice(n, p=closest / total) if total > 0 else rng.integers(n)
        centers[j] = x[idx]
        closest = np.minimum(closest, _sq_dist(x, centers[j : j + 1])[:, 0])
    for _ in range(iters):
        dist = _sq_dist(x, centers)
        labels = dist.argmin(1)
        new = centers.copy()
        for j in range(k):
            members = labels == j
            if members.any():
                new[j] = x[members].mean(0)
            else:
                far = int(dist[np.arange(n), labels].argmax())
                new[j] = x[far]
        if np.allclose(new, centers):
            centers = new
            break
        centers = new
    return centers.astype(np.float32)


def assign(frames: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest-centroid phase index of each frame [N] (the numpy twin of the model's lookup)."""
    return _sq_dist(
        pool_frames(frames).astype(np.float64), np.asarray(centroids, np.float64)
    ).argmin(1)


def assign_walk(walk: np.ndarray, centroids: np.ndarray, kind: str) -> np.ndarray:
    """Nearest-centroid phase index [T] of each frame of one walk, on `kind` phase features."""
    return _sq_dist(
        phase_features(walk, kind).astype(np.float64), np.asarray(centroids, np.float64)
    ).argmin(1)
