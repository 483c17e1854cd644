"""Simulated walks in the model's input form, for parity checks and benchmarks."""

from __future__ import annotations

import numpy as np

from export._deps import require
from gaitcontract import spec


def simulated_walks(
    count: int,
    frames: int = spec.DEFAULT_FRAMES,
    seed: int = 0,
    view: str = "mixed",
    height: int = spec.INPUT_HEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` simulated walks as float32 [N, T, 64, 44] in [0, 1] ([N, T, 128, 88] for `height`
    128), and their labels [N].

    Walks come from the gait simulator (gaitsim.sample_walks), so parity is
    checked on silhouettes shaped like real ones rather than on noise.
    """
    gaitsim = require("gaitsim")
    batch = gaitsim.sample_walks(count, seed=seed, frames=frames, view=view, height=height)
    return spec.to_model_input(batch.silhouettes, height), np.asarray(batch.labels, dtype=np.int64)
