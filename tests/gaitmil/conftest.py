"""Fixtures for the gaitmil tests: a tiny synthetic dataset and small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaitmil.model import GaitMIL, GaitMILConfig
from gaitmil.phases import fit_walk_centroids
from tests.gaitmil.synth import walk, write_dataset

# a very narrow network: the tests check behaviour, not capacity
SMALL = {"widths": (4, 8, 8, 16), "attn_hidden": 8, "embed_dim": 16}


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("synth"), per_class_train=4, per_class_test=2, frames=20
    )


@pytest.fixture(scope="session")
def synth_frames() -> np.ndarray:
    """uint8 [N, 64, 44] frames of all classes, for centroid fitting."""
    rng = np.random.default_rng(1)
    return np.concatenate([walk(label, 15, rng)[:, :, 10:54] for label in range(3)])


def make_model(synth_frames: np.ndarray, seed: int = 0, **overrides) -> GaitMIL:
    torch.manual_seed(seed)
    cfg = GaitMILConfig.from_preset("tiny", **{**SMALL, **overrides})
    model = GaitMIL(cfg)
    # synth_frames holds three 15-frame walks, one per class
    walks = synth_frames.reshape(3, -1, *synth_frames.shape[1:])
    model.set_centroids(fit_walk_centroids(walks, cfg.phase_features, k=cfg.phases, seed=seed))
    return model.eval()


def walk_batch(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """float [B, T, 64, 44] synthetic walks in [0, 1]."""
    rng = np.random.default_rng(seed)
    sils = [walk(b % 3, frames, rng)[:, :, 10:54] for b in range(batch)]
    return torch.from_numpy(np.stack(sils).astype(np.float32) / 255.0)
