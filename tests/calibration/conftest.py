"""Fixtures for calibration tests: simulated walks, a random tiny FP32 model, a briefly trained one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.dataset import CalibrationSet, build_set, save_set
from gaitcontract import spec


def sim_set(count: int, frames: int, seed: int) -> CalibrationSet:
    import gaitsim

    batch = gaitsim.sample_walks(count, seed=seed, frames=frames, ratio=(1, 1, 1))
    strata = [
        f"{spec.CLASSES[int(label)]}/{view}" for label, view in zip(batch.labels, batch.views)
    ]
    return build_set(
        batch.silhouettes, batch.labels, strata, count, seed, {"kind": "test", "seed": seed}
    )


@pytest.fixture(scope="session")
def calib16(tmp_path_factory) -> Path:
    """24 simulated walks of 16 frames saved as a calibration set."""
    path, _ = save_set(sim_set(24, 16, seed=21), tmp_path_factory.mktemp("calib") / "calib.npz")
    return path


@pytest.fixture(scope="session")
def fp32_16(tmp_path_factory) -> Path:
    """A random-init tiny model exported at T=16 (structure tests only: its outputs mean nothing)."""
    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint

    root = tmp_path_factory.mktemp("fp32")
    checkpoint = make_random_checkpoint("tiny", root / "tiny.pt", seed=4)
    return export_onnx(ExportConfig(checkpoint, root, frames=16, parity_walks=0)).onnx_path


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny model trained briefly at T=8, its calibration set and a held-out set (different seeds)."""
    from export.onnx_export import ExportConfig, export_onnx
    from tests.calibration.trained import train_tiny

    root = tmp_path_factory.mktemp("trained")
    train = sim_set(36, 8, seed=31)
    held_out = sim_set(30, 8, seed=32)
    checkpoint = train_tiny(train.silhouettes, train.labels, root / "tiny.pt", steps=20)
    fp32 = export_onnx(
        ExportConfig(checkpoint, root, frames=8, parity_walks=0), walks=held_out.model_input()
    ).onnx_path
    calib, _ = save_set(train, root / "calib.npz")
    held, _ = save_set(held_out, root / "held.npz")
    return {"fp32": fp32, "calib": calib, "held_out": held}


def zero_points_and_types(model_path: Path) -> list[tuple[str, np.dtype, np.ndarray]]:
    """(node name, zero-point dtype, zero point) of every Q/DQ node."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(model_path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[node.input[2]]
            out.append((node.name, zp.dtype, zp))
    return out
