"""`export verify`: the TensorRT runner against ONNX Runtime on simulated walks (run on a Jetson)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.batches import run_in_batches
from export.errors import EngineError
from export.parity import ParityReport, compare_outputs
from gaitcontract import spec

if TYPE_CHECKING:
    from edge.runners.base import Runner


def run_runner(runner: Runner, walks: np.ndarray) -> dict[str, np.ndarray]:
    """Feed walks [N, T, 64, 44] through an active edge runner in its static batch size."""
    return run_in_batches(
        lambda chunk: runner.infer({spec.INPUT_NAME: chunk}), walks, runner.input_shape[0]
    )


def verify_engine(engine: Path, onnx: Path, walks: int = 200, seed: int = 0) -> ParityReport:
    """Agreement of the TensorRT engine with ONNX Runtime on the same ONNX model.

    The engine must have been built from `onnx` (its manifest's ONNX hash is checked).
    """
    from edge.errors import EdgeError
    from edge.runners.registry import create_runner
    from export._deps import require
    from export.walks import simulated_walks

    engine, onnx = Path(engine), Path(onnx)
    build = f"python -m export engine --onnx {onnx} --out {engine}"
    if not onnx.is_file():
        raise EngineError(
            f"ONNX model {onnx} does not exist; pass the ONNX the engine was built from"
        )
    if not engine.is_file():
        raise EngineError(
            f"engine {engine} does not exist; build it on this machine first: {build}"
        )
    require("tensorrt")  # a missing TensorRT is exit code 3 with the install command
    try:
        with create_runner("onnxruntime", onnx) as reference:
            frames = reference.input_shape[1]
            data, _ = simulated_walks(
                walks, frames=frames, seed=seed, height=reference.input_shape[2]
            )
            expected = run_runner(reference, data)
        with create_runner("tensorrt", engine, onnx_path=str(onnx)) as candidate:
            got = run_runner(candidate, data)
    except EdgeError as exc:  # runner errors name the file and the fix; no traceback for the user
        raise EngineError(f"{exc}") from exc
    return compare_outputs(expected, got, "onnxruntime", "tensorrt")
