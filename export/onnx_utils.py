"""Small ONNX helpers shared by export and calibration: loading, hashing, metadata, sessions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.runners.onnxruntime import session_options
from export._deps import require
from export.errors import ExportError
from gaitcontract import spec
from gaitcontract.manifest import METADATA_PREFIX


def load_onnx(path: str | Path) -> Any:
    """Load an ONNX ModelProto, with an error that names the file and the fix."""
    onnx = require("onnx")
    path = Path(path)
    if not path.is_file():
        raise ExportError(
            f"ONNX model {path} does not exist; export one with `python -m export onnx`"
        )
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise ExportError(f"{path} is not a readable ONNX model ({exc}); re-export it") from exc


def tensor_arrays(model: Any) -> list[tuple[str, np.ndarray]]:
    """Every weight in the graph: initializers and Constant node values, by name."""
    numpy_helper = require("onnx.numpy_helper")
    arrays = [(init.name, numpy_helper.to_array(init)) for init in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    arrays.append((node.output[0], numpy_helper.to_array(attr.t)))
    return arrays


def weights_sha256(model: Any) -> str:
    """Hash of the graph's weights (values, dtypes, shapes), independent of file layout.

    Sorted by value rather than by name, so two exports that name the same
    tensors differently still agree; used to prove an export is reproducible
    and that a shipped model is current.
    """
    digests = []
    for _, array in tensor_arrays(model):
        array = np.ascontiguousarray(array)
        item = hashlib.sha256()
        item.update(str(array.dtype).encode())
        item.update(str(array.shape).encode())
        item.update(array.tobytes())
        digests.append(item.hexdigest())
    total = hashlib.sha256()
    for digest in sorted(digests):
        total.update(digest.encode())
    return total.hexdigest()


def _weights_by_use(model: Any) -> dict[str, tuple[str, np.ndarray]]:
    """Every weight keyed by where the graph first uses it (node position, op, input slot).

    torch names anonymous weights after its tracer's value numbering (`onnx::Conv_367`), which
    moves when the Python around an op changes and the exported graph does not: keys by use
    compare the same graph's weights whatever they are called."""
    arrays = dict(tensor_arrays(model))
    keyed: dict[str, tuple[str, np.ndarray]] = {}
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Constant" and node.output and node.output[0] in arrays:
            keyed.setdefault(f"node {index} Constant", (node.output[0], arrays[node.output[0]]))
        for slot, name in enumerate(node.input):
            if name in arrays and all(name != seen for seen, _ in keyed.values()):
                keyed[f"node {index} {node.op_type} input {slot}"] = (name, arrays[name])
    used = {name for name, _ in keyed.values()}
    for name, array in arrays.items():  # weights no node reads (e.g. graph outputs) by name
        if name not in used:
            keyed[f"unused {name}"] = (name, array)
    return keyed


def weight_differences(model: Any, reference: Any, rtol: float, atol: float) -> list[str]:
    """Weights of `model` that differ from `reference` beyond tolerance; [] when close.

    Exported weights are folded with the CPU's float kernels (BatchNorm fusion,
    constant folding), so the same checkpoint exports to slightly different
    bytes on an AVX2 and an AVX-512 machine: compare values, not bytes. Weights are
    matched by where the graph uses them, not by their (tracer-numbered) names.
    """
    ours, theirs = _weights_by_use(model), _weights_by_use(reference)
    if set(ours) != set(theirs):
        missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
        return [f"the graphs hold different weights (missing {missing[:3]}, extra {extra[:3]})"]
    problems = []
    for key, (name, array) in ours.items():
        other = theirs[key][1]
        if array.shape != other.shape or array.dtype != other.dtype:
            problems.append(
                f"{name}: {array.dtype}{list(array.shape)} against {other.dtype}{list(other.shape)}"
            )
        elif array.dtype.kind == "f":
            if not np.allclose(
                array.astype(np.float64), other.astype(np.float64), rtol=rtol, atol=atol
            ):
                worst = float(np.max(np.abs(array.astype(np.float64) - other.astype(np.float64))))
                problems.append(f"{name}: values differ by up to {worst:.3g}")
        elif not np.array_equal(array, other):
            problems.append(f"{name}: values differ")
    return problems


def io_shapes(model: Any) -> tuple[dict[str, list[int | str]], dict[str, list[int | str]]]:
    """Graph inputs and outputs (initializers excluded) as name -> dims (str for symbolic)."""
    initializers = {init.name for init in model.graph.initializer}

    def dims(value: Any) -> list[int | str]:
        shape = value.type.tensor_type.shape
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]

    inputs = {v.name: dims(v) for v in model.graph.input if v.name not in initializers}
    outputs = {v.name: dims(v) for v in model.graph.output}
    return inputs, outputs


