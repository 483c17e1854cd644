"""FP32 ONNX to FP16 ONNX (FP32 inputs and outputs) with ONNX Runtime's FP16 converter.

The converter is `onnxruntime.transformers.float16` (maintained with ONNX
Runtime, the base install). onnxconverter-common 1.16's rewrite of the same
converter was tried first: on this graph it types the outputs of
`Cast(to=FLOAT)` nodes as FP16 and ONNX Runtime refuses the model
("Type (tensor(float16)) of output arg ... does not match expected type").

What stays in FP32 and why:
- the phase lookup (every node upstream of ArgMin: pooling, distances to the
  centroids): a near tie flipped by FP16 rounding would move a frame to another
  phase, which PyTorch would not do;
- a lateral-profile model's branch (every node under PROFILE_SCOPE): its row centres of mass
  are differences of sums of up to ~1,000 pixel-columns, and FP16's 11-bit mantissa would
  round away the sub-pixel offsets the branch reads;
- softmaxes and the reductions that feed normalisations (ReduceSum, ReduceL2):
  exp and sums of many terms lose the most in FP16;
- the converter's own default block list (ops without FP16 kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export._deps import require
from export.artifact import ArtifactFacts, save_onnx_artifact, trained_on_of
from export.errors import ExportError
from export.onnx_export import check_graph
from export.onnx_utils import (
    get_metadata,
    load_onnx,
    ort_session,
    run_batched,
    set_metadata,
    topological_sort,
)
from export.parity import ParityReport, compare_outputs
from gaitcontract.manifest import Manifest, find_manifest, sha256_file

KEEP_FP32_OPS = ("Softmax", "ReduceSum", "ReduceL2", "ArgMin", "ArgMax")
PROFILE_SCOPE = "/model/profile/"  # GaitMIL.profile's nodes in the traced whole graph
MIN_AGREEMENT = 0.995


@dataclass
class Fp16Result:
    path: Path
    manifest_path: Path
    manifest: Manifest
    parity: ParityReport | None
    kept_fp32_nodes: list[str]


def upstream_nodes(model: Any, op_type: str) -> list[str]:
    """Names of the nodes of type `op_type` and every node they depend on (inside the graph)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return _upstream(producer, [node for node in model.graph.node if node.op_type == op_type])


def upstream_of_outputs(model: Any, outputs: tuple[str, ...]) -> list[str]:
    """Names of the nodes that produce the tensors `outputs` and every node they depend on."""
    producer = {out: node for node in model.graph.node for out in node.output}
    return _upstream(producer, [producer[o] for o in outputs if o in producer])


def _upstream(producer: dict[str, Any], start: list[Any]) -> list[str]:
    """Names of the nodes `start` and every node they depend on (`producer`: tensor -> node), sorted."""
    names: set[str] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if node.name in names:
            continue
        names.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer)
    return sorted(names)


def drop_fp16_roundtrips(model: Any) -> int:
    """Turn Cast(to FP32) of a Cast(to FP16) of an FP32 tensor X into Identity(X), then drop
    the casts nobody reads; returns how many round trips were removed."""
    onnx = require("onnx")
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    producer = {out: node for node in model.graph.node for out in node.output}

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((int(a.i) for a in node.attribute if a.name == "to"), None)

    removed = 0
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if cast_to(node) == fp32 and first is not None and cast_to(first) == fp16:
            node.op_type = "Identity"
            del node.attribute[:]
            node.input[0] = first.input[0]
            removed += 1
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type == "Cast" and not set(n.output) & used]
        if not dead:
            return removed
        for n in dead:
            model.graph.node.remove(n)


def convert_fp16(
    source: str | Path,
    out: str | Path,
    keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS,
    walks: np.ndarray | None = None,
    keep_fp32_outputs: tuple[str, ...] = (),
) -> Fp16Result:
    """Write an FP16 copy of `source` to `out` (with manifest); compare it with FP32 on `walks`.

    `keep_fp32_outputs`: graph outputs computed in FP32 with every node upstream of them (the
    split encoder's `phase_pooled`, which the head's phase lookup reads)."""
    float16 = require("onnxruntime.transformers.float16")
    source, out = Path(source), Path(out)
    model = load_onnx(source)
    if get_metadata(model).get("precision", "fp32") != "fp32":
        raise ExportError(f"{source} is not an FP32 model; convert the FP32 export (model.onnx)")
    blocked_nodes = upstream_nodes(model, "ArgMin")  # the phase lookup
    blocked_nodes += upstream_of_outputs(model, keep_fp32_outputs)
    profile_nodes = [node.name for node in model.graph.node if node.name.startswith(PROFILE_SCOPE)]
    blocked_nodes += profile_nodes
    blocked_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=blocked_ops, node_block_list=blocked_nodes
    )
    if keep_fp32_outputs or profile_nodes:
        # the converter casts the input to FP16 once and back to FP32 for the kept nodes: that
        # rounds the silhouettes the phase lookup pools (and the profile's rows sum); read the
        # FP32 tensor itself instead
        drop_fp16_roundtrips(converted)
    topological_sort(converted)  # the converter appends its Casts at the end
    meta = get_metadata(model)
    set_metadata(
        converted,
        {"precision": "fp16", "source_onnx_sha256": sha256_file(source), "fp32_ops": blocked_ops},
    )
    check_graph(converted)
    parity = None
    if walks is not None:  # the bytes about to be written, compared before they are
        parity = compare_outputs(
            run_batched(ort_session(source), walks),
            run_batched(ort_session(converted.SerializeToString()), walks),
            "fp32",
            "fp16",
        )
    source_manifest = find_manifest(source)
    saved = save_onnx_artifact(
        converted,
        out,
        ArtifactFacts(
            model_id=str(meta.get("model_id")),
            precision="fp16",
            trained_on=trained_on_of(source),
            source={
                "onnx": source.name,
                "onnx_sha256": sha256_file(source),
                "checkpoint_sha256": meta.get("checkpoint_sha256"),
                "model_id": meta.get("model_id"),
            },
            extra={
                "parity_vs_fp32": parity.to_dict() if parity else None,
                "fp32_ops": blocked_ops,
                "fp32_nodes": blocked_nodes,
                "source_manifest": source_manifest.name if source_manifest.is_file() else None,
            },
        ),
    )
    return Fp16Result(saved.path, saved.manifest_path, saved.manifest, parity, blocked_nodes)
