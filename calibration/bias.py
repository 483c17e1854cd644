"""Bias correction at the head's float BatchNorm (the BNNeck) after quantization.

Why: Gait-MIL classifies the walk embedding after a BatchNorm that subtracts
the across-walk mean and divides by the across-walk spread. Walks of
different children differ little, so that spread is small next to the
embedding itself, and INT8 rounding in the backbone shifts every walk's
embedding the same way by a sizeable fraction of it (about 0.1 of the spread
per channel on the demo model, twice the walk-to-walk part of the error).
A shared shift moves every walk toward the same class and flips the ones near
a boundary. Measuring it on the calibration walks (quantized minus FP32
embedding, per channel) and adding it to the BatchNorm's running mean removes
it exactly; what is left is the walk-to-walk part. This is empirical bias
correction (Nagel et al. 2019), applied where the error matters.

The BatchNorm stays in float in both targets, so the corrected mean is a float
initializer that TensorRT and ONNX Runtime use as written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from calibration.errors import CalibrationError


@dataclass(frozen=True)
class BiasCorrection:
    node: str  # the BatchNormalization whose running mean was corrected
    tensor: str  # its input: the walk embedding before the BNNeck
    walks: int  # calibration walks the shift was measured on
    mean_abs_shift: float  # mean over channels of |shift| / running std
    max_abs_shift: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_batchnorm(model: Any) -> Any:
    """The last BatchNormalization outside a lateral-profile branch, the one nearest the
    logits (the branch's own batch norm standardises row offsets, not the walk embedding, and
    reads no quantized tensor). Q/DQ graphs keep BatchNorm a float op (only its inputs and
    outputs may be quantized), so its running mean is a float."""
    from export.fp16 import PROFILE_SCOPE

    candidates = [
        n
        for n in model.graph.node
        if n.op_type == "BatchNormalization" and not n.name.startswith(PROFILE_SCOPE)
    ]
    if not candidates:
        raise CalibrationError(
            "bias correction needs a BatchNormalization after the quantized backbone "
            "(Gait-MIL's BNNeck), and this model has none; pass --no-bias-correction"
        )
    return candidates[-1]


def _embedding_means(model: Any, tensor: str, walks: np.ndarray) -> np.ndarray:
    """Mean of `tensor` [N, C] over the walks, channel by channel (ONNX Runtime, CPU)."""
    import onnx

    from export.onnx_utils import ort_session, run_batched

    if len(walks) == 0:
        raise CalibrationError("bias correction needs at least one calibration walk")
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    if tensor not in {o.name for o in probe.graph.output}:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None)
        )
    values = run_batched(ort_session(probe.SerializeToString()), walks, (tensor,))[tensor]
    return values.reshape(len(walks), -1).astype(np.float64).mean(0)


def _constant(model: Any, name: str, owner: str) -> np.ndarray:
    """The value of a constant input: an initializer, possibly behind Identity nodes (the
    TorchScript exporter shares equal initializers that way). quantize turns Constant nodes
    into initializers before this runs."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    while name not in initializers:
        node = producers.get(name)
        if node is not None and node.op_type == "Identity":
            name = node.input[0]
        else:
            raise CalibrationError(
                f"{owner}: input {name!r} is not a constant; pass --no-bias-correction"
            )
    return numpy_helper.to_array(initializers[name])


def correct_head_bias(fp32: Any, quantized: Any, walks: np.ndarray) -> BiasCorrection:
    """Measure the quantized model's embedding shift on `walks` and fold it into the
    head BatchNorm's running mean of `quantized` (changed in place)."""
    from onnx import numpy_helper

    node = head_batchnorm(quantized)
    tensor = node.input[0]
    # the same tensor in both graphs; in a --quantize-head graph the BatchNorm reads it through a DQ
    reference = head_batchnorm(fp32).input[0]
    shift = _embedding_means(quantized, tensor, walks) - _embedding_means(fp32, reference, walks)
    mean = _constant(quantized, node.input[3], node.name).astype(np.float64)
    var = _constant(quantized, node.input[4], node.name).astype(np.float64)
    if mean.shape != shift.shape:
        raise CalibrationError(
            f"{node.name}: running mean has shape {mean.shape}, its input {tensor} has "
            f"{shift.shape[0]} channels per walk; pass --no-bias-correction"
        )
    corrected = (mean + shift).astype(np.float32)
    initializers = {init.name: init for init in quantized.graph.initializer}
    mean_name = node.input[3]
    users = sum(name == mean_name for n in quantized.graph.node for name in n.input)
    if mean_name in initializers and users == 1:
        initializers[mean_name].CopyFrom(numpy_helper.from_array(corrected, mean_name))
    else:  # shared, or reached through an Identity: give this BatchNorm its own constant
        own = numpy_helper.from_array(corrected, f"{node.name}/running_mean_bias_corrected")
        quantized.graph.initializer.append(own)
        node.input[3] = own.name
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    relative = np.abs(shift) / np.sqrt(var + epsilon)
    return BiasCorrection(
        node.name, tensor, int(len(walks)), float(relative.mean()), float(relative.max())
    )
