"""ONNX op audit: TensorRT 10.3's parser op list plus the shipped graph's rules (docs/DESIGN.md).

Rules (each finding names the rule, the node and what to do):
- `opset`: default-domain opset within what TensorRT 10.3 parses (9..20).
- `unsupported-op`: an op that TensorRT 10.3's ONNX parser does not import
  (data file export/data/tensorrt-10.3-onnx-ops.txt), or any custom domain.
- `forbidden-op`: Loop, If, Scan, NonZero (data-dependent control flow or
  shapes) and DynamicQuantizeLinear (INT8 must be explicit and static).
- `static-shapes`: every input, output and inferred intermediate has fixed dims.
- `qdq-symmetric` (target `tensorrt`): Q/DQ zero points are constant, signed
  INT8 and all zero; DQ inputs are INT8 (TensorRT has no INT32/UINT8 DQ).
  The `cpu` INT8 target (unsigned activations for ONNX Runtime) is exempt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from export._deps import require
from export.onnx_utils import get_metadata, load_onnx, opset_of

OPS_FILE = "tensorrt-10.3-onnx-ops.txt"
OPSET_RANGE = (9, 20)
FORBIDDEN_OPS = ("Loop", "If", "Scan", "NonZero", "DynamicQuantizeLinear")
TARGETS = ("tensorrt", "cpu")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class Finding:
    rule: str
    node: str
    op_type: str
    message: str

    def format(self) -> str:
        where = f"node {self.node!r} ({self.op_type})" if self.node else "graph"
        return f"[{self.rule}] {where}: {self.message}"


@dataclass
class AuditReport:
    model: str
    target: str
    opset: int
    op_counts: dict[str, int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def rules_broken(self) -> set[str]:
        return {f.rule for f in self.findings}

    def format(self) -> str:
        head = (
            f"audit {self.model} (target {self.target}, opset {self.opset}, "
            f"{sum(self.op_counts.values())} nodes, {len(self.op_counts)} op types): "
            + ("PASS" if self.ok else f"FAIL, {len(self.findings)} finding(s)")
        )
        return "\n".join([head] + ["  " + f.format() for f in self.findings])


def supported_ops() -> frozenset[str]:
    """Operators of the TensorRT 10.3 parser list (comments and blank lines skipped)."""
    text = resources.files("export").joinpath("data", OPS_FILE).read_text(encoding="utf-8")
    return frozenset(
        line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()
    )


def _constants(model: Any) -> dict[str, np.ndarray]:
    numpy_helper = require("onnx.numpy_helper")
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _dims(value: Any) -> list[Any]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _check_static(model: Any, findings: list[Finding]) -> None:
    onnx = require("onnx")
    initializers = {init.name for init in model.graph.initializer}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            dims = _dims(value)
            if not dims or any(not isinstance(d, int) or d <= 0 for d in dims):
                findings.append(
                    Finding(
                        "static-shapes",
                        "",
                        "",
                        f"graph {kind} {value.name!r} has dims {dims}; "
                        "export with a fixed --batch and --frames",
                    )
                )
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as exc:
        findings.append(Finding("static-shapes", "", "", f"shape inference fails: {exc}"))
        return
    for value in inferred.graph.value_info:
        dims = _dims(value)
        if any(not isinstance(d, int) for d in dims):
            findings.append(
                Finding("static-shapes", "", "", f"tensor {value.name!r} has dynamic dims {dims}")
            )


def _check_qdq(node: Any, constants: dict[str, np.ndarray], findings: list[Finding]) -> None:
    if len(node.input) < 3 or not node.input[2]:
        findings.append(
            Finding(
                "qdq-symmetric",
                node.name,
                node.op_type,
                "no zero point, which means UINT8; TensorRT needs signed INT8 "
                "with zero point 0: quantize with --target tensorrt",
            )
        )
        return
    zero_point = constants.get(node.input[2])
    if zero_point is None:
        findings.append(
            Finding(
                "qdq-symmetric",
                node.name,
                node.op_type,
                "zero point is computed at run time; it must be a constant 0",
            )
        )
        return
    if zero_point.dtype != np.int8:
        findings.append(
            Finding(
                "qdq-symmetric",
                node.name,
                node.op_type,
                f"zero point dtype {zero_point.dtype}, TensorRT needs int8 "
                "(symmetric signed): quantize with --target tensorrt",
            )
        )
    elif np.any(zero_point != 0):
        findings.append(
            Finding(
                "qdq-symmetric",
                node.name,
                node.op_type,
                f"zero point {zero_point.ravel()[:4].tolist()}... is not 0 (asymmetric); "
                "TensorRT requires symmetric quantization: quantize with --target tensorrt",
            )
        )
    if node.op_type == "DequantizeLinear":
        source = constants.get(node.input[0])
        if source is not None and source.dtype != np.int8:
            findings.append(
                Finding(
                    "qdq-symmetric",
                    node.name,
                    node.op_type,
                    f"dequantizes a {source.dtype} tensor; TensorRT's DequantizeLinear "
                    "takes INT8 only (leave biases in float)",
                )
            )


def resolve_target(model: Any, target: str) -> str:
    """`auto` reads the INT8 target from the model's metadata (default `tensorrt`, the strict one)."""
    if target == "auto":
        return str(get_metadata(model).get("int8_target") or "tensorrt")
    if target not in TARGETS:
        raise ValueError(f"audit target {target!r} is not one of {TARGETS + ('auto',)}")
    return target


def audit_model(model: Any, target: str = "auto", name: str = "model") -> AuditReport:
    """Audit an ONNX ModelProto (or a path) against the parser list and the graph rules."""
    if isinstance(model, (str, Path)):
        name = str(model)
        model = load_onnx(model)
    target = resolve_target(model, target)
    allowed = supported_ops()
    constants = _constants(model)
    findings: list[Finding] = []
    opset = opset_of(model)
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        findings.append(
            Finding(
                "opset",
                "",
                "",
                f"opset {opset} is outside TensorRT 10.3's range "
                f"{OPSET_RANGE[0]}..{OPSET_RANGE[1]}; export with opset 17",
            )
        )
    counts: Counter[str] = Counter()
    for node in model.graph.node:
        counts[node.op_type] += 1
        if node.domain not in ("", "ai.onnx"):
            findings.append(
                Finding(
                    "unsupported-op",
                    node.name,
                    node.op_type,
                    f"custom domain {node.domain!r} needs a TensorRT plugin; "
                    "export without contrib ops (or disable ORT graph optimisations)",
                )
            )
        elif node.op_type in FORBIDDEN_OPS:
            findings.append(
                Finding(
                    "forbidden-op",
                    node.name,
                    node.op_type,
                    "the shipped graph must have no Loop/If/Scan/NonZero/"
                    "DynamicQuantizeLinear (docs/DESIGN.md): rewrite the model code "
                    "with static tensor ops, or quantize statically",
                )
            )
        elif node.op_type not in allowed:
            findings.append(
                Finding(
                    "unsupported-op",
                    node.name,
                    node.op_type,
                    f"TensorRT 10.3's ONNX parser does not support {node.op_type} "
                    f"(see export/data/{OPS_FILE}); express it with supported ops",
                )
            )
        if target == "tensorrt" and node.op_type in QDQ_OPS:
            _check_qdq(node, constants, findings)
    _check_static(model, findings)
    return AuditReport(name, target, opset, dict(sorted(counts.items())), findings)
