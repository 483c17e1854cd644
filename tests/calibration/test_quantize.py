"""calibration quantize: Q/DQ form per target, names and shapes, per-channel weights, refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from calibration.__main__ import main
from calibration.dataset import CalibrationSet, save_set
from calibration.errors import CalibrationError, CalibrationSetError
from calibration.quantize import QuantizeConfig, quantize, select_nodes
from export.audit import audit_model
from export.onnx_utils import get_metadata, ort_session
from gaitcontract import spec
from gaitcontract.manifest import verify_artifact
from tests.calibration.conftest import zero_points_and_types


@pytest.fixture(scope="module")
def quantized(fp32_16, calib16, tmp_path_factory):
    root = tmp_path_factory.mktemp("q")
    return {
        target: quantize(QuantizeConfig(fp32_16, calib16, target, out=root / f"{target}.onnx"))
        for target in ("tensorrt", "cpu")
    }


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_names_and_shapes_are_kept(quantized, fp32_16, target):
    reference, candidate = ort_session(fp32_16), ort_session(quantized[target].path)
    for a, b in (
        (reference.get_inputs(), candidate.get_inputs()),
        (reference.get_outputs(), candidate.get_outputs()),
    ):
        assert [(v.name, v.shape, v.type) for v in a] == [(v.name, v.shape, v.type) for v in b]
    assert [o.name for o in candidate.get_outputs()] == list(spec.OUTPUT_NAMES)


def test_tensorrt_target_is_symmetric_and_signed(quantized):
    found = zero_points_and_types(quantized["tensorrt"].path)
    assert len(found) > 10
    for name, dtype, zero_point in found:
        assert dtype == np.int8, name
        assert not zero_point.any(), name
    assert audit_model(quantized["tensorrt"].path, target="tensorrt").ok


def _activation_q_producers(path) -> list[str]:
    """Op type producing each quantized activation ('input' for a graph input)."""
    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return [
        producer[q.input[0]].op_type if q.input[0] in producer else "input"
        for q in model.graph.node
        if q.op_type == "QuantizeLinear" and q.input[0] not in inits
    ]


def test_tensorrt_target_quantizes_only_inputs_of_weighted_ops(quantized):
    model = onnx.load(quantized["tensorrt"].path)
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    activation_q = [q for q in model.graph.node if q.op_type == "QuantizeLinear"]
    assert len(activation_q) >= 8  # the inputs of the residual stages' convolutions
    for q in activation_q:
        assert "Conv" in consumers[dq_of[q.output[0]]], q.input[0]
    # no Conv or Add output is rounded: TensorRT fuses those into the convolution
    assert not {"Conv", "Add"} & set(_activation_q_producers(quantized["tensorrt"].path))
    assert (
        verify_artifact(quantized["tensorrt"].path)
        .extra["qdq_placement"]
        .startswith("inputs of Conv")
    )


def test_cpu_target_quantizes_conv_outputs_for_qlinearconv(quantized):
    # ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv only when the output is quantized
    assert "Conv" in _activation_q_producers(quantized["cpu"].path)


def test_cpu_target_has_unsigned_activations_and_signed_weights(quantized):
    model = onnx.load(quantized["cpu"].path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    weight_dq = [
        producer[c.input[1]]
        for c in model.graph.node
        if c.op_type == "Conv" and producer.get(c.input[1]) is not None
    ]
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert weight_dq and activation_q
    assert {inits[n.input[0]].dtype for n in weight_dq} == {np.dtype(np.int8)}
    biases = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].dtype == np.int32
    ]
    assert biases  # int32 biases let ONNX Runtime fuse QLinearConv
    assert {inits[n.input[2]].dtype for n in activation_q} == {np.dtype(np.uint8)}
    assert audit_model(quantized["cpu"].path).ok  # the audit reads the target from metadata
    assert not audit_model(quantized["cpu"].path, target="tensorrt").ok


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_weights_are_per_channel(quantized, target):
    model = onnx.load(quantized[target].path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producer = {o: n for n in model.graph.node for o in n.output}
    per_channel = 0
    for conv in convs:
        dq = producer.get(conv.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear":
            scale = inits[dq.input[1]]
            assert scale.ndim == 1 and scale.size == inits[dq.input[0]].shape[0]
            per_channel += 1
    assert per_channel >= 8  # the residual stages' convolutions


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_attention_softmax_and_head_stay_float(quantized, target):
    result = quantized[target]
    assert all(n.startswith("/model/encoder/") for n in result.quantized_nodes)
    for pattern in ("/model/intra/", "/model/inter/", "Softmax", "/model/bnneck/", "/model/ArgMin"):
        assert any(pattern in n for n in result.float_nodes), pattern
    stem_in_float = any(n.startswith("/model/encoder/stem/") for n in result.float_nodes)
    assert stem_in_float == (target == "tensorrt")  # cpu: 7-bit weights make the stem safe
    assert verify_artifact(result.path).extra["reduce_range"] == (target == "cpu")
    model = onnx.load(result.path)
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Softmax" or node.name.startswith(("/model/intra/", "/model/inter/")):
            assert all(
                producer.get(i) is None or producer[i].op_type != "DequantizeLinear"
                for i in node.input
            ), node.name


def test_manifest_records_target_hash_and_method(quantized, calib16):
    from calibration.dataset import load_set

    manifest = verify_artifact(quantized["tensorrt"].path)
    assert manifest.precision == "int8" and manifest.target == "tensorrt"
    assert manifest.calibration["hash"] == load_set(calib16).content_hash()
    assert manifest.calibration["method"] == "minmax"
    meta = get_metadata(onnx.load(quantized["cpu"].path))
    assert meta["int8_target"] == "cpu" and meta["precision"] == "int8"


def test_quantize_head_quantizes_more(fp32_16, calib16, tmp_path, quantized):
    result = quantize(
        QuantizeConfig(fp32_16, calib16, "cpu", out=tmp_path / "all.onnx", quantize_head=True)
    )
    assert len(result.float_nodes) < len(quantized["cpu"].float_nodes)
    assert any(n.startswith("/model/intra/") for n in result.quantized_nodes)


def test_select_nodes_patterns():
    names = [
        "/model/encoder/stem/stem.0/Conv",
        "/model/encoder/layers/layers.0/conv1/Conv",
        "/model/intra/V/MatMul",
        "/model/Softmax",
    ]
    quantizable, kept = select_nodes(names, ["*layers.0*"], quantize_head=False)
    assert quantizable == names[:1] and kept == names[1:]
    quantizable, kept = select_nodes(
        names, [], quantize_head=False, only=["/model/encoder/layers/*"]
    )
    assert quantizable == names[1:2]
    quantizable, kept = select_nodes(names, [], quantize_head=True)
    assert quantizable == names and kept == []


def test_shape_mismatch_is_refused_with_both_shapes(fp32_16, tmp_path):
    walks = np.zeros((3, 8, 64, 44), np.uint8)
    path, _ = save_set(CalibrationSet(walks, np.zeros(3, np.int64), ["a"] * 3), tmp_path / "c.npz")
    with pytest.raises(CalibrationSetError, match=r"\[8, 64, 44\].*\[16, 64, 44\]"):
        quantize(QuantizeConfig(fp32_16, path, "cpu", out=tmp_path / "x.onnx"))


def test_bad_options(fp32_16, calib16, tmp_path):
    with pytest.raises(CalibrationError, match="--target"):
        quantize(QuantizeConfig(fp32_16, calib16, "gpu", out=tmp_path / "x.onnx"))
    with pytest.raises(CalibrationError, match="--method"):
        quantize(QuantizeConfig(fp32_16, calib16, "cpu", out=tmp_path / "x.onnx", method="magic"))


def test_cli_errors(fp32_16, tmp_path, capsys):
    empty = tmp_path / "empty.npz"
    np.savez(empty, silhouettes=np.zeros((0, 16, 64, 44), np.uint8))
    assert (
        main(
            [
                "quantize",
                str(fp32_16),
                "--data",
                str(empty),
                "--target",
                "cpu",
                "--out",
                str(tmp_path / "q.onnx"),
            ]
        )
        == 2
    )
    assert "empty" in capsys.readouterr().err
    nan = tmp_path / "nan.npz"
    walks = np.zeros((2, 16, 64, 44), np.float32)
    walks[1, 3] = np.nan
    np.savez(nan, silhouettes=walks)
    assert (
        main(
            [
                "quantize",
                str(fp32_16),
                "--data",
                str(nan),
                "--target",
                "cpu",
                "--out",
                str(tmp_path / "q.onnx"),
            ]
        )
        == 2
    )
    assert "walk 1 frame 3" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_methods_run_on_gait_mil(fp32_16, calib16, tmp_path, method):
    # the mask fill Constant (1e4 everywhere) once stopped ONNX Runtime's histograms
    # 6 walks are enough to build the histograms (24 took ~15 s per method on the shared machine)
    result = quantize(
        QuantizeConfig(
            fp32_16, calib16, "tensorrt", out=tmp_path / "m.onnx", method=method, max_walks=6
        )
    )
    assert result.manifest.calibration["method"] == method
    assert result.manifest.calibration["walks"] == 6
    assert audit_model(onnx.load(result.path), target="tensorrt").ok