def opset_of(model: Any) -> int:
    """Opset version of the default ONNX domain."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError("ONNX model imports no default-domain opset; re-export it")


def set_metadata(model: Any, values: dict[str, Any]) -> None:
    """Store `values` as metadata_props (`gaitmil.<key>` -> JSON string), replacing old keys."""
    keep = [p for p in model.metadata_props if p.key[len(METADATA_PREFIX) :] not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key = METADATA_PREFIX + key
        entry.value = json.dumps(value, sort_keys=True, default=str)


def get_metadata(model: Any) -> dict[str, Any]:
    """The `gaitmil.*` metadata_props, JSON-decoded."""
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(METADATA_PREFIX):
            try:
                out[prop.key[len(METADATA_PREFIX) :]] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[prop.key[len(METADATA_PREFIX) :]] = prop.value
    return out


def ort_session(path: str | Path | bytes, threads: int = 2) -> Any:
    """A CPU ONNX Runtime session (from a file or serialized bytes) with a fixed thread count."""
    ort = require("onnxruntime")
    options = session_options(threads)
    try:
        source = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
        what = "the exported graph" if isinstance(path, bytes) else str(path)
        raise ExportError(f"ONNX Runtime cannot load {what}: {exc}") from exc


def session_batch_frames(session: Any) -> tuple[int, int]:
    """Static (batch, frames) of a session's `silhouettes` input."""
    for value in session.get_inputs():
        if value.name == spec.INPUT_NAME:
            batch, frames = value.shape[0], value.shape[1]
            if not isinstance(batch, int) or not isinstance(frames, int):
                raise ExportError(
                    f"input {spec.INPUT_NAME} has dynamic dims {value.shape}; re-export"
                )
            return batch, frames
    names = [v.name for v in session.get_inputs()]
    raise ExportError(f"model has no input named {spec.INPUT_NAME!r} (inputs: {names})")


def run_batched(
    session: Any, walks: np.ndarray, names: tuple[str, ...] = spec.OUTPUT_NAMES
) -> dict[str, np.ndarray]:
    """Run float32 walks [N, T, H, W] (64x44 or the graph's own size) through a static-batch session, padding the last chunk;
    returns the tensors `names` (the model outputs by default)."""
    batch, frames = session_batch_frames(session)
    # the graph's own resolution (gaitcontract.spec.INPUT_RESOLUTIONS; 64x44 unless exported otherwise)
    shape = next(v.shape for v in session.get_inputs() if v.name == spec.INPUT_NAME)
    height, width = (
        (int(shape[2]), int(shape[3]))
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:])
        else (spec.INPUT_HEIGHT, spec.INPUT_WIDTH)
    )
    if walks.ndim != 4 or walks.shape[1:] != (frames, height, width):
        raise ExportError(
            f"walks have shape {walks.shape}, the model expects [N, {frames}, {height}, {width}]"
        )
    from export.batches import run_in_batches

    def run(chunk: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(list(names), {spec.INPUT_NAME: chunk})))

    return run_in_batches(run, walks, batch, names)


def topological_sort(model: Any) -> None:
    """Reorder graph nodes so every node follows its producers (ONNX requires it; converters may not).

    Stable: nodes keep their relative order where dependencies allow.
    """
    graph = model.graph
    available = {init.name for init in graph.initializer} | {v.name for v in graph.input} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            names = [n.name for n in remaining[:5]]
            raise ExportError(f"graph has a cycle or a missing input near nodes {names}")
        pending = remaining
    copies = [type(node)() for node in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def inline_identity_initializers(model: Any) -> int:
    """Replace `Identity(initializer)` nodes by an initializer of their own; returns how many.

    The TorchScript exporter shares equal weights (e.g. two identical conv
    biases) through Identity nodes. Quantizers expect each conv's bias to be
    an initializer and skip it otherwise, which also blocks ONNX Runtime's
    integer conv kernels.
    """
    initializers = {init.name: init for init in model.graph.initializer}
    keep, added = [], []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in initializers:
            copy = type(initializers[node.input[0]])()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            added.append(copy)
        else:
            keep.append(node)
    if added:
        del model.graph.node[:]
        model.graph.node.extend(keep)
        model.graph.initializer.extend(added)
        used = {name for node in keep for name in node.input} | {o.name for o in model.graph.output}
        unused = [init for init in model.graph.initializer if init.name not in used]
        for init in unused:
            model.graph.initializer.remove(init)
    return len(added)
