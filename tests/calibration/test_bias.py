"""Bias correction at the head BatchNorm: the embedding shift is measured, folded in and recorded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from calibration.__main__ import main
from calibration.bias import _embedding_means, head_batchnorm
from calibration.dataset import load_set
from calibration.errors import CalibrationError
from calibration.quantize import QuantizeConfig, quantize
from gaitcontract.manifest import verify_artifact

WALKS = 8  # of calib16's 24: two quantizations of all 24 took ~17 s on the shared machine


@pytest.fixture(scope="module")
def pair(fp32_16, calib16, tmp_path_factory):
    """The cpu target quantized with and without bias correction (on the first WALKS walks)."""
    root = tmp_path_factory.mktemp("bias")
    return {
        corrected: quantize(
            QuantizeConfig(
                fp32_16,
                calib16,
                "cpu",
                out=root / f"{corrected}.onnx",
                bias_correction=corrected,
                max_walks=WALKS,
            )
        )
        for corrected in (False, True)
    }


def _bn(path):
    model = onnx.load(path)
    node = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    mean = next(i for i in model.graph.initializer if i.name == node.input[3])
    return model, node, numpy_helper.to_array(mean)


def test_correction_removes_the_shift_after_the_batchnorm(pair, fp32_16, calib16):
    walks = load_set(calib16).model_input()[:WALKS]
    fp32, node, _ = _bn(fp32_16)
    reference = _embedding_means(fp32, node.output[0], walks)
    shift = {}
    for corrected, result in pair.items():
        model, _, _ = _bn(result.path)
        shift[corrected] = np.abs(_embedding_means(model, node.output[0], walks) - reference)
    assert shift[False].mean() > 0.0
    # measured and corrected on the same walks: only float rounding is left
    assert shift[True].mean() < 1e-3 * shift[False].mean() + 1e-6


def test_only_the_running_mean_changes_and_it_is_recorded(pair, fp32_16):
    _, _, source_mean = _bn(fp32_16)
    _, _, plain_mean = _bn(pair[False].path)
    _, node, corrected_mean = _bn(pair[True].path)
    np.testing.assert_array_equal(plain_mean, source_mean)
    assert not np.allclose(corrected_mean, source_mean)
    correction = pair[True].bias_correction
    assert correction.node == node.name and correction.tensor == node.input[0]
    assert correction.walks == WALKS and 0.0 < correction.mean_abs_shift <= correction.max_abs_shift
    assert verify_artifact(pair[True].path).extra["bias_correction"]["node"] == node.name
    assert verify_artifact(pair[False].path).extra["bias_correction"] is None
    assert pair[False].bias_correction is None


def test_a_model_without_a_batchnorm_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(CalibrationError, match="--no-bias-correction"):
        head_batchnorm(helper.make_model(graph))


def test_cli_switch(fp32_16, calib16, tmp_path, capsys):
    out = tmp_path / "plain.onnx"
    assert (
        main(
            [
                "quantize",
                str(fp32_16),
                "--data",
                str(calib16),
                "--target",
                "tensorrt",
                "--max-walks",
                "8",
                "--out",
                str(out),
                "--no-bias-correction",
            ]
        )
        == 0
    )
    assert "bias correction" not in capsys.readouterr().out
    assert (
        main(
            [
                "quantize",
                str(fp32_16),
                "--data",
                str(calib16),
                "--target",
                "tensorrt",
                "--max-walks",
                "8",
                "--out",
                str(tmp_path / "corrected.onnx"),
            ]
        )
        == 0
    )
    assert "bias correction: /model/bnneck/BatchNormalization" in capsys.readouterr().out


def test_constants_are_found_behind_identity_nodes():
    from calibration.bias import _constant

    value = numpy_helper.from_array(np.arange(3, dtype=np.float32), "shared")
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["shared"], ["mean"], name="id"),
            helper.make_node("Relu", ["x"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
        [value],
    )
    model = helper.make_model(graph)
    np.testing.assert_array_equal(_constant(model, "mean", "bn"), [0.0, 1.0, 2.0])
    with pytest.raises(CalibrationError, match="'y' is not a constant"):
        _constant(model, "y", "bn")


def test_a_lateral_profile_model_corrects_the_bnneck_not_the_branchs_norm(tmp_path):
    """The profile branch's batch norm comes after the BNNeck in the graph; correcting it would
    add the embedding's shift (256 channels) to 2H row-offset statistics."""
    import torch

    from export.onnx_export import ExportConfig, export_onnx
    from export.onnx_utils import load_onnx
    from export.random_model import make_random_checkpoint
    from gaitmil.checkpoint import load_checkpoint, save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from tests.export.conftest import simulated

    plain, _ = load_checkpoint(make_random_checkpoint("tiny", tmp_path / "plain.pt", seed=8))
    torch.manual_seed(8)
    model = GaitMIL(GaitMILConfig.from_dict({**plain.config.to_dict(), "lateral_profile": True}))
    model.load_state_dict(plain.state_dict(), strict=False)
    save_checkpoint(tmp_path / "c.pt", model.eval())
    result = export_onnx(
        ExportConfig(tmp_path / "c.pt", tmp_path / "onnx", frames=16, parity_walks=0),
        walks=simulated(2, 16),
    )
    graph = load_onnx(result.onnx_path)
    norms = [n.name for n in graph.graph.node if n.op_type == "BatchNormalization"]
    assert norms[-1].startswith("/model/profile/")  # the trap: the last one is the branch's
    chosen = head_batchnorm(graph)
    assert "bnneck" in chosen.name and not chosen.name.startswith("/model/profile/")
