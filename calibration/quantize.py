"""`calibration quantize`: explicit Q/DQ INT8 with ONNX Runtime's static quantizer.

Two targets from one calibration set, because the fast kernels differ:
- `tensorrt` (model.int8.onnx): signed INT8 activations and weights, zero
  points 0 (TensorRT requires symmetric Q/DQ), biases left in float
  (TensorRT's DequantizeLinear takes INT8 only), Q/DQ on the inputs of
  weighted ops only (TensorRT's recommended placement).
- `cpu` (model.int8-cpu.onnx): unsigned 8-bit activations with signed
  weights, which ONNX Runtime runs on its integer (U8S8) kernels.
Both: per-channel weight scales, per-tensor activation scales. Only the
backbone (the per-frame ResNet) is quantized by default; attention scoring,
softmaxes, the phase lookup and the head stay in float unless
--quantize-head (which quantizes every node it can: for `tensorrt`, every
Conv, MatMul and Gemm input).

The stem convolution: `calibration report --sensitivity` ranked it as the one
block whose quantization alone flipped predictions when run by ONNX Runtime
on this project's AVX2 CPU (no VNNI), where 8-bit products are summed in
saturating 16-bit pairs; the raw near-binary silhouettes saturate them. The
`cpu` target therefore uses 7-bit weights (reduce_range, ONNX Runtime's
advice for such CPUs) and quantizes the stem too (a float stem costs a
quantize over the largest activation tensor); the `tensorrt` target keeps
8-bit weights and leaves the stem in float, so its accuracy measured on
ONNX Runtime holds, at a negligible cost on the GPU. quant_pre_process is not used: the exported
graph already has BatchNorm folded into the convolutions and static shapes,
which is what it would add.

After Q/DQ insertion, the shift that quantization gives every walk's
embedding is measured on the calibration walks and folded into the head
BatchNorm (calibration.bias; --no-bias-correction turns it off). On the demo
model it took argmax agreement with FP32 from 96 % to 99-100 %.
"""

from __future__ import annotations

import fnmatch
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calibration.bias import BiasCorrection, correct_head_bias
from calibration.dataset import CalibrationSet, load_set
from calibration.errors import CalibrationError
from export.artifact import ArtifactFacts, save_onnx_artifact, trained_on_of
from export.batches import padded_batches
from export.onnx_utils import (
    get_metadata,
    io_shapes,
    load_onnx,
    set_metadata,
)
from gaitcontract import spec
from gaitcontract.manifest import Manifest, sha256_file

BACKBONE_PATTERNS = ("/model/encoder/*",)
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


@dataclass(frozen=True)
class TargetSpec:
    file_name: str
    activation_type: str  # onnxruntime.quantization.QuantType member name
    weight_type: str
    extra_options: dict[str, Any]
    audit_target: str
    scope: tuple[str, ...]  # node-name globs quantized by default
    reduce_range: bool  # 7-bit weights: avoids U8S8 saturation on CPUs without VNNI
    # Q/DQ on the inputs of these op types only; None: inputs and outputs of every op ONNX Runtime can
    op_types: tuple[str, ...] | None = None


