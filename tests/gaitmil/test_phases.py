"""k-means++ phase centroids."""

from __future__ import annotations

import numpy as np
import pytest

from gaitcontract.errors import ConfigError
from gaitmil.phases import DIM, assign, fit_centroids, pool_frames


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clearly different silhouettes (a block in each quadrant) plus noise."""
    rng = np.random.default_rng(seed)
    frames, truth = [], []
    for q, (r, c) in enumerate([(0, 0), (0, 22), (32, 0), (32, 22)]):
        for _ in range(25):
            f = (rng.random((64, 44)) < 0.03).astype(np.uint8) * 255
            f[r : r + 32, c : c + 22] = 255
            frames.append(f)
            truth.append(q)
    return np.stack(frames), np.array(truth)


def test_pool_frames_is_a_4x4_mean_in_unit_range():
    f = np.zeros((1, 64, 44), np.uint8)
    f[0, :4, :4] = 255
    f[0, 4:8, 0:2] = 255
    pooled = pool_frames(f)
    assert pooled.shape == (1, DIM) and pooled.dtype == np.float32
    assert pooled[0, 0] == pytest.approx(1.0)
    assert pooled[0, 11] == pytest.approx(0.5)  # row 1 of the 16x11 grid, column 0
    assert pooled.sum() == pytest.approx(1.5)
    np.testing.assert_allclose(pool_frames(f.astype(np.float32) / 255), pooled)


def test_fit_centroids_recovers_clusters_and_is_seeded():
    frames, truth = _blobs()
    c = fit_centroids(frames, k=4, seed=0)
    assert c.shape == (4, DIM) and c.dtype == np.float32
    labels = assign(frames, c)
    # each true cluster maps to exactly one centroid
    for q in range(4):
        assert len(set(labels[truth == q])) == 1
    assert len(set(labels)) == 4
    np.testing.assert_array_equal(fit_centroids(frames, k=4, seed=0), c)


def test_fit_centroids_keeps_every_phase_on_duplicate_frames():
    frames = np.repeat(_blobs()[0][:2], 10, axis=0)  # only 2 distinct frames, k=4
    c = fit_centroids(frames, k=4, seed=1)
    assert np.isfinite(c).all() and c.shape == (4, DIM)


def test_fit_centroids_errors():
    with pytest.raises(ConfigError, match="at least k=4"):
        fit_centroids(np.zeros((3, 64, 44), np.uint8), k=4)
    with pytest.raises(ConfigError, match=r"\[N, 64, 44\]"):
        fit_centroids(np.zeros((10, 64, 64), np.uint8), k=2)
