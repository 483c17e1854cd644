"""Fixtures for export tests: a random-init tiny checkpoint and simulated walks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaitcontract import spec


def simulated(
    count: int, frames: int, seed: int = 0, height: int = spec.INPUT_HEIGHT
) -> np.ndarray:
    """float32 walks [N, T, 64, 44] ([N, T, 128, 88] for `height` 128) in [0, 1] from the gait
    simulator."""
    import gaitsim

    batch = gaitsim.sample_walks(count, seed=seed, frames=frames, height=height)
    return spec.to_model_input(batch.silhouettes, height)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.random_model import make_random_checkpoint

    return make_random_checkpoint("tiny", tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=3)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """ExportResult of the tiny checkpoint at T=16, batch 1 (parity on 8 walks)."""
    from export.onnx_export import ExportConfig, export_onnx

    out = tmp_path_factory.mktemp("onnx16")
    return export_onnx(
        ExportConfig(tiny_checkpoint, out, frames=16, batch=1, parity_walks=0),
        walks=simulated(8, 16),
    )


def regenerate_small(checkpoint: Path, tmp_path: Path, walks: int) -> dict[str, Path]:
    """`make models` on `walks` calibration and held-out walks (half as many parity walks), no
    sensitivity sweep: every artifact, in seconds. Returns regenerate's paths; the folder is
    tmp_path / "demo"."""
    from calibration.demo_artifacts import regenerate

    return regenerate(
        checkpoint,
        tmp_path / "demo",
        tmp_path / "work",
        calib_count=walks,
        held_out=walks,
        parity_walks=walks // 2,
        with_sensitivity=False,
    )
