"""The one ONNX artifact writer: the model file (atomically) and the manifest beside it.

Used by the FP32 export (export/onnx_export.py), the FP16 conversion (export/fp16.py)
and INT8 quantization (calibration/quantize.py), so every ONNX model this project
ships is written, hashed and described the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.onnx_utils import io_shapes, opset_of, weights_sha256
from gaitcontract.errors import GaitMILError
from gaitcontract.manifest import (
    Manifest,
    manifest_path_for,
    read_manifest,
    sha256_file,
    write_manifest,
)


@dataclass(frozen=True)
class ArtifactFacts:
    """What the manifest says about an ONNX model besides what the graph itself shows."""

    model_id: str
    precision: str  # "fp32" | "fp16" | "int8"
    source: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    target: str | None = None  # int8 only: "tensorrt" | "cpu"
    calibration: dict[str, Any] | None = None  # int8 only: {hash, method, walks, set}
    trained_on: str | None = (
        None  # "simulated" | "real" (the kiosk refuses simulated unless allowed)
    )


def trained_on_of(source_onnx: str | Path) -> str | None:
    """The trained_on of the manifest beside a source ONNX: a converted form inherits it."""
    path = manifest_path_for(source_onnx)
    return read_manifest(path).trained_on if path.is_file() else None


@dataclass(frozen=True)
class SavedArtifact:
    path: Path
    manifest_path: Path
    manifest: Manifest


def save_onnx_artifact(
    model: Any, out: str | Path, facts: ArtifactFacts, error: type[GaitMILError] = ExportError
) -> SavedArtifact:
    """Write `model` (an onnx ModelProto) to `out`, then its manifest beside it.

    The model is written to a temporary file and renamed, so a reader never sees a
    half-written model; file hash, input shapes, opset and weights hash come from
    what was written. A write failure raises `error` naming the file.
    """
    out = Path(out)
    partial = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(model.SerializeToString())
        os.replace(partial, out)
    except OSError as exc:
        raise error(f"cannot write {out} ({exc.strerror or exc}); choose another --out") from exc
    inputs, _ = io_shapes(model)
    manifest = Manifest(
        model_id=facts.model_id,
        kind="onnx",
        precision=facts.precision,
        target=facts.target,
        files={out.name: sha256_file(out)},
        input_shapes={name: [int(d) for d in dims] for name, dims in inputs.items()},
        opset=opset_of(model),
        calibration=facts.calibration,
        source=facts.source,
        weights_sha256=weights_sha256(model),
        extra=facts.extra,
        trained_on=facts.trained_on,
    )
    return SavedArtifact(out, write_manifest(manifest_path_for(out), manifest), manifest)
