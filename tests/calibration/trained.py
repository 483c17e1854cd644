"""A tiny Gait-MIL trained for a few seconds on simulated walks: decisive outputs for precision tests.

A random-init model has near-uniform probabilities, where any rounding flips
the argmax; agreement targets only mean something on a model that learned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaitcontract import spec


def train_tiny(
    walks_u8: np.ndarray, labels: np.ndarray, path: Path, steps: int = 40, seed: int = 0
) -> Path:
    import torch
    import torch.nn.functional as F

    from gaitmil.checkpoint import save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import fit_walk_centroids

    torch.manual_seed(seed)
    model = GaitMIL(GaitMILConfig.from_preset("tiny"))
    model.set_centroids(fit_walk_centroids(walks_u8, model.config.phase_features, seed=seed))
    x = torch.from_numpy(spec.to_model_input(walks_u8))
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        index = torch.from_numpy(rng.choice(len(x), size=8, replace=False))
        loss = F.cross_entropy(model(x[index]).logits, y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    save_checkpoint(
        path,
        model,
        data={"description": f"{len(x)} simulated walks (test fixture)"},
        training={"iterations": steps, "seed": seed},
    )
    return path
