"""Session fixtures: a tiny random Gait-MIL checkpoint, its ONNX export and manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FRAMES = 16  # small T keeps the contract tests fast; the runners read T from the model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    import torch

    from gaitmil.checkpoint import save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import fit_centroids

    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset("tiny"))
    rng = np.random.default_rng(0)
    frames = (rng.random((64, 64, 44)) > 0.5).astype(np.uint8) * 255
    model.set_centroids(fit_centroids(frames, k=model.config.phases, seed=0))
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, model, frames=FRAMES)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from gaitmil.checkpoint import load_checkpoint
    from tests.edge.kiosk_support import export_test_onnx

    model, meta = load_checkpoint(tiny_checkpoint)
    path = export_test_onnx(model, meta, tmp_path_factory.mktemp("onnx") / "model.onnx", FRAMES)
    return path


@pytest.fixture(scope="session")
def contract_walks():
    """Deterministic 'walks' (uint8 silhouettes) of several lengths: a moving blob with legs."""
    rng = np.random.default_rng(42)
    walks = []
    for length in (12, 40, 75):
        sil = np.zeros((length, 64, 44), np.uint8)
        for t in range(length):
            phase = np.sin(2 * np.pi * t / 30.0)
            cx = 22 + int(3 * phase)
            sil[t, 4:40, cx - 7 : cx + 7] = 255
            sil[t, 40:64, cx - 6 + int(3 * phase) : cx - 1 + int(3 * phase)] = 255
            sil[t, 40:64, cx + 1 - int(3 * phase) : cx + 6 - int(3 * phase)] = 255
        noise = rng.random(sil.shape) < 0.01
        sil[noise] = 255 - sil[noise]
        walks.append(sil)
    return walks
