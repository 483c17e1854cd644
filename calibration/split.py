"""INT8 forms of the split encoder (export/split.py) through the shipped quantizer.

The encoder is the part calibration.quantize quantizes in the whole graph anyway (its
default scope is `/model/encoder/*`, and the split encoder keeps those node names), so
the same targets, Q/DQ placement and float blocks apply; the calibration walks are
fed frame by frame (every frame of every walk). What differs: the head's bias
correction (calibration.bias) folds the quantization's embedding shift into the head's
BatchNorm, and the head is a separate FP32 graph here, so the INT8 encoders go without
it; their parity against the whole FP32 graph is measured and recorded in
model.split.json instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.dataset import CalibrationSet
from calibration.quantize import QuantizeConfig, quantize
from export.parity import ParityReport
from export.split import ENCODER_FILE, ENCODER_FORMS, add_encoder_form

TARGET_FORMS = {"tensorrt": "int8", "cpu": "int8-cpu"}


def frame_set(walks: CalibrationSet) -> CalibrationSet:
    """The calibration walks as one set of frames [N*T, 64, 44] (the encoder's input)."""
    sils = walks.silhouettes
    frames = sils.reshape(-1, *sils.shape[2:])
    per_walk = sils.shape[1]
    return CalibrationSet(
        silhouettes=frames,
        labels=np.repeat(np.asarray(walks.labels, np.int64), per_walk),
        strata=[s for s in walks.strata for _ in range(per_walk)],
        source=dict(walks.source) | {"frames_of_walks": walks.count},
        warnings=list(walks.warnings),
    )


def encoder_int8(
    folder: str | Path,
    walks: CalibrationSet,
    target: str,
    data: str | Path,
    exclude: list[str] | None = None,
    parity_walks: int = 200,
    seed: int = 1,
) -> tuple[Path, ParityReport | None]:
    """encoder.int8.onnx (tensorrt) or encoder.int8-cpu.onnx (cpu) from encoder.onnx; recorded
    in model.split.json with its parity (no minimum: the figure is reported, see the docs)."""
    folder = Path(folder)
    precision = TARGET_FORMS[target]
    quantize(
        QuantizeConfig(
            folder / ENCODER_FILE,
            Path(data),
            target,
            out=folder / ENCODER_FORMS[precision],
            exclude=list(exclude or []),
            bias_correction=False,
        ),
        calib=frame_set(walks),
    )
    return add_encoder_form(folder, precision, parity_walks, seed, min_agreement=0.0)
