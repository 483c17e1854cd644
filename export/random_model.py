"""Randomly initialised checkpoints: for latency benchmarks and tests, never for screening."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export._deps import require
from gaitcontract import spec


def structured_frames(count: int, seed: int = 0) -> np.ndarray:
    """Silhouette-like uint8 frames [N, 64, 44]: a body-sized blob that sways, so k-means finds phases."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : spec.INPUT_HEIGHT, 0 : spec.INPUT_WIDTH]
    frames = np.zeros((count, spec.INPUT_HEIGHT, spec.INPUT_WIDTH), np.uint8)
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi)
        centre = spec.INPUT_WIDTH / 2 + 4 * np.sin(phase) * rows / spec.INPUT_HEIGHT
        width = 6 + 4 * np.abs(np.sin(phase)) * (rows > 40)
        frames[i] = np.where(np.abs(cols - centre) < width, 255, 0)
    return frames


def make_random_checkpoint(
    preset: str,
    path: str | Path,
    seed: int = 0,
    phase_features: str | None = None,
    input_height: int = spec.INPUT_HEIGHT,
) -> Path:
    """Write a random-init checkpoint of `preset` (centroids from structured frames) to `path`;
    `phase_features` picks the phase lookup (default: the model's default).

    Its description says it is untrained: its outputs mean nothing, it only
    has the shape and cost of a real model of that preset.
    """
    torch = require("torch")
    from gaitmil.checkpoint import save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import fit_walk_centroids

    # ConfigError lists the presets and the phase features
    config = GaitMILConfig.from_preset(
        preset,
        input_height=input_height,
        **({"phase_features": phase_features} if phase_features else {}),
    )
    torch.manual_seed(seed)
    model = GaitMIL(config)
    walks = structured_frames(256, seed).reshape(
        16, 16, spec.INPUT_HEIGHT, spec.INPUT_WIDTH
    )  # 16 walks (centroids of 176 pooled features at any contract resolution)
    model.set_centroids(
        fit_walk_centroids(walks, config.phase_features, k=config.phases, seed=seed)
    )
    model.eval()
    save_checkpoint(
        path,
        model,
        data={
            "description": "none: random initialisation (untrained, for benchmarks and tests only)"
        },
        training={"iterations": 0, "seed": seed},
    )
    return Path(path)