TARGETS: dict[str, TargetSpec] = {
    # Q/DQ only on the inputs of weighted ops, as TensorRT's placement advice says: its
    # builder fuses Conv+BN+ReLU and carries the next input's scale back through the ReLU.
    # Quantizing Conv and Add outputs too (ONNX Runtime's default) rounds pre-ReLU tensors
    # whose symmetric range is set by their negative tail, and doubled the error.
    "tensorrt": TargetSpec(
        "model.int8.onnx",
        "QInt8",
        "QInt8",
        {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
        "tensorrt",
        ("/model/encoder/layers/*",),
        False,
        WEIGHTED_OPS,
    ),
    "cpu": TargetSpec(
        "model.int8-cpu.onnx",
        "QUInt8",
        "QInt8",
        {"ActivationSymmetric": False, "WeightSymmetric": True},
        "cpu",
        ("/model/encoder/*",),
        True,
    ),
}


@dataclass
class QuantizeConfig:
    model: Path
    data: Path
    target: str
    out: Path | None = None  # default: the target's file name beside the model
    method: str = "minmax"
    exclude: list[str] = field(default_factory=list)  # node-name glob patterns kept in float
    quantize_head: bool = False
    max_walks: int | None = None  # cap on calibration walks (entropy/percentile keep histograms)
    only: list[str] | None = (
        None  # quantize only nodes matching these patterns (sensitivity analysis)
    )
    bias_correction: bool = (
        True  # fold the embedding shift into the head BatchNorm (calibration.bias)
    )


@dataclass
class QuantizeResult:
    path: Path
    manifest_path: Path
    manifest: Manifest
    quantized_nodes: list[str]
    float_nodes: list[str]
    bias_correction: BiasCorrection | None = None


def target_spec(target: str) -> TargetSpec:
    if target not in TARGETS:
        raise CalibrationError(f"--target {target!r} is not one of {sorted(TARGETS)}")
    return TARGETS[target]


def select_nodes(
    node_names: list[str],
    exclude: list[str],
    quantize_head: bool,
    only: list[str] | tuple[str, ...] | None = None,
) -> tuple[list[str], list[str]]:
    """Split node names into (may be quantized, kept in float) by scope (`only`, default the
    backbone), --quantize-head (everything) and the --exclude patterns."""

    def matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    scope = () if quantize_head else tuple(only or BACKBONE_PATTERNS)
    keep_float = [n for n in node_names if matches(n, exclude) or (scope and not matches(n, scope))]
    quantizable = [n for n in node_names if n not in set(keep_float)]
    return quantizable, keep_float


def _reader(walks: np.ndarray, batch: int, input_name: str) -> Any:
    quantization = _ort_quantization()

    class WalkReader(quantization.CalibrationDataReader):
        """Feeds the calibration walks in the model's static batch size."""

        def __init__(self) -> None:
            self.chunks = padded_batches(walks, batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self.chunks, None)
            return None if chunk is None else {input_name: chunk[0]}

    return WalkReader()


def _ort_quantization() -> Any:
    try:
        import onnxruntime.quantization as quantization
    except ImportError as exc:
        raise CalibrationError(
            f"onnxruntime.quantization is unavailable ({exc}); pip install onnxruntime"
        ) from exc
    return quantization


def model_input(model: Any) -> tuple[str, list[int]]:
    inputs, _ = io_shapes(model)
    if len(inputs) != 1:
        raise CalibrationError(f"expected one model input, found {list(inputs)}")
    name, dims = next(iter(inputs.items()))
    return name, [int(d) for d in dims]


def constants_as_initializers(model: Any) -> Any:
    """A copy of `model` whose Constant nodes are initializers. ONNX Runtime's calibrators
    treat a Constant's output as an activation, and the histogram ones (percentile,
    entropy) fail on it ("Too many bins for data range": the mask fill is 1e4 everywhere)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = []
    for node in copy.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and len(node.attribute) == 1:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            copy.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(kept)
    return copy


def quantize(config: QuantizeConfig, calib: CalibrationSet | None = None) -> QuantizeResult:
    """Quantize `config.model` for `config.target`; write the model and its manifest."""
    from export.audit import audit_model
    from export.onnx_export import check_graph

    quantization = _ort_quantization()
    target = target_spec(config.target)
    if config.method not in METHODS:
        raise CalibrationError(f"--method {config.method!r} is not one of {sorted(METHODS)}")
    source = load_onnx(config.model)
    if get_metadata(source).get("precision", "fp32") != "fp32":
        raise CalibrationError(
            f"{config.model} is not an FP32 model; quantize the FP32 export (model.onnx)"
        )
    input_name, input_dims = model_input(source)
    if calib is None:
        calib = load_set(config.data, input_name=input_name, expected_shape=tuple(input_dims[1:]))
    elif list(calib.silhouettes.shape[1:]) != input_dims[1:]:
        raise CalibrationError(
            f"calibration walks have shape {list(calib.silhouettes.shape[1:])}, the model's "
            f"input {input_name!r} expects {input_dims[1:]} per walk"
        )
    walks = calib.model_input()[: config.max_walks]
    node_names = [node.name for node in source.graph.node]
    quantizable, keep_float = select_nodes(
        node_names, config.exclude, config.quantize_head, config.only or target.scope
    )
    out = Path(config.out) if config.out else Path(config.model).with_name(target.file_name)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_out, tmp_in = Path(tmp) / out.name, Path(tmp) / "source.onnx"
        tmp_in.write_bytes(constants_as_initializers(source).SerializeToString())
        quantization.quantize_static(
            str(tmp_in),
            str(tmp_out),
            _reader(walks, input_dims[0], input_name),
            quant_format=quantization.QuantFormat.QDQ,
            per_channel=True,
            reduce_range=target.reduce_range,
            activation_type=getattr(quantization.QuantType, target.activation_type),
            weight_type=getattr(quantization.QuantType, target.weight_type),
            nodes_to_exclude=keep_float,
            op_types_to_quantize=list(target.op_types) if target.op_types else None,
            calibrate_method=getattr(quantization.CalibrationMethod, METHODS[config.method]),
            extra_options=dict(target.extra_options)
            | (
                {"OpTypesToExcludeOutputQuantization": list(target.op_types)}
                if target.op_types
                else {}
            ),
        )
        quantized = load_onnx(tmp_out)
    correction = correct_head_bias(source, quantized, walks) if config.bias_correction else None
    meta = get_metadata(source)
    calibration = {
        "hash": calib.content_hash(),
        "method": config.method,
        "walks": int(len(walks)),
        "set": calib.describe() | {"path": str(config.data)},
    }
    set_metadata(
        quantized,
        {
            "precision": "int8",
            "int8_target": config.target,
            "calibration": {k: calibration[k] for k in ("hash", "method", "walks")},
            "float_nodes": len(keep_float),
            "bias_correction": correction.to_dict() if correction else None,
        },
    )
    check_graph(quantized)
    audit = audit_model(quantized, target=target.audit_target, name=str(out))
    if not audit.ok:
        raise CalibrationError("the quantized model fails the audit:\n" + audit.format())
    saved = save_onnx_artifact(
        quantized,
        out,
        ArtifactFacts(
            model_id=str(meta.get("model_id")),
            precision="int8",
            target=config.target,
            trained_on=trained_on_of(config.model),
            calibration=calibration,
            source={
                "onnx": Path(config.model).name,
                "onnx_sha256": sha256_file(config.model),
                "checkpoint_sha256": meta.get("checkpoint_sha256"),
                "model_id": meta.get("model_id"),
            },
            extra={
                "activation_type": target.activation_type,
                "weight_type": target.weight_type,
                "per_channel_weights": True,
                "reduce_range": target.reduce_range,
                "symmetric_activations": bool(target.extra_options.get("ActivationSymmetric")),
                "qdq_placement": (
                    f"inputs of {'/'.join(target.op_types)}"
                    if target.op_types
                    else "inputs and outputs of every quantized op"
                ),
                "quantize_head": config.quantize_head,
                "exclude_patterns": list(config.exclude),
                "float_nodes": keep_float,
                "input_name": spec.INPUT_NAME,
                "bias_correction": correction.to_dict() if correction else None,
            },
        ),
        error=CalibrationError,
    )
    return QuantizeResult(
        saved.path, saved.manifest_path, saved.manifest, quantizable, keep_float, correction
    )
