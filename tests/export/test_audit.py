"""export audit: the TensorRT 10.3 op list and the graph rules, on tiny graphs built here."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.__main__ import main
from export.audit import FORBIDDEN_OPS, audit_model, supported_ops


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _io(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _qdq_model(zero_point: np.ndarray):
    scale = numpy_helper.from_array(np.array(0.02, np.float32), "scale")
    zp = numpy_helper.from_array(zero_point, "zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], name="dq"),
    ]
    return _model(nodes, [_io("x", [1, 4])], [_io("y", [1, 4])], [scale, zp])


def test_op_list_names_its_source_and_holds_the_model_ops():
    from importlib import resources

    text = resources.files("export").joinpath("data", "tensorrt-10.3-onnx-ops.txt").read_text()
    assert "onnx-tensorrt" in text.splitlines()[2] + text.splitlines()[3]
    ops = supported_ops()
    assert {"Conv", "MatMul", "Softmax", "ArgMin", "QuantizeLinear", "DequantizeLinear"} <= ops
    assert not {"Unique", "DynamicQuantizeLinear", "ConvInteger", "Attention"} & ops


def test_clean_graph_passes():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_io("x", [1, 4])],
        [_io("y", [1, 4])],
    )
    report = audit_model(model)
    assert report.ok, report.format()
    assert report.op_counts == {"Relu": 1}


def test_planted_unsupported_op_is_caught():
    model = _model(
        [helper.make_node("Unique", ["x"], ["y"], name="planted_unique")],
        [_io("x", [4])],
        [_io("y", [4])],
    )
    report = audit_model(model)
    assert "unsupported-op" in report.rules_broken()
    assert "planted_unique" in report.format()


def test_custom_domain_is_caught():
    node = helper.make_node("FusedConv", ["x"], ["y"], name="ms", domain="com.microsoft")
    model = _model([node], [_io("x", [1, 4])], [_io("y", [1, 4])])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert "unsupported-op" in audit_model(model).rules_broken()


@pytest.mark.parametrize("op", ["NonZero"])
def test_forbidden_ops(op):
    model = _model(
        [helper.make_node(op, ["x"], ["y"], name="bad")],
        [_io("x", [4])],
        [_io("y", [1, 4], TensorProto.INT64)],
    )
    assert op in FORBIDDEN_OPS
    assert "forbidden-op" in audit_model(model).rules_broken()


def test_planted_asymmetric_qdq_is_caught():
    report = audit_model(_qdq_model(np.array(128, np.uint8)), target="tensorrt")
    assert "qdq-symmetric" in report.rules_broken()
    assert sum(f.rule == "qdq-symmetric" for f in report.findings) == 2  # Q and DQ


def test_nonzero_signed_zero_point_is_caught():
    report = audit_model(_qdq_model(np.array(3, np.int8)), target="tensorrt")
    assert any("not 0" in f.message for f in report.findings)


def test_symmetric_signed_qdq_passes():
    report = audit_model(_qdq_model(np.array(0, np.int8)), target="tensorrt")
    assert report.ok, report.format()


def test_cpu_target_allows_unsigned_activations():
    assert audit_model(_qdq_model(np.array(128, np.uint8)), target="cpu").ok


def test_target_from_metadata():
    model = _qdq_model(np.array(128, np.uint8))
    entry = model.metadata_props.add()
    entry.key, entry.value = "gaitmil.int8_target", '"cpu"'
    assert audit_model(model).target == "cpu"


def test_dynamic_input_is_caught():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_io("x", ["batch", 4])],
        [_io("y", ["batch", 4])],
    )
    assert "static-shapes" in audit_model(model).rules_broken()


def test_opset_out_of_range():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_io("x", [1, 4])],
        [_io("y", [1, 4])],
        opset=21,
    )
    model.ir_version = 10
    assert "opset" in audit_model(model).rules_broken()


def test_exported_model_passes(tiny_onnx):
    report = audit_model(tiny_onnx.onnx_path)
    assert report.ok, report.format()
    assert "ArgMin" in report.op_counts  # the fixed centroid lookup is inside the graph


def test_cli_exit_codes(tmp_path, tiny_onnx, capsys):
    bad = tmp_path / "bad.onnx"
    onnx.save(
        _model(
            [helper.make_node("Unique", ["x"], ["y"], name="planted")],
            [_io("x", [4])],
            [_io("y", [4])],
        ),
        bad,
    )
    assert main(["audit", str(tiny_onnx.onnx_path)]) == 0
    assert main(["audit", str(bad), "--json", str(tmp_path / "a.json")]) == 1
    captured = capsys.readouterr()
    assert "planted" in captured.out and "fail the audit" in captured.err
    assert main(["audit", str(tmp_path / "missing.onnx")]) == 2
