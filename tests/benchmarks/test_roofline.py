"""MACs from ONNX graphs (hand-built and the real Gait-MIL graph), peaks, achieved GFLOP/s."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from benchmarks.errors import BenchmarkError
from benchmarks.roofline import (
    achieved_gflops,
    board_key,
    count_macs,
    declared_peak,
    matmul_probe,
)


def _init(name, shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def _hand_model(path, batch=1):
    """Conv 3->4 (3x3, pad 1), depthwise Conv (group 4), Gemm (transB), MatMul: MACs known by hand."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=4),
        helper.make_node("Flatten", ["c2"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "g"], ["y1"], transB=1),
        helper.make_node("MatMul", ["y1", "m"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            _init("w1", (4, 3, 3, 3)),
            _init("w2", (4, 1, 3, 3)),
            _init("g", (10, 256)),
            _init("m", (10, 5)),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_hand_built_graph(tmp_path):
    counted = count_macs(_hand_model(tmp_path / "hand.onnx"))
    conv = 4 * 8 * 8 * (3 * 3 * 3) + 4 * 8 * 8 * (1 * 3 * 3)  # outputs x (C_in/groups x kernel)
    assert counted.by_op == {"Conv": conv, "Gemm": 256 * 10, "MatMul": 10 * 5}
    assert counted.total == conv + 2560 + 50
    assert counted.uncounted == []
    assert counted.per_walk == counted.total


def test_per_walk_divides_by_batch(tmp_path):
    one = count_macs(_hand_model(tmp_path / "b1.onnx", batch=1))
    four = count_macs(_hand_model(tmp_path / "b4.onnx", batch=4))
    assert four.batch == 4
    assert four.total == 4 * one.total
    assert four.per_walk == one.per_walk


def test_gaitmil_graph_matches_torch_flop_counter(tiny_models):
    from torch.utils.flop_counter import FlopCounterMode

    from gaitmil.checkpoint import load_checkpoint

    model, _ = load_checkpoint(tiny_models.checkpoint)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, tiny_models.frames, 64, 44))
    counted = count_macs(tiny_models.onnx)
    assert counted.uncounted == []
    # torch counts 2 FLOPs per MAC for convolutions and matrix products, the same ops ONNX holds
    assert counted.total == counter.get_total_flops() // 2


def test_missing_or_corrupt_onnx(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        count_macs(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(BenchmarkError, match="cannot read"):
        count_macs(bad)


def test_declared_peaks_by_board_string():
    assert (
        board_key("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super")
        == "Orin Nano Super"
    )
    assert board_key("NVIDIA Jetson AGX Orin Developer Kit") == "AGX Orin"
    assert board_key("Raspberry Pi 5") is None and board_key(None) is None
    assert declared_peak("NVIDIA Jetson AGX Orin Developer Kit", "fp16") == pytest.approx(42_600.0)
    assert declared_peak("NVIDIA Jetson AGX Orin Developer Kit", "fp32") is None


def test_achieved_gflops():
    assert achieved_gflops(1_000_000_000, 1, 0.5) == pytest.approx(4.0)
    with pytest.raises(BenchmarkError):
        achieved_gflops(1, 1, 0.0)


@pytest.mark.parametrize("probe", ["numpy", "onnxruntime"])
def test_matmul_probe_runs(probe):
    out = matmul_probe(size=256, threads=1, repeats=2, probe=probe)
    assert out["probe"] == probe and out["threads"] == 1
    assert out["best_gflops"] >= out["median_gflops"] > 0


def test_unknown_probe():
    with pytest.raises(BenchmarkError, match="unknown matmul probe"):
        matmul_probe(probe="abacus")
