"""What a TensorRT engine is built from and for: the ONNX's facts and this GPU's.

Both are read without torch and without the `onnx` package, which a kiosk does not
have: the ONNX's manifest (verified against the file) or ONNX Runtime's view of the
model, and the GPU through cuda-python or pycuda (the runner's own code).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.runners.cuda_buffers import GpuFacts
from export._deps import require
from export.errors import DependencyError, EngineError
from gaitcontract.manifest import ManifestError, find_manifest, metadata_value, verify_artifact


@dataclass
class OnnxFacts:
    """What the builder needs to know about an ONNX model, read without the `onnx` package."""

    model_id: str | None
    precision: str
    target: str | None
    opset: int | None
    input_shapes: dict[str, list[Any]]
    sha256: str


def onnx_facts(onnx_path: Path, data: bytes) -> OnnxFacts:
    """Model id, precision, INT8 target, opset and input shapes of an ONNX (bytes `data`).

    From the ONNX's manifest when it has one (verified against `data`), else from the
    model's metadata and inputs through ONNX Runtime (part of the base install).
    """
    digest = hashlib.sha256(data).hexdigest()
    manifest_path = find_manifest(onnx_path)
    if manifest_path.is_file():
        try:
            manifest = verify_artifact(onnx_path, manifest_path)
        except ManifestError as exc:
            raise EngineError(f"cannot build an engine from {onnx_path}: {exc}") from exc
        if manifest.kind != "onnx":
            raise EngineError(
                f"{manifest_path} describes a {manifest.kind!r}, not an ONNX model; "
                "pass the ONNX exported with `python -m export onnx` as --onnx"
            )
        if manifest.files.get(onnx_path.name) != digest:
            raise EngineError(f"{onnx_path} changed while it was read; run the build again")
        return OnnxFacts(
            manifest.model_id or None,
            manifest.precision,
            manifest.target,
            manifest.opset,
            {k: list(v) for k, v in manifest.input_shapes.items()},
            digest,
        )
    from edge.runners.onnxruntime import precision_from_graph

    ort = require("onnxruntime")
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own unrelated types
        raise EngineError(
            f"{onnx_path} is not a readable ONNX model ({str(exc).splitlines()[0]}); "
            "re-export it with `python -m export onnx`"
        ) from exc
    meta = session.get_modelmeta().custom_metadata_map
    model_id = metadata_value(meta, "model_id")
    precision = metadata_value(meta, "precision") or precision_from_graph(data)
    inputs = {
        i.name: [d if isinstance(d, int) else str(d) for d in i.shape] for i in session.get_inputs()
    }
    return OnnxFacts(
        str(model_id) if model_id else None,
        str(precision),
        metadata_value(meta, "target"),
        None,
        inputs,
        digest,
    )


def gpu_identity(index: int = 0) -> GpuFacts:
    """This GPU's facts (name, compute capability, SM count, memory) via cuda-python, else pycuda."""
    from edge.errors import RunnerError
    from edge.runners.cuda_buffers import detect_cuda_major, device_facts
    from edge.runners.trt_plan import choose_cuda_library, module_available

    try:
        library = choose_cuda_library(module_available, None, detect_cuda_major())
    except ValueError as exc:
        raise DependencyError(f"cannot query the GPU: {exc}") from exc
    try:
        return device_facts(library, index)
    except RunnerError as exc:
        raise EngineError(f"cannot query GPU {index} through {library}: {exc}") from exc
